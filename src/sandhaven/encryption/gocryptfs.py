"""gocryptfs volumes: check the host, create, mount, unmount.

gocryptfs (Debian ``gocryptfs`` 2.3, FUSE) keeps a directory of ciphertext and
shows its plaintext at a mount point while mounted. Each volume is created with
``-scryptn 10``: its password is 32 random bytes held wrapped by the KEK, so
scrypt's stretching buys nothing and would cost every mount ~0.5 s at the default.
The password reaches gocryptfs on its standard input (never a command line,
which ``/proc`` shows to everyone).

Each mounted volume is one gocryptfs process in the foreground (``-fg``) under
a keeper: a ``/bin/sh`` started through ``setpriv --pdeathsig TERM``
(util-linux) by one thread that lives as long as this process. When this
process dies, even by SIGKILL, the kernel sends the keeper SIGTERM, the keeper
passes it to gocryptfs, and gocryptfs unmounts (lazily when busy) and exits:
no plaintext stays mounted behind a killed server. The keeper exists because
the kernel forgets a parent-death signal whenever a thread's credentials
change, and gocryptfs switches its threads' file-system uid to each caller's
under ``allow_other`` (credentials(7), ``commit_creds``); the shell's never
change. (A parent-death signal follows the *thread* that started the child,
hence the one long-lived thread.)

Every function raises EncryptionError with one line naming what is wrong.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import os
import queue
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sandhaven.errors import EncryptionError

# Mount and init finish in ~20 ms; this only bounds a hung FUSE.
TIMEOUT = 30.0
UNMOUNT_GRACE = 0.5
"""Seconds a daemon has to exit by itself after its mount is gone."""
_MNT_DETACH = 2


def check_host(binary: str, fuse_device: str = "/dev/fuse") -> str:
    """The full path of the gocryptfs binary, once FUSE is usable.

    Raises EncryptionError: gocryptfs or setpriv missing, FUSE device missing or
    unusable.
    """
    found = shutil.which(binary)
    if found is None:
        raise EncryptionError(
            f"gocryptfs is not installed (setting 'storage.gocryptfs' is {binary!r}): "
            "install the Debian package gocryptfs (apt-get install gocryptfs fuse3).")
    if shutil.which("setpriv") is None:
        raise EncryptionError("setpriv is not installed: install the Debian package "
                              "util-linux (apt-get install util-linux).")
    try:
        fd = os.open(fuse_device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise EncryptionError(
            f"FUSE is not available ({fuse_device}: {exc.strerror}): load the fuse kernel "
            "module (modprobe fuse), or give a container the device (--device /dev/fuse).",
        ) from None
    os.close(fd)
    return found


def _start(popen: Any, argv: list[str], name: str, password: bytes, stdout: Any,
           err: Any) -> subprocess.Popen[bytes]:
    """``popen(argv)`` with the password (base64, one line) written to its stdin and
    stdin closed; errors to the file ``err``. ``name`` is the gocryptfs binary, for
    the message of the EncryptionError raised when it cannot start."""
    try:
        proc = popen(argv, stdin=subprocess.PIPE, stdout=stdout, stderr=err, close_fds=True)
    except OSError as exc:
        raise EncryptionError(f"gocryptfs cannot run ({name}: {exc.strerror}).") from None
    assert proc.stdin is not None
    try:
        proc.stdin.write(base64.b64encode(password) + b"\n")
        proc.stdin.close()
    except BrokenPipeError:
        pass
    return proc  # type: ignore[no-any-return]


def _run(argv: list[str], password: bytes) -> tuple[int, str]:
    """Run gocryptfs to completion (``-init``) with the password on stdin; returns
    (exit status, last line of its errors)."""
    with tempfile.TemporaryFile() as err:
        proc = _start(subprocess.Popen, argv, argv[0], password, subprocess.DEVNULL, err)
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


class _Spawner:
    """Starts processes from one daemon thread that lives as long as the process,
    so that their parent-death signal fires only when the process dies."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], list[str],
                                                dict[str, Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="gocryptfs-spawner",
                                                daemon=True)
                self._thread.start()
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._requests.put((done, argv, kwargs))
        return done.result()  # type: ignore[no-any-return]

    def _serve(self) -> None:
        while True:
            done, argv, kwargs = self._requests.get()
            try:
                done.set_result(subprocess.Popen(argv, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                done.set_exception(exc)


_spawner = _Spawner()
_daemons: dict[str, subprocess.Popen[bytes]] = {}  # mount point (real path) -> daemon
_daemons_lock = threading.Lock()


def _reap(mountpoint: Path, grace: float) -> None:
    """End the daemon of ``mountpoint`` (if this process started one) once its mount
    is gone: it exits by itself within ``grace`` seconds after a plain unmount;
    after a lazy one it would serve on while anything still holds the detached
    tree (a copy in a dying sandbox's namespace), so it is told to stop (TERM
    through its keeper; writes are synchronous, nothing is lost), and killed if
    it does not. No zombie stays behind."""
    with _daemons_lock:
        proc = _daemons.pop(os.path.realpath(mountpoint), None)
    if proc is None:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
        return
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
        return
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    with contextlib.suppress(OSError, ValueError):
        for pid in children.read_text().split():
            os.kill(int(pid), signal.SIGKILL)
    proc.kill()
    proc.wait()


_KEEPER = (
    # $1 is gocryptfs, the rest its arguments. gocryptfs signals USR1 to the
    # keeper once the file system answers (-notifypid, what its own daemon mode
    # waits for: the mount table lists the mount earlier, while go-fuse still
    # sets itself up through it, and a request then can deadlock it); the keeper
    # says "ready" on its stdout. stdin (the password) goes to gocryptfs
    # explicitly: a background job's is /dev/null otherwise. A TERM or INT for
    # the keeper goes on to gocryptfs, whose exit status becomes the keeper's.
    'bin=$1; shift; exec 3<&0; '
    'trap \'echo ready 2>/dev/null || :\' USR1; '
    '"$bin" -notifypid=$$ "$@" 0<&3 3<&- >/dev/null & child=$!; '
    'exec 3<&- 0</dev/null; '
    'trap \'kill -TERM "$child" 2>/dev/null\' TERM INT; '
    'while :; do wait "$child"; code=$?; kill -0 "$child" 2>/dev/null || break; done; '
    'exit "$code"'
)


def _read_ready(stdout: Any, deadline: float) -> bool | None:
    """True once the keeper writes "ready"; None at end of file (it ended); False
    when ``deadline`` (monotonic seconds) passes first."""
    buffered = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        readable, _, _ = select.select([stdout], [], [], left)
        if not readable:
            continue
        chunk = os.read(stdout.fileno(), 64)
        if not chunk:
            return None
        buffered += chunk
        if b"ready" in buffered:
            return True


def _start_daemon(argv: list[str], password: bytes, mountpoint: Path) -> tuple[int, str]:
    """Start the foreground gocryptfs of ``argv`` and return (0, "") once
    ``mountpoint`` is mounted, or (exit status, last line of its errors) when it
    exits first. Raises EncryptionError when it cannot start or hangs."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise EncryptionError("setpriv is not installed: install the Debian package "
                              "util-linux (apt-get install util-linux).")
    with tempfile.TemporaryFile() as err:
        proc = _start(_spawner.popen, [setpriv, "--pdeathsig", "TERM", "--", "/bin/sh", "-c",
                                       _KEEPER, "sandhaven-gocryptfs-keeper", *argv],
                      argv[0], password, subprocess.PIPE, err)
        # Ready when the keeper says so (gocryptfs's USR1, ~20 ms), or failed when
        # the keeper ends first (wrong password: exit 12).
        assert proc.stdout is not None
        ready = _read_ready(proc.stdout, time.monotonic() + TIMEOUT)
        proc.stdout.close()
        if ready is False:  # hung: the keeper passes TERM on; then it goes
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise EncryptionError(f"gocryptfs did not mount {mountpoint} in "
                                  f"{TIMEOUT:.0f} s.")
        if ready is None:  # the keeper ended: gocryptfs refused (its status says why)
            code = proc.wait()
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            return code, (lines[-1] if lines else "")
    with _daemons_lock:
        _daemons[os.path.realpath(mountpoint)] = proc
    return 0, ""


def mount(binary: str, cipher_dir: Path, mountpoint: Path, password: bytes, *,
          allow_other: bool) -> None:
    """Mount the volume at ``mountpoint`` (an empty directory, made if needed) and
    check that it is a mount point. ``allow_other`` lets other uids in (the grain's,
    when the server is root); the kernel then checks file modes (gocryptfs adds
    ``default_permissions``) and files are created as their caller. The daemon
    is a child of this process and ends with it (see the module's notes)."""
    mountpoint.mkdir(mode=0o700, parents=True, exist_ok=True)
    _reap(mountpoint, 0)  # a daemon of an earlier mount here that has died
    argv = [binary, "-fg", "-q", "-noprealloc", "-nosyslog"]
    if allow_other:
        argv.append("-allow_other")
    code, err = _start_daemon([*argv, "--", str(cipher_dir), str(mountpoint)], password,
                              mountpoint)
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
        _reap(mountpoint, 0)
        return
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    if tool is not None:
        done = subprocess.run([tool, "-u", "-q", str(mountpoint)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              check=False, timeout=TIMEOUT)
        if done.returncode == 0 and not _listed(mountpoint):
            _reap(mountpoint, UNMOUNT_GRACE)  # gocryptfs exits once unmounted
            return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.umount2(str(mountpoint).encode(), _MNT_DETACH) != 0 and tool is not None:
        subprocess.run([tool, "-u", "-z", "-q", str(mountpoint)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                       timeout=TIMEOUT)
    if _listed(mountpoint):
        raise EncryptionError(f"{mountpoint} cannot be unmounted.")
    _reap(mountpoint, UNMOUNT_GRACE)
