"""Backup and restore throughput of a grain tree against ``tar | zstd``.

The same tree, in the same run:

- **backup**: ``sandhaven.backup.writer.write_backup`` (stored zip with SHA-256 of
  every file) into a file, against ``tar -cf - . | zstd -q -o FILE`` (zstd's
  default level 3, one thread);
- **restore**: the restore worker in its bubblewrap sandbox
  (``sandhaven.backup.restore_worker unpack``: checks the whole archive, unpacks
  with every checksum verified), against ``zstd -dc FILE | tar -xf -``.

MB/s are bytes of file data in the tree per second of wall time; the ratio is
ours / reference (goal: ≥ 0.8 both ways). The tree: half incompressible data
(random files of 1–64 MiB), half text-like data in 10,000 small files and a few
larger ones, like a wiki or a mail store. The page cache is warm for every
contender alike (each reads the tree or archive right after it was written).

Run: ``.venv/bin/python bench/backup_bench.py [--size-mib 2048] [--rounds 3]``;
needs Debian's ``zstd`` and ``tar``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sandhaven.backup.writer import write_backup
from sandhaven.sandbox.worker import run_worker

WORDS = ("grain", "share", "wiki", "calendar", "note", "page", "sandbox", "edit", "view",
         "the", "a", "of", "and", "to", "in", "for", "with", "on", "milk", "bread")
BASE = {"app_id": "a" * 52, "app_version": 1, "package_id": "0" * 32, "title": "Bench",
        "created_at": datetime.now(UTC), "backed_up_at": datetime.now(UTC)}


def make_tree(root: Path, size: int) -> int:
    """Fill ``root`` with ``size`` bytes of file data; returns the bytes written."""
    rng = random.Random(7)
    written = 0
    random_part = size // 2
    n = 0
    while written < random_part:
        chunk = min(rng.randint(1, 64) << 20, random_part - written)
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        with open(root / "blobs" / f"b{n}.bin", "wb") as f:
            left = chunk
            while left:
                part = min(left, 8 << 20)
                f.write(os.urandom(part))
                left -= part
        written += chunk
        n += 1
    text = " ".join(rng.choice(WORDS) for _ in range(200_000)).encode()
    small = 10_000
    per = (size - written) // 2 // small
    for i in range(small):
        d = root / "pages" / f"{i % 100:02}"
        d.mkdir(parents=True, exist_ok=True)
        start = rng.randrange(0, len(text) - per - 1)
        (d / f"page{i}.txt").write_bytes(text[start:start + per])
        written += per
    m = 0
    while written < size:
        chunk = min(32 << 20, size - written)
        with open(root / f"log{m}.txt", "wb") as f:
            left = chunk
            while left:
                part = min(left, len(text))
                f.write(text[:part])
                left -= part
        written += chunk
        m += 1
    return written


def timed(fn, *args) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def ours_backup(tree: Path, out: Path) -> None:
    with open(out, "wb") as f:
        write_backup(tree, b"", BASE, f)
        f.flush()
        os.fsync(f.fileno())


def ref_backup(tree: Path, out: Path) -> None:
    subprocess.run(f"tar -C {tree} -cf - . | zstd -q -f -o {out} && sync -f {out}",
                   shell=True, check=True)


def ours_restore(archive: Path, parent: Path) -> None:
    with open(archive, "rb") as f:
        answer, detail = run_worker("sandhaven.backup.restore_worker",
                                    ["unpack", str(f.fileno()), "/out/var"], parent,
                                    (f.fileno(),))
    assert answer and answer.get("ok"), (answer, detail)
    subprocess.run(["sync", "-f", str(parent)], check=True)


def ref_restore(archive: Path, parent: Path) -> None:
    (parent / "var").mkdir()
    subprocess.run(f"zstd -dc {archive} | tar -C {parent / 'var'} -xf - && sync -f {parent}",
                   shell=True, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"),
                        help="where the tree and archives go (a real disk, not tmpfs)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sandhaven-backup-bench-", dir=args.dir))
    try:
        tree = work / "tree"
        tree.mkdir()
        data = make_tree(tree, args.size_mib << 20)
        mb = data / 1e6
        results: dict[str, list[float]] = {k: [] for k in ("ours_b", "ref_b", "ours_r", "ref_r")}
        zip_path, zst_path = work / "b.zip", work / "b.tar.zst"
        for r in range(args.rounds):
            results["ref_b"].append(mb / timed(ref_backup, tree, zst_path))
            results["ours_b"].append(mb / timed(ours_backup, tree, zip_path))
            for name, fn, archive in (("ref_r", ref_restore, zst_path),
                                      ("ours_r", ours_restore, zip_path)):
                parent = work / f"restore-{name}"
                parent.mkdir()
                results[name].append(mb / timed(fn, archive, parent))
                shutil.rmtree(parent)
            print(f"round {r + 1}: backup {results['ours_b'][-1]:.0f} vs "
                  f"{results['ref_b'][-1]:.0f} MB/s, restore {results['ours_r'][-1]:.0f} vs "
                  f"{results['ref_r'][-1]:.0f} MB/s", flush=True)
        sizes = (work / "b.zip").stat().st_size, (work / "b.tar.zst").stat().st_size
        med = {k: statistics.median(v) for k, v in results.items()}
        print(f"\n{args.size_mib} MiB tree ({data:,} bytes of file data), median of "
              f"{args.rounds} rounds")
        print("| | Sandhaven | tar + zstd | ratio |\n| --- | ---: | ---: | ---: |")
        print(f"| backup MB/s | {med['ours_b']:.0f} | {med['ref_b']:.0f} | "
              f"{med['ours_b'] / med['ref_b']:.2f} |")
        print(f"| restore MB/s | {med['ours_r']:.0f} | {med['ref_r']:.0f} | "
              f"{med['ours_r'] / med['ref_r']:.2f} |")
        print(f"| archive size, MiB | {sizes[0] / 2**20:.0f} | {sizes[1] / 2**20:.0f} | |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
