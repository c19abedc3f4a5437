"""Wrapped-key records: one volume password, wrapped by one or two KEKs.

A record is a small JSON file (docs/reference/key-files.md)::

    {"format": "sandhaven-wrapped-key", "version": 1, "label": "grain:<grain ID>",
     "wraps": {"<KEK id>": "<base64 nonce + AES-256-GCM ciphertext>", ...}}

Two wraps exist only while ``keys rotate`` runs (old and new KEK); every change
replaces the whole file atomically. ``label`` is also the associated data of
each wrap, so a record copied onto another grain does not open.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from pathlib import Path

from sandhaven.encryption.kek import Kek, describe_label, fsync_dir, write_atomic
from sandhaven.errors import EncryptionError

FORMAT = "sandhaven-wrapped-key"
VERSION = 1
PASSWORD_BYTES = 32


def new_password() -> bytes:
    """A random volume password: 32 bytes (256 bits)."""
    return secrets.token_bytes(PASSWORD_BYTES)


def _write(path: Path, label: str, wraps: dict[str, str]) -> None:
    doc = {"format": FORMAT, "version": VERSION, "label": label, "wraps": wraps}
    write_atomic(path, (json.dumps(doc) + "\n").encode())


def read_wraps(path: Path, label: str) -> dict[str, bytes]:
    """``{KEK id: wrapped bytes}`` of the record. Raises EncryptionError when it is
    missing or damaged."""
    try:
        doc = json.loads(path.read_bytes())
        if doc["format"] != FORMAT or doc["version"] != VERSION or doc["label"] != label:
            raise ValueError
        return {str(k): base64.b64decode(v, validate=True) for k, v in doc["wraps"].items()}
    except FileNotFoundError:
        raise EncryptionError(f"The key of {describe_label(label)} is missing ({path}).") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise EncryptionError(f"The key record of {describe_label(label)} is damaged "
                              f"({path}).") from None


def create(path: Path, label: str, password: bytes, kek: Kek) -> None:
    """A new record holding ``password`` wrapped by ``kek``."""
    _write(path, label, {kek.id: base64.b64encode(kek.wrap(password, label)).decode()})


def unwrap(path: Path, label: str, kek: Kek) -> bytes:
    """The password in the record, opened by ``kek``. Raises EncryptionError when the
    record has no wrap by this KEK, or it does not open."""
    wraps = read_wraps(path, label)
    blob = wraps.get(kek.id)
    if blob is None:
        raise EncryptionError(f"The key of {describe_label(label)} is not wrapped by the "
                              f"current KEK {kek.id} "
                              f"(it has {', '.join(sorted(wraps)) or 'none'}); "
                              "is this the right keys directory?")
    return kek.unwrap(blob, label)


def add_wrap(path: Path, label: str, old: Kek, new: Kek) -> None:
    """Add a wrap by ``new`` beside the one by ``old`` (one atomic replace)."""
    wraps = read_wraps(path, label)
    if new.id in wraps:
        return
    password = unwrap(path, label, old)
    encoded = {k: base64.b64encode(v).decode() for k, v in wraps.items()}
    encoded[new.id] = base64.b64encode(new.wrap(password, label)).decode()
    _write(path, label, encoded)


def keep_only(path: Path, label: str, kek: Kek) -> None:
    """Drop every wrap but the one by ``kek`` (after a rotation is committed)."""
    wraps = read_wraps(path, label)
    if set(wraps) != {kek.id} and kek.id in wraps:
        _write(path, label, {kek.id: base64.b64encode(wraps[kek.id]).decode()})


def shred(path: Path) -> None:
    """Destroy the record: overwrite it in place with random bytes, fsync, unlink.
    (On copy-on-write or flash storage old blocks may survive the overwrite; they
    still need a KEK to open, and the server's own copies are gone.)"""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        os.pwrite(fd, secrets.token_bytes(max(size, 1)), 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    fsync_dir(path.parent)
