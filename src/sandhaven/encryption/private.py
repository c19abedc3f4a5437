"""The server's private area and the key loading at start.

With encryption on, what the server itself keeps of users lives in one
server-level gocryptfs volume, mounted while the server runs::

    DATA_DIR/keys/kek            the KEK's key file (0600; back it up elsewhere)
    DATA_DIR/keys/private.key    the private area's password, wrapped by the KEK
    DATA_DIR/private.cipher/     its ciphertext
    DATA_DIR/private/            its plaintext while mounted:
        sandhaven.sqlite3        the store (titles, users, shares, access logs)
        grain-logs/<grain ID>/   grain logs (a grain's output may hold user data)
        tmp/                     temporary files and uploads in transit (TMPDIR)

SQLite, SQLAlchemy and Alembic run unchanged on top (no SQLCipher, which would
need another system library and covers the store only). Packages (app code,
public) stay outside. With encryption off (development), :class:`Storage`
points at plain directories and grains have plain ``var`` directories.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from sandhaven.encryption import gocryptfs, wrapped
from sandhaven.encryption.kek import Kek, read_key_file, write_key_file
from sandhaven.encryption.volumes import GrainVolumes
from sandhaven.errors import EncryptionError

log = structlog.get_logger("sandhaven.encryption")
PRIVATE_LABEL = "private"
PLAINTEXT_WARNING = ("storage.encryption is off: grain files, the store and logs are "
                     "PLAINTEXT on disk. For development only.")


def keys_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "keys"


def kek_path(data_dir: Path) -> Path:
    return keys_dir(data_dir) / "kek"


def has_encrypted_data(data_dir: Path) -> bool:
    """True when anything under ``data_dir`` needs a KEK to open."""
    data_dir = Path(data_dir)
    if (data_dir / "private.cipher").exists() or (keys_dir(data_dir) / "private.key").exists():
        return True
    grains = data_dir / "grains"
    return grains.is_dir() and any((g / "key").exists() for g in grains.iterdir())


def load_kek(settings: Any, passphrase: str | None = None) -> Kek:
    """The KEK of the data dir. In file mode a first start (no key file, nothing
    encrypted yet) makes one. Raises EncryptionError: key file missing while
    encrypted data exists, damaged, unsafe, or a passphrase needed or wrong."""
    data_dir = Path(settings.data_dir)
    path = kek_path(data_dir)
    if not path.exists() and settings.storage_key_source == "file" \
            and not has_encrypted_data(data_dir):
        kek = Kek.generate()
        write_key_file(path, kek)
        log.warning("kek_created", path=str(path),
                    advice="back up the keys directory somewhere else: without it "
                           "nothing stored here can be read")
        return kek
    if not path.exists() and settings.storage_key_source == "passphrase":
        raise EncryptionError(f"Key file {path} is missing; create it with "
                              "`sandhaven keys init --passphrase` (or restore your backup).")
    return read_key_file(path, passphrase)


@dataclass(frozen=True)
class Storage:
    """Where one server keeps user data. ``volumes`` is None when grains use plain
    directories (encryption off); ``tmp_dir`` None means the system's."""

    encrypted: bool
    database_url: str
    log_dir: Path
    tmp_dir: Path | None
    volumes: GrainVolumes | None
    kek: Kek | None = None

    @property
    def encrypted_store(self) -> bool:
        """True when the store is on the private area's gocryptfs volume (open it
        with ``Store.open(..., wal=False)``)."""
        return self.tmp_dir is not None

    @classmethod
    def unmounted(cls, settings: Any, kek: Kek | None = None) -> Storage:
        """Storage without the private area: the store at the ``database_url``
        setting, plain logs; grain volumes still encrypted when encryption is on.
        For in-process use that serves nothing (tests of the shell, the CLI)."""
        data = Path(settings.data_dir)
        volumes = None
        if settings.storage_encryption:
            kek = kek or load_kek(settings)
            volumes = grain_volumes(settings, kek, settings.storage_gocryptfs)
        return cls(bool(settings.storage_encryption), settings.database,
                   data / "grain-logs", None, volumes, kek)


def grain_volumes(settings: Any, kek: Kek, binary: str) -> GrainVolumes:
    """The grain volumes of the data dir; plaintext under the supervisor's runtime dir
    (``RUNTIME/volumes``, cleaned of stale mounts at every supervisor start)."""
    from sandhaven.supervisor import SupervisorConfig

    runtime = SupervisorConfig.from_settings(settings).runtime_dir
    return GrainVolumes(kek, Path(settings.data_dir) / "grains", runtime / "volumes",
                        binary, allow_other=os.geteuid() == 0)


