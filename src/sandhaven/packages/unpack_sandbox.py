"""Unpacking a verified package inside a bubblewrap sandbox: the second wall.

The archive rules (``archive.walk``) are the first wall. If a bug in them, in
zstd or in Python ever let a hostile archive run code, that code runs here: a
fresh process with no network, no other process in sight, no capabilities, the
grains' system-call filter, the system read-only, and one writable directory —
the empty one the tree is unpacked into. It reads the package through one
inherited file descriptor.

The worker verifies the file again (it trusts nothing from its parent but the
limits), checks the body hash the parent verified, and unpacks. The parent then
re-checks the finished tree itself (``tree.check_tree``) before using it, so
even a subverted worker can only produce a tree the format allows.

Protocol: ``python -m sandhaven.packages.unpack_sandbox FD EXPECTED_BODY_SHA256
LIMITS_JSON /out/tree`` prints one JSON line: ``{"ok": true, "entries": n,
"bytes": n}`` or ``{"ok": false, "error": "<PackageError subclass>",
"message": "..."}``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from sandhaven import errors
from sandhaven.errors import PackageError, SandboxUnavailable
from sandhaven.packages import spk
from sandhaven.packages.limits import Limits
from sandhaven.packages.tree import TreeWriter
from sandhaven.sandbox import seccomp

OUT = "/out"
#: The worker's user inside its own user namespace, mapped to the installer's user.
SANDBOX_UID = 1000


def bwrap_argv(bwrap: str, output_parent: Path, fd: int, body_sha256: str, limits: Limits,
               *, seccomp_fd: int | None = None, python: str = sys.executable,
               python_paths: list[str] | None = None) -> list[str]:
    """The full command line, as a plain list a test can read. Steps, in order:"""
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
    # 6. The worker.
    argv += ["--", python, "-m", "sandhaven.packages.unpack_sandbox", str(fd), body_sha256,
             json.dumps(dataclasses.asdict(limits)), f"{OUT}/tree"]
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
def _seccomp_program() -> bytes:
    """The grains' filter, compiled once per process."""
    return seccomp.build_filter()


def extract_sandboxed(pkg: spk.VerifiedPackage, output_parent: Path, limits: Limits
                      ) -> None:
    """Unpack ``pkg`` into ``output_parent/tree`` inside bubblewrap.

    ``output_parent`` must be an empty directory owned by this process's user,
    who is the sandbox user inside the user namespace. Raises the PackageError
    the worker reported, or PackageError when the sandbox cannot run or dies.
    """
    bwrap = find_bwrap()
    if bwrap is None:
        raise PackageError("bubblewrap (bwrap) is not installed, and packages are unpacked "
                           "in a sandbox; install it or set packages.unpack_sandbox = none.")
    fd = pkg.file.fileno()
    try:
        filter_fd = seccomp.filter_fd(_seccomp_program())
    except SandboxUnavailable as exc:
        raise PackageError(f"The unpacking sandbox cannot start: {exc} Install libseccomp2 "
                           "or set packages.unpack_sandbox = none.") from None
    try:
        argv = bwrap_argv(bwrap, output_parent, fd, pkg.body_sha256.hex(), limits,
                          seccomp_fd=filter_fd)
        proc = subprocess.run(argv, pass_fds=(fd, filter_fd), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=3600)
    finally:
        os.close(filter_fd)
    try:
        report = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise PackageError(f"Unpacking failed in its sandbox (exit {proc.returncode}): "
                           f"{detail}") from None
    if not report.get("ok"):
        cls = getattr(errors, str(report.get("error")), None)
        if not (isinstance(cls, type) and issubclass(cls, PackageError)):
            cls = PackageError
        raise cls(str(report.get("message", "unpacking failed")))


def worker(argv: list[str]) -> int:
    """Inside the sandbox: verify from the inherited fd, check the body hash the
    parent verified, unpack into the output directory; report one JSON line."""
    fd, expected, limits_json, out = int(argv[0]), argv[1], argv[2], argv[3]
    limits = Limits(**json.loads(limits_json))
    try:
        with os.fdopen(fd, "rb") as f:
            pkg = spk.verify(f, limits)
            if pkg.body_sha256.hex() != expected:
                raise errors.BadSignature("The package file changed after it was verified.")
            writer = TreeWriter(Path(out), read_only=True)
            entries, size = spk.extract_verified(pkg, writer, limits)
            writer.finish(root=False)
    except PackageError as exc:
        print(json.dumps({"ok": False, "error": type(exc).__name__, "message": str(exc)}))
        return 1
    print(json.dumps({"ok": True, "entries": entries, "bytes": size}))
    return 0


if __name__ == "__main__":  # pragma: no cover - runs inside the sandbox
    sys.exit(worker(sys.argv[1:]))
