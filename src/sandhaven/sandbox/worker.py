"""One-shot workers in bubblewrap: the second wall around code that parses
untrusted archives (package files, grain backups).

The parent hands the worker its input through inherited file descriptors and
one writable directory; the worker prints one JSON line as its answer. If a bug
in the parsing ever let a hostile archive run code, that code runs with no
network, no other process in sight, no capabilities, the grains' system-call
filter, the system read-only and nothing writable but that one directory.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from sandhaven.errors import SandboxUnavailable
from sandhaven.sandbox import seccomp

OUT = "/out"
#: The worker's user inside its own user namespace, mapped to the caller's user.
SANDBOX_UID = 1000


def sandbox_argv(bwrap: str, output_parent: Path, *, seccomp_fd: int | None = None,
                 python_paths: list[str] | None = None) -> list[str]:
    """bubblewrap's options up to (not including) ``--`` and the worker's command, as
    a plain list a test can read. Steps, in order:"""
    argv = [bwrap]
    # 1. Namespaces: user, PID, IPC, UTS, cgroup and network (loopback only); the
    #    sandbox dies with its parent and gets its own session (no TTY injection).
    argv += ["--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
             "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--cap-drop", "ALL"]
    # 2. The system, read-only: /usr and its usual symlinks, and wherever the
    #    interpreter and Sandhaven's code live.
    argv += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    # 3. Minimal /proc, /dev and a private /tmp, before the interpreter's own
    #    directories: those may live under /tmp (a checkout there), and a later
    #    tmpfs would hide them. The one writable place is /out.
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for path in _python_paths(python_paths):
        argv += ["--ro-bind", path, path]
    argv += ["--bind", str(output_parent), OUT, "--chdir", "/"]
    # 4. Environment: nothing inherited.
    argv += ["--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8"]
    # 5. The grains' system-call filter (sandhaven.sandbox.seccomp), loaded last.
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    return argv


def _python_paths(extra: list[str] | None) -> list[str]:
    """Existing directories outside /usr that the interpreter needs, outermost first."""
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path, *(extra or [])]
    found: list[str] = []
    for path in sorted({os.path.realpath(p) for p in candidates if p and os.path.isdir(p)}):
        if path == "/usr" or path.startswith("/usr/"):
            continue
        if not any(path == f or path.startswith(f + "/") for f in found):
            found.append(path)
    return found


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


@functools.cache
def seccomp_program() -> bytes:
    """The grains' filter, compiled once per process."""
    return seccomp.build_filter()


def run_worker(module: str, args: list[str], output_parent: Path, pass_fds: tuple[int, ...],
               timeout: float = 3600) -> tuple[dict[str, Any] | None, str]:
    """Run ``python -m module *args`` in the sandbox with ``output_parent`` at /out and
    ``pass_fds`` inherited; returns (its JSON answer or None, last stderr line).
    Raises SandboxUnavailable when bubblewrap or libseccomp is missing."""
    bwrap = find_bwrap()
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed.")
    filter_fd = seccomp.filter_fd(seccomp_program())
    try:
        argv = sandbox_argv(bwrap, output_parent, seccomp_fd=filter_fd)
        argv += ["--", sys.executable, "-m", module, *args]
        proc = subprocess.run(argv, pass_fds=(*pass_fds, filter_fd), capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=timeout)
    finally:
        os.close(filter_fd)
    detail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:300]
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1]), detail
    except (ValueError, IndexError):
        return None, detail
