"""Verify + install throughput of a large package, against sha256sum + tar -x.

    .venv/bin/python bench/packages_throughput.py [--size-mib 200] [--runs 3]

Builds an app tree whose package is about ``--size-mib`` MiB (mostly
incompressible data, like images and binaries, plus compressible text in many
small files), packs it, then times, each ``--runs`` times with a warm page cache:

- ``install``: ``install_package`` — streaming verification (SHA-256 of the
  whole file and Ed25519 over the body hash), then, in a bubblewrap sandbox,
  verification again and a pass that decompresses, checks every entry, writes
  the read-only tree and re-hashes the body; then a check of the tree on disk
  and the rows in a fresh SQLite store (also timed with the unpacking in
  process, ``packages.unpack_sandbox = none``);
- ``reference``: ``sha256sum APP.spk`` followed by ``tar -x`` of the same
  tree as ``tar --zstd`` (same compressor and level, so the same work of
  hashing, decompressing and writing);
- ``reference (plain tar)``: ``sha256sum APP.spk`` + ``tar -x`` of an
  uncompressed tar, which does no decompression at all (a harder bar).

Runs are interleaved and each starts after ``sync``, so that no measure pays
for the disk writeback of another. Prints one Markdown table; throughput is
``.spk`` bytes per second, the ratio is reference time / install time (1.0 =
as fast as the reference). Figures:
``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandhaven.packages.archive import COMPRESSION_LEVEL
from sandhaven.packages.install import install_package
from sandhaven.packages.keys import SigningKey
from sandhaven.packages.pack import pack
from sandhaven.store import Store

MiB = 1 << 20

PKGDEF = """
[app]
title = "Bench"
version = 1
port = 8000

[[actions]]
noun_phrase = "thing"
command = { argv = ["/opt/app/run"] }

[continue_command]
argv = ["/opt/app/run"]

[files]
include = ["app"]
"""


def make_tree(root: Path, size_mib: int) -> None:
    """~``size_mib`` MiB of package: 85% incompressible in 40 large files, 15%
    text in 2,000 small files across 40 directories."""
    rng = random.Random(42)
    app = root / "app"
    big_total = size_mib * MiB * 85 // 100
    for i in range(40):
        d = app / "assets"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"blob{i:02}.bin").write_bytes(rng.randbytes(big_total // 40))
    words = [f"w{n}" for n in range(5000)]
    text_total = size_mib * MiB * 15 // 100 * 4  # text compresses about 4x
    per_file = text_total // 2000
    for i in range(2000):
        d = app / "lib" / f"mod{i % 40:02}"
        d.mkdir(parents=True, exist_ok=True)
        text = " ".join(rng.choice(words) for _ in range(per_file // 6))
        (d / f"file{i:04}.py").write_text(text[:per_file])
    (root / "sandhaven-pkgdef.toml").write_text(PKGDEF)


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(cmd: list[str], cwd: Path | None = None) -> None:
    subprocess.run(cmd, check=True, cwd=cwd, stdout=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sandhaven-bench-"))
    try:
        src = work / "src"
        make_tree(src, args.size_mib)
        spk = work / "bench.spk"
        pack_s = timed(lambda: pack(src, SigningKey.generate(), spk))
        spk_bytes = spk.stat().st_size
        unpacked = sum(p.stat().st_size for p in (src / "app").rglob("*") if p.is_file())
        files = sum(1 for _ in (src / "app").rglob("*"))
        run(["tar", "-cf", str(work / "tree.tar"), "app"], cwd=src)
        run(["zstd", "-q", f"-{COMPRESSION_LEVEL}", "-f", str(work / "tree.tar"),
             "-o", str(work / "tree.tar.zst")])

        def install_once(i: int, sandboxed: bool = True) -> float:
            data = work / f"install{i}-{sandboxed}"
            store = Store.open(f"sqlite:///{data / 'store.sqlite3'}")
            try:
                seconds = timed(lambda: install_package(store, data / "packages", spk,
                                                        sandboxed=sandboxed))
            finally:
                store.close()
            written = sum(p.stat().st_size for p in (data / "packages").rglob("*")
                          if p.is_file() and not p.is_symlink())
            assert written == unpacked, (written, unpacked)
            return seconds

        def reference_once(i: int, archive: str, flags: list[str]) -> float:
            out = work / f"ref-{archive}-{i}"
            out.mkdir()

            def both() -> None:
                run(["sha256sum", str(spk)])
                run(["tar", *flags, "-xf", str(work / archive), "-C", str(out)])
            return timed(both)

        install_once(-1)  # warm the page cache and imports
        reference_once(-1, "tree.tar.zst", ["--zstd"])
        measures = {
            "ours": lambda i: install_once(i),
            "in_process": lambda i: install_once(i, sandboxed=False),
            "ref_zst": lambda i: reference_once(i, "tree.tar.zst", ["--zstd"]),
            "ref_tar": lambda i: reference_once(i, "tree.tar", []),
        }
        times: dict[str, list[float]] = {name: [] for name in measures}
        for i in range(args.runs):  # interleaved, each after a sync: no one pays for
            for name, measure in measures.items():  # another's writeback
                os.sync()
                times[name].append(measure(i))
        ours, in_process, ref_zst, ref_tar = (times[n] for n in measures)
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(work)], check=False)  # read-only trees
        shutil.rmtree(work, ignore_errors=True)

    ours_s, inproc_s, zst_s, tar_s = (statistics.median(x)
                                      for x in (ours, in_process, ref_zst, ref_tar))
    mib = spk_bytes / MiB
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs (load {load}), Python "
          f"{sys.version.split()[0]}; package {mib:.0f} MiB (.spk), {unpacked / MiB:.0f} MiB "
          f"unpacked, {files} entries; pack took {pack_s:.1f} s; median of {args.runs} runs\n")
    print("| measure | seconds | MiB/s of .spk | reference / this |")
    print("| --- | --- | --- | --- |")
    print(f"| verify + install | {ours_s:.2f} | {mib / ours_s:.0f} | — |")
    print(f"| verify + install, unpacked in-process | {inproc_s:.2f} | {mib / inproc_s:.0f} | "
          f"{inproc_s / ours_s:.2f}× |")
    print(f"| sha256sum + tar --zstd -x | {zst_s:.2f} | {mib / zst_s:.0f} | "
          f"{zst_s / ours_s:.2f}× |")
    print(f"| sha256sum + tar -x (plain tar) | {tar_s:.2f} | {mib / tar_s:.0f} | "
          f"{tar_s / ours_s:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
