"""Whole-server backups: the data directory of a stopped server — store, installed
packages, grains, their logs and the server's keys — in one tar archive encrypted
with a passphrase (OpenPGP through GnuPG, ``sandhaven.backup.encryption``).

Restoring needs an empty (or new) data directory and the server stopped; the
archive is decrypted and unpacked into a staging directory beside it, entry by
entry through ``_check_member`` (nothing outside the tree, no device files, no
setuid bits), and renamed into place only when all of
it decrypted and verified (OpenPGP's integrity check covers the whole file).
Grain storage stays as it is on disk (ciphertext when encryption at rest is on);
see docs/administering/backups.md for what the server's keys have to do with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from sandhaven import pathsafety
from sandhaven.backup import encryption
from sandhaven.backup.writer import open_new
from sandhaven.errors import BadBackup, ConfigError, InvalidInput, SandhavenError

#: Names in the data directory a server backup leaves out: the lock of a running
#: server, temporary files, SQLite's shared-memory index (rebuilt on open), the
#: plaintext view of the private area, and the app recipes' build trees.
SKIP = {"serve.lock", "tmp", "sandhaven.sqlite3-shm", "private", "private.lock",
        "build"}  # build: recipe build trees, remade by `sandhaven catalog build`
FORMAT_MARKER = "sandhaven-server-backup-1"


def create(data_dir: Path, out: Path, passphrase: str) -> int:
    """Write the encrypted backup of ``data_dir`` to ``out`` (never overwritten);
    returns its size in bytes. The caller holds the data directory's lock (no server
    runs). Raises InvalidInput (out exists, passphrase), ConfigError (no store)."""
    encryption.check_passphrase(passphrase)
    if not _has_store(data_dir):
        raise ConfigError(f"{data_dir} holds no Sandhaven store; check --data-dir.")
    dst = open_new(out)
    try:
        with dst, tempfile.TemporaryFile(dir=out.parent) as plain:
            with tarfile.open(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as tar:
                marker = tarfile.TarInfo(FORMAT_MARKER)
                tar.addfile(marker)
                for entry in sorted(data_dir.iterdir()):
                    if entry.name not in SKIP:
                        tar.add(entry, arcname=f"data/{entry.name}", recursive=True,
                                filter=_skip_special)
            plain.flush()
            encryption.encrypt(plain, dst, passphrase)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return out.stat().st_size


def _check_member(member: tarfile.TarInfo, staging: Path) -> None:
    """Refuse what could land outside the staging tree or is not a plain file
    system object: unsafe names, device files, hardlinks to outside, and any entry
    whose parent resolves (through a symlink unpacked before it) out of the tree.
    Symlinks themselves may point anywhere: a grain's own files may hold absolute
    ones, which resolve inside its sandbox. (Python 3.11.2, Debian 12's, predates
    tarfile's extraction filters.)"""
    name = member.name
    if name != "data" and not (name.startswith("data/")
                               and pathsafety.is_safe_relative(name, controls=True)):
        raise BadBackup(f"Unexpected entry {name[:200]!r} in the backup.")
    if member.isdev():
        raise BadBackup(f"Device file {name[:200]!r} in the backup.")
    if member.islnk() and not (member.linkname.startswith("data/")
                               and pathsafety.is_safe_relative(member.linkname)):
        raise BadBackup(f"Hardlink {name[:200]!r} points outside the backup.")
    root = os.path.realpath(staging / "data")
    parent = os.path.realpath(staging / os.path.dirname(name))
    if name != "data" and not pathsafety.is_within(root, parent):
        raise BadBackup(f"The server backup is damaged or unsafe: {name[:200]!r} lies "
                        "outside the data directory.")
    member.mode &= 0o1777  # no setuid or setgid bits


def _skip_special(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Sockets and FIFOs (a grain's) cannot travel; tarfile skips sockets itself."""
    return None if info.isfifo() or info.isdev() else info


def restore(backup: Path, data_dir: Path, passphrase: str) -> None:
    """Unpack the encrypted server backup ``backup`` as ``data_dir``, which must not
    exist or be empty. Raises BadBackup (wrong passphrase, damaged or foreign file,
    unsafe entry), InvalidInput (data directory not empty)."""
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise InvalidInput(f"{data_dir} is not empty; restore into a new data directory.")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=data_dir.parent))
    try:
        with open(backup, "rb") as src, tempfile.TemporaryFile(dir=staging) as plain:
            if not encryption.is_encrypted(src):
                raise BadBackup(f"{backup} is not an encrypted Sandhaven server backup.")
            encryption.decrypt(src, plain, passphrase)
            plain.seek(0)
            _unpack(plain, staging)
        if data_dir.exists():
            data_dir.rmdir()
        os.rename(staging / "data", data_dir)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandhavenError(f"Restoring {backup} failed: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpack(plain, staging: Path) -> None:  # type: ignore[no-untyped-def]
    try:
        with tarfile.open(fileobj=plain, mode="r:") as tar:
            first = tar.next()
            if first is None or first.name != FORMAT_MARKER:
                raise BadBackup("Not a Sandhaven server backup (its marker is missing).")
            for member in tar:  # iterating starts again at the first member
                if member is first:
                    continue
                _check_member(member, staging)
                tar.extract(member, staging, numeric_owner=True)
    except (tarfile.TarError, EOFError) as exc:
        raise BadBackup(f"The server backup is damaged or unsafe: {str(exc)[:200]}") from None
    if not _has_store(staging / "data"):
        raise BadBackup("The server backup holds no store.")


def _has_store(data_dir: Path) -> bool:
    """A plain store, or the encrypted private area holding it (copied as
    ciphertext; the keys directory goes along, see docs/administering/backups.md)."""
    return (data_dir / "sandhaven.sqlite3").is_file() or (data_dir / "private.cipher").is_dir()
