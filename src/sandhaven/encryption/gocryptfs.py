"""gocryptfs volumes: check the host, create, mount, unmount.

gocryptfs (Debian ``gocryptfs`` 2.3, FUSE) keeps a directory of ciphertext and
shows its plaintext at a mount point while mounted. Each volume is created with
``-scryptn 10``: its password is 32 random bytes held wrapped by the KEK, so
scrypt's stretching buys nothing and would cost every mount ~0.5 s at the default.
The password reaches gocryptfs on its standard input (never a command line,
which ``/proc`` shows to everyone).

Every function raises EncryptionError with one line naming what is wrong.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import ctypes.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sandhaven.errors import EncryptionError

# Mount and init finish in ~20 ms; this only bounds a hung FUSE.
TIMEOUT = 30.0
_MNT_DETACH = 2


def check_host(binary: str, fuse_device: str = "/dev/fuse") -> str:
    """The full path of the gocryptfs binary, once FUSE is usable.

    Raises EncryptionError: gocryptfs missing, FUSE device missing or unusable.
    """
    found = shutil.which(binary)
    if found is None:
        raise EncryptionError(
            f"gocryptfs is not installed (setting 'storage.gocryptfs' is {binary!r}): "
            "install the Debian package gocryptfs (apt-get install gocryptfs fuse3).")
    try:
        fd = os.open(fuse_device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise EncryptionError(
            f"FUSE is not available ({fuse_device}: {exc.strerror}): load the fuse kernel "
            "module (modprobe fuse), or give a container the device (--device /dev/fuse).",
        ) from None
    os.close(fd)
    return found


def _run(argv: list[str], password: bytes) -> tuple[int, str]:
    """Run gocryptfs with the password on stdin. Its mount daemon inherits stdout and
    stderr, so they go to /dev/null and a file: pipes would never reach EOF."""
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=err, close_fds=True)
        except OSError as exc:
            raise EncryptionError(f"gocryptfs cannot run ({argv[0]}: {exc.strerror}).") from None
        assert proc.stdin is not None
        try:
            proc.stdin.write(base64.b64encode(password) + b"\n")
            proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            code = proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise EncryptionError(f"gocryptfs did not finish in {TIMEOUT:.0f} s.") from None
        err.seek(0)
        text = err.read().decode(errors="replace").strip().splitlines()
    return code, (text[-1] if text else "")


def init(binary: str, cipher_dir: Path, password: bytes) -> None:
    """Create an empty volume in ``cipher_dir`` (made here, mode 0700)."""
    cipher_dir.mkdir(mode=0o700, parents=True, exist_ok=False)
    code, err = _run([binary, "-init", "-q", "-scryptn", "10", "--", str(cipher_dir)], password)
    if code != 0:
        shutil.rmtree(cipher_dir, ignore_errors=True)
        raise EncryptionError(f"gocryptfs could not create a volume in {cipher_dir}: "
                              f"{err or f'exit status {code}'}.")


def mount(binary: str, cipher_dir: Path, mountpoint: Path, password: bytes, *,
          allow_other: bool) -> None:
    """Mount the volume at ``mountpoint`` (an empty directory, made if needed) and
    check that it is a mount point. ``allow_other`` lets other uids in (the grain's,
    when the server is root); the kernel then checks file modes (gocryptfs adds
    ``default_permissions``) and files are created as their caller."""
    mountpoint.mkdir(mode=0o700, parents=True, exist_ok=True)
    argv = [binary, "-q", "-noprealloc", "-nosyslog"]
    if allow_other:
        argv.append("-allow_other")
    code, err = _run([*argv, "--", str(cipher_dir), str(mountpoint)], password)
    if code == 12:
        raise EncryptionError(f"The volume {cipher_dir} does not open with its key "
                              "(gocryptfs: password incorrect).")
    if code != 0:
        raise EncryptionError(f"gocryptfs could not mount {cipher_dir}: "
                              f"{err or f'exit status {code}'}.")
    if not is_mounted(mountpoint):
        raise EncryptionError(f"gocryptfs reported success but {mountpoint} is not mounted.")


def is_mounted(mountpoint: Path) -> bool:
    """True when ``mountpoint`` is a live mount (a dead FUSE daemon gives False)."""
    try:
        return os.path.ismount(mountpoint) and os.stat(mountpoint) is not None
    except OSError:
        return False


def _listed(mountpoint: Path) -> bool:
    target = os.path.realpath(mountpoint)
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            if line.split()[4].encode().decode("unicode_escape") == target:
                return True
    return False


def unmount(mountpoint: Path) -> None:
    """Unmount (``fusermount3 -u``; a lazy detach when busy or when the daemon
    died). No-op when nothing is mounted there."""
    if not _listed(mountpoint):
        return
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    if tool is not None:
        done = subprocess.run([tool, "-u", "-q", str(mountpoint)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              check=False, timeout=TIMEOUT)
        if done.returncode == 0 and not _listed(mountpoint):
            return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.umount2(str(mountpoint).encode(), _MNT_DETACH) != 0 and tool is not None:
        subprocess.run([tool, "-u", "-z", "-q", str(mountpoint)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                       timeout=TIMEOUT)
    if _listed(mountpoint):
        raise EncryptionError(f"{mountpoint} cannot be unmounted.")
