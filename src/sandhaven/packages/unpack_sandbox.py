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
import json
import os
import subprocess
import sys
from pathlib import Path

from sandhaven import errors
from sandhaven.errors import PackageError, SandboxUnavailable
from sandhaven.packages import spk
from sandhaven.packages.limits import Limits
from sandhaven.packages.tree import TreeWriter
from sandhaven.sandbox import seccomp
from sandhaven.sandbox.worker import OUT, find_bwrap, sandbox_argv
from sandhaven.sandbox.worker import seccomp_program as _seccomp_program


def bwrap_argv(bwrap: str, output_parent: Path, fd: int, body_sha256: str, limits: Limits,
               *, seccomp_fd: int | None = None, python: str = sys.executable,
               python_paths: list[str] | None = None) -> list[str]:
    """The full command line, as a plain list a test can read: the worker sandbox
    of ``sandhaven.sandbox.worker``, then this module as the worker."""
    argv = sandbox_argv(bwrap, output_parent, seccomp_fd=seccomp_fd, python_paths=python_paths)
    argv += ["--", python, "-m", "sandhaven.packages.unpack_sandbox", str(fd), body_sha256,
             json.dumps(dataclasses.asdict(limits)), f"{OUT}/tree"]
    return argv


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
