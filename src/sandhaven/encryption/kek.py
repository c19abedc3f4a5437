"""The key-encryption key (KEK) and its key file, ``DATA_DIR/keys/kek``.

The KEK is 32 random bytes. It wraps (AES-256-GCM, the label of the wrapped
thing as associated data) every volume password and nothing else. Its key file
is one JSON object (docs/reference/key-files.md)::

    {"format": "sandhaven-kek", "version": 1, "id": "<16 hex>",
     "protection": "none", "key": "<base64 of 32 bytes>"}

or, in passphrase mode, the key sealed under Argon2id(passphrase)::

    {"format": "sandhaven-kek", "version": 1, "id": "<16 hex>",
     "protection": "argon2id", "salt": "<base64 16 bytes>", "iterations": 3,
     "memory_kib": 65536, "lanes": 4, "sealed": "<base64 nonce(12) + ciphertext>"}

``id`` is the first 8 bytes of SHA-256("sandhaven-kek-id\\0" + key), in hex: it
names the KEK in wrapped-key records and detects a damaged key. Argon2id figures
are RFC 9106's second recommended option (t=3, 64 MiB, p=4).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from sandhaven.errors import EncryptionError

FORMAT = "sandhaven-kek"
VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
ARGON2 = {"iterations": 3, "memory_kib": 64 * 1024, "lanes": 4}


def kek_id(key: bytes) -> str:
    """The 16-hex-digit name of a KEK (see the module docstring)."""
    return hashlib.sha256(b"sandhaven-kek-id\0" + key).hexdigest()[:16]


@dataclass(frozen=True)
class Kek:
    """A key-encryption key: ``key`` (32 bytes, never shown in a repr) and its ``id``."""

    key: bytes = field(repr=False)
    id: str = ""

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise ValueError("a KEK is 32 bytes")
        object.__setattr__(self, "id", kek_id(self.key))

    @classmethod
    def generate(cls) -> Kek:
        return cls(secrets.token_bytes(KEY_BYTES))

    def wrap(self, secret: bytes, label: str) -> bytes:
        """``nonce(12) + AES-256-GCM(secret)`` with ``label`` as associated data."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + AESGCM(self.key).encrypt(nonce, secret, label.encode())

    def unwrap(self, blob: bytes, label: str) -> bytes:
        """The secret :meth:`wrap` sealed under ``label``. Raises EncryptionError when
        the blob was not made by this KEK for this label, or was changed."""
        try:
            return AESGCM(self.key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:],
                                            label.encode())
        except (InvalidTag, ValueError):
            raise EncryptionError(f"The wrapped key of {describe_label(label)} does not "
                                  f"open with KEK "
                                  f"{self.id} (damaged, or wrapped by another KEK).") from None


def describe_label(label: str) -> str:
    """A wrapped key's label as words: ``private`` → the private area, ``grain:ID`` →
    grain ID."""
    if label.startswith("grain:"):
        return f"grain {label.removeprefix('grain:')}"
    return "the private area" if label == "private" else label


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _stretch(passphrase: str, salt: bytes, params: dict[str, int]) -> bytes:
    return Argon2id(salt=salt, length=KEY_BYTES, iterations=params["iterations"],
                    lanes=params["lanes"], memory_cost=params["memory_kib"]).derive(
                        passphrase.encode())


def encode_key_file(kek: Kek, passphrase: str | None = None) -> bytes:
    """The key file's bytes for ``kek``; sealed under ``passphrase`` when given."""
    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION, "id": kek.id}
    if passphrase is None:
        doc.update(protection="none", key=_b64(kek.key))
    else:
        salt = secrets.token_bytes(16)
        sealer = Kek(_stretch(passphrase, salt, ARGON2))
        doc.update(protection="argon2id", salt=_b64(salt), **ARGON2,
                   sealed=_b64(sealer.wrap(kek.key, f"{FORMAT}:{kek.id}")))
    return (json.dumps(doc, indent=1) + "\n").encode()


def write_key_file(path: Path, kek: Kek, passphrase: str | None = None) -> None:
    """Write the key file atomically (temporary file, fsync, rename), mode 0600, in a
    0700 directory."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, encode_key_file(kek, passphrase))


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` so that a crash leaves the old or the new file,
    never a part: write a 0600 temporary beside it, fsync, rename, fsync the directory."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _damaged(path: Path, why: str) -> EncryptionError:
    return EncryptionError(f"Key file {path} is damaged ({why}); restore it from your backup "
                           "of the keys directory.")


def read_key_doc(path: Path) -> dict[str, Any]:
    """The key file's JSON object. Raises EncryptionError (missing, unsafe, damaged)."""
    try:
        st = path.stat()
        raw = path.read_bytes()
    except FileNotFoundError:
        raise EncryptionError(f"Key file {path} is missing: nothing encrypted can be opened "
                              "without it; restore it from your backup of the keys "
                              "directory.") from None
    except OSError as exc:
        raise EncryptionError(f"Key file {path} cannot be read: {exc.strerror}.") from None
    if st.st_mode & 0o077:
        raise EncryptionError(f"Key file {path} has mode {st.st_mode & 0o777:04o}: others may "
                              f"read it; run `chmod 600 {path}`.")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _damaged(path, "not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _damaged(path, "not a Sandhaven KEK file")
    if doc.get("version") != VERSION:
        raise EncryptionError(f"Key file {path} has version {doc.get('version')!r}; this "
                              f"Sandhaven reads version {VERSION}.")
    return doc


def needs_passphrase(path: Path) -> bool:
    """True when the key file at ``path`` is sealed by a passphrase."""
    return read_key_doc(path).get("protection") == "argon2id"


def read_key_file(path: Path, passphrase: str | None = None) -> Kek:
    """The KEK in the key file. Raises EncryptionError naming the problem: missing,
    readable by others, damaged, a passphrase needed or wrong."""
    doc = read_key_doc(path)
    try:
        if doc["protection"] == "none":
            kek = Kek(base64.b64decode(doc["key"], validate=True))
        elif doc["protection"] == "argon2id":
            if passphrase is None:
                raise EncryptionError(f"Key file {path} is sealed by a passphrase: start the "
                                      "server with --storage-key-source passphrase and "
                                      "unseal it (its page or `sandhaven unseal`).")
            params = {k: int(doc[k]) for k in ARGON2}
            sealer = Kek(_stretch(passphrase, base64.b64decode(doc["salt"], validate=True),
                                  params))
            try:
                key = sealer.unwrap(base64.b64decode(doc["sealed"], validate=True),
                                    f"{FORMAT}:{doc['id']}")
            except EncryptionError:
                raise EncryptionError("Wrong passphrase.") from None
            kek = Kek(key)
        else:
            raise _damaged(path, f"unknown protection {doc['protection']!r}")
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise _damaged(path, "fields missing or malformed") from None
    if kek.id != doc.get("id"):
        raise _damaged(path, "the key does not match its ID")
    return kek
