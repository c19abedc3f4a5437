"""Peak memory of ``sandhaven verify`` and ``sandhaven install`` on a 1 GiB package.

    .venv/bin/python bench/packages_memory.py [--size-mib 1024]

Builds a package of ``--size-mib`` MiB of incompressible data (64 files), runs
each command as a child process and reads its peak resident set size from
``wait4`` (install unpacks in process here, so one process does all the work);
the same commands on the small Hello package give the baseline (interpreter
and libraries). Flat memory means the difference stays a few MiB, whatever the
package size. Figures: ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandhaven.packages.keys import SigningKey
from sandhaven.packages.pack import pack
from sandhaven.packages.testing import build_hello

PKGDEF = """
[app]
title = "Big"
version = 1
port = 8000

[[actions]]
noun_phrase = "thing"
command = { argv = ["/opt/app/run"] }

[continue_command]
argv = ["/opt/app/run"]

[files]
include = ["data"]
"""


def peak_rss_mib(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of one child process; fails if it exits non-zero."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{argv} exited {proc.returncode}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sandhaven-mem-"))
    cli = [sys.executable, "-m", "sandhaven"]
    try:
        key = SigningKey.generate()
        small = build_hello(work, key)
        src = work / "big"
        (src / "data").mkdir(parents=True)
        rng = random.Random(7)
        for i in range(64):
            with open(src / "data" / f"part{i:02}.bin", "wb") as f:
                for _ in range(args.size_mib // 64):
                    f.write(rng.randbytes(1 << 20))
        (src / "sandhaven-pkgdef.toml").write_text(PKGDEF)
        big = work / "big.spk"
        pack(src, key, big)
        shutil.rmtree(src)
        rows = []
        for label, spk in (("Hello", small), (f"{big.stat().st_size >> 20} MiB", big)):
            verify = peak_rss_mib([*cli, "verify", str(spk)])
            # Unpacking in process, so that one process does all the work and its
            # peak is the figure (the sandboxed unpacker runs the same code).
            install = peak_rss_mib([*cli, "--data-dir", str(work / f"data-{spk.stem}"),
                                    "install", str(spk)],
                                   {"SANDHAVEN_PACKAGES_UNPACK_SANDBOX": "none"})
            rows.append((label, verify, install))
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(work)], check=False)
        shutil.rmtree(work, ignore_errors=True)
    print("| package | verify: peak RSS | verify: time | install: peak RSS | install: time |")
    print("| --- | --- | --- | --- | --- |")
    for label, (v_rss, v_s), (i_rss, i_s) in rows:
        print(f"| {label} | {v_rss:.0f} MiB | {v_s:.1f} s | {i_rss:.0f} MiB | {i_s:.1f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
