"""``keys rotate``: a new KEK, every volume password re-wrapped, no data re-encrypted.

Crash-safe at every step; the commit point is one rename::

    1. write the new KEK to keys/kek.new (fsync)
    2. per record (the private area's, then each grain's): add a wrap by the new
       KEK beside the old one, one atomic file replace per record
    3. rename keys/kek.new over keys/kek (fsync the directory)   <- commit
    4. per record: drop the old wrap

Before 3 every record still has its old wrap and ``keys/kek`` is the old KEK;
after 3 every record has a new wrap. A start that finds ``kek.new`` (a
rotation cut short before 3) removes it: :func:`recover`.

Before step 1, every record must open with the current KEK: a damaged record
stops the rotation before anything is written (the message names it). A
failure inside step 2 takes back the wraps already added and removes
``kek.new``, so the data dir is as it was.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import structlog

from sandhaven.encryption import wrapped
from sandhaven.encryption.kek import fsync_dir, read_key_doc, read_key_file, write_key_file
from sandhaven.encryption.private import PRIVATE_LABEL, kek_path, keys_dir
from sandhaven.errors import EncryptionError

log = structlog.get_logger("sandhaven.encryption")


def records(data_dir: Path) -> list[tuple[Path, str]]:
    """Every wrapped-key record of the data dir as (path, label)."""
    found = []
    private = keys_dir(data_dir) / "private.key"
    if private.exists():
        found.append((private, PRIVATE_LABEL))
    grains = Path(data_dir) / "grains"
    if grains.is_dir():
        for top in sorted(grains.iterdir()):
            if (top / "key").exists():
                found.append((top / "key", f"grain:{top.name}"))
    return found


def keyless_volumes(data_dir: Path) -> list[str]:
    """IDs of grains that have an encrypted volume but no key record (nothing can
    open them; a rotation leaves them as they are and says so)."""
    grains = Path(data_dir) / "grains"
    if not grains.is_dir():
        return []
    return [top.name for top in sorted(grains.iterdir())
            if (top / "cipher").is_dir() and not (top / "key").exists()]


def recover(data_dir: Path) -> bool:
    """Remove what a rotation cut short before its commit left; True if it did."""
    keys = keys_dir(data_dir)
    found = False
    for leftover in (keys / "kek.new", keys / "kek.new.tmp", keys / "kek.tmp"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
            found = True
    if found:
        fsync_dir(keys)
        log.warning("kek_rotation_rolled_back", reason="a rotation was cut short; the "
                    "current KEK stays")
    return found


def rotate(data_dir: Path, passphrase: str | None = None,
           after_step: Callable[[int], None] | None = None) -> tuple[str, str, int]:
    """Rotate the KEK of ``data_dir`` (the server must be stopped: the caller holds
    the data dir lock). A passphrase-sealed key file stays sealed by the same
    passphrase. ``after_step(n)`` is called after steps 1–4 and after the first
    record of steps 2 and 4 (n = 1, 2, 3, 4, 5, 6 in order; for tests).

    Returns (old KEK id, new KEK id, records re-wrapped). Raises EncryptionError.
    """
    from sandhaven.encryption.kek import Kek

    step = after_step or (lambda n: None)
    recover(data_dir)
    path = kek_path(data_dir)
    sealed = read_key_doc(path).get("protection") == "argon2id"
    old = read_key_file(path, passphrase)
    found = records(data_dir)
    for orphan in keyless_volumes(data_dir):
        log.warning("grain_volume_without_key", grain_id=orphan,
                    reason="no key record: no key opens this volume (a purge cut short, "
                           "or a lost key file); restore the file or purge the grain")
    for record, label in found:  # everything opens, or nothing is written
        try:
            wrapped.unwrap(record, label, old)
        except EncryptionError as exc:
            raise EncryptionError(f"Nothing was changed: {record} does not open with the "
                                  f"current KEK ({str(exc).rstrip('.')}). Restore that "
                                  "file from a backup, "
                                  "or purge its grain, then rotate again.") from None
    new = Kek.generate()
    pending = path.with_name("kek.new")
    write_key_file(pending, new, passphrase if sealed else None)
    step(1)
    done: list[tuple[Path, str]] = []
    try:
        for i, (record, label) in enumerate(found):
            wrapped.add_wrap(record, label, old, new)
            done.append((record, label))
            if i == 0:
                step(2)
    except BaseException as exc:
        for record, label in done:  # take back the wraps by a key never committed
            with contextlib.suppress(Exception):
                wrapped.keep_only(record, label, old)
        recover(data_dir)
        if isinstance(exc, OSError):
            failed = found[len(done)][0]
            raise EncryptionError(f"Nothing was changed: {failed} could not be rewritten "
                                  f"({exc.strerror or exc}).") from None
        raise
    step(3)
    os.replace(pending, path)
    fsync_dir(path.parent)
    step(4)
    for i, (record, label) in enumerate(found):
        wrapped.keep_only(record, label, new)
        if i == 0:
            step(5)
    step(6)
    log.info("kek_rotated", old=old.id, new=new.id, records=len(found))
    return old.id, new.id, len(found)