def needs_passphrase_file(data_dir: Path) -> bool:
    """True when the KEK's key file is missing or sealed by a passphrase."""
    from sandhaven.encryption.kek import needs_passphrase

    path = kek_path(data_dir)
    return not path.exists() or needs_passphrase(path)


def private_mountpoint(data_dir: Path) -> Path:
    return Path(data_dir) / "private"


@contextlib.contextmanager
def open_storage(settings: Any, kek: Kek | None = None, *,
                 admin_command: bool = False) -> Iterator[Storage]:
    """The storage of a server about to serve, or of an admin command: with
    encryption on, check the host, mount the private area (made at first start)
    and yield; unmount when done unless a running server had it mounted.
    ``serve`` points temporary files at ``Storage.tmp_dir`` with :func:`private_tmp`.

    ``admin_command``: a command run beside (or without) the server. It uses the
    server's mount when there is one, else mounts the area itself holding
    ``DATA_DIR/private.lock`` until it unmounts, so commands never unmount under
    each other; its Storage has grain volumes only when it mounted the area itself.

    Raises EncryptionError (FUSE or gocryptfs unusable, keys missing or wrong,
    an unencrypted store left by a run with encryption off).
    """
    data = Path(settings.data_dir)
    if not settings.storage_encryption:
        if not admin_command:
            log.warning("encryption_off", warning=PLAINTEXT_WARNING)
        yield Storage(False, settings.database, data / "grain-logs", None, None)
        return
    if settings.database_url:
        raise EncryptionError("Setting 'database_url' is set: an external database is not "
                              "in the encrypted private area; encrypt it where it runs and "
                              "leave database_url empty here, or set storage.encryption = "
                              "false.")
    binary = gocryptfs.check_host(settings.storage_gocryptfs, str(settings.storage_fuse_device))
    point = private_mountpoint(data)
    if not admin_command:  # serve holds the data dir lock: no rotation runs
        from sandhaven.encryption.rotate import recover

        recover(data)
    with contextlib.ExitStack() as stack:
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = stack.enter_context(_flock(data / "private.lock"))
        mounted_here = not gocryptfs.is_mounted(point) or not admin_command
        if mounted_here:
            kek = kek or load_kek(settings)
            _mount_private(data, point, binary, kek)
            stack.callback(gocryptfs.unmount, point)
            if not admin_command:
                lock.close()  # a serving server holds its data dir lock instead
        else:
            lock.close()  # the running server's mount: nothing to unmount here
            if kek is None and not needs_passphrase_file(data):
                kek = load_kek(settings)  # grain volumes need it (a restore)
        tmp = point / "tmp"
        for sub in (tmp, point / "grain-logs"):
            sub.mkdir(mode=0o700, exist_ok=True)
        volumes = grain_volumes(settings, kek, binary) if kek is not None else None
        yield Storage(True, f"sqlite:///{point / 'sandhaven.sqlite3'}", point / "grain-logs",
                      tmp, volumes, kek)


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[Any]:
    with open(path, "a+b") as f:
        os.fchmod(f.fileno(), 0o600)
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        yield f


@contextlib.contextmanager
def private_tmp(storage: Storage) -> Iterator[None]:
    """For the life of a serving process: point :mod:`tempfile` and TMPDIR (for
    child processes) at the private area's ``tmp``, so the shell's spooled uploads
    and other temporary files are encrypted. Process-wide, like TMPDIR itself;
    no-op when the storage has no private tmp."""
    if storage.tmp_dir is None:
        yield
        return
    tmp = storage.tmp_dir
    previous = (tempfile.tempdir, os.environ.get("TMPDIR"))
    tempfile.tempdir = str(tmp)
    os.environ["TMPDIR"] = str(tmp)
    try:
        yield
    finally:
        tempfile.tempdir = previous[0]
        if previous[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = previous[1]


def _mount_private(data: Path, point: Path, binary: str, kek: Kek) -> None:
    cipher = data / "private.cipher"
    record = keys_dir(data) / "private.key"
    gocryptfs.unmount(point)  # what a killed server left
    if not cipher.exists():
        if (data / "sandhaven.sqlite3").exists():
            raise EncryptionError(
                f"{data} holds an unencrypted store (sandhaven.sqlite3) from a run with "
                "storage.encryption off; start with storage.encryption = false, or move it "
                "away to start an encrypted server.")
        password = wrapped.new_password()
        keys_dir(data).mkdir(mode=0o700, exist_ok=True)
        wrapped.create(record, PRIVATE_LABEL, password, kek)
        gocryptfs.init(binary, cipher, password)
        log.info("private_area_created", path=str(cipher))
    password = wrapped.unwrap(record, PRIVATE_LABEL, kek)
    gocryptfs.mount(binary, cipher, point, password, allow_other=False)
    os.chmod(point, 0o700)
