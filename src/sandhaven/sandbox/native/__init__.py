"""The two small C programs of a grain, compiled with gcc at install time.

- ``sandhaven-spawn`` (spawn.c): joins the grain's cgroups, sets rlimits,
  stages bind sources, drops to the grain uid, execs bubblewrap;
- ``sandhaven-init`` (init.c): PID 1 inside the grain and its bridge.

Why C and not an existing package: Debian's ``tini`` and ``dumb-init`` forward
signals and reap, but the bridge must also relay the platform's Unix socket to
the app's port and the app's proxy port to the platform, and doing that in the
same small process keeps a grain's platform overhead near 1 MiB and 2 ms (a
Python bridge costs ~10 MiB and ~40 ms per start; field notes). The spawn steps
need root before exec, which no subprocess option offers safely in a threaded
server.

Binaries are kept under ``<dir>/<hash of the sources>/`` so that a changed
source is never run stale. ``python -m sandhaven.sandbox.native DIR`` builds
them (the install step); :func:`ensure_built` builds on first use otherwise.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sandhaven.errors import SandboxUnavailable

SOURCES = {"sandhaven-spawn": "spawn.c", "sandhaven-init": "init.c"}
CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror", "-D_FORTIFY_SOURCE=2", "-fstack-protector-strong"]


@dataclass(frozen=True)
class Helpers:
    """Paths of the built programs."""

    spawn: Path
    init: Path


def _source_dir() -> Path:
    return Path(__file__).resolve().parent


def source_hash() -> str:
    """16 hex digits over both sources and the flags."""
    h = hashlib.sha256(" ".join(CFLAGS).encode())
    for name in sorted(SOURCES.values()):
        h.update((_source_dir() / name).read_bytes())
    return h.hexdigest()[:16]


def ensure_built(base_dir: Path) -> Helpers:
    """Build the helpers under ``base_dir`` unless the current ones exist.

    Raises SandboxUnavailable when gcc is missing or fails (its first error line).
    """
    target = base_dir / source_hash()
    helpers = Helpers(spawn=target / "sandhaven-spawn", init=target / "sandhaven-init")
    if helpers.spawn.exists() and helpers.init.exists():
        return helpers
    gcc = shutil.which("gcc")
    if gcc is None:
        raise SandboxUnavailable("gcc is not installed; it builds the grain init (apt gcc).")
    base_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=base_dir, prefix=".build-"))
    try:
        for program, source in SOURCES.items():
            result = subprocess.run(
                [gcc, *CFLAGS, "-o", str(tmp / program), str(_source_dir() / source)],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                first = (result.stderr.strip().splitlines() or ["unknown error"])[0]
                raise SandboxUnavailable(f"Building {program} failed: {first}")
            os.chmod(tmp / program, 0o755)
        os.chmod(tmp, 0o755)
        try:
            tmp.rename(target)
        except OSError:
            if not target.exists():  # another process won the race otherwise
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return helpers
