"""App signing keys: an Ed25519 private key in a PKCS#8 PEM file, mode 0600.

The key *is* the app's identity: its public half, in base32, is the app ID, and
only packages signed by it can update that app. A key file readable by group or
others is refused, as ssh refuses such keys.

Errors: :class:`~sandhaven.errors.KeyFileError` naming the file and the problem.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sandhaven.errors import KeyFileError
from sandhaven.packages.ids import app_id_from_public_key


@dataclass(frozen=True)
class SigningKey:
    """An app's Ed25519 key pair. ``public_key`` is the raw 32 bytes."""

    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def app_id(self) -> str:
        return app_id_from_public_key(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """A 64-byte Ed25519 signature of ``message`` (deterministic, RFC 8032)."""
        return self.private_key.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(app_id={self.app_id!r})"

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    def to_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def write_key_file(key: SigningKey, path: Path) -> None:
    """Write ``key`` to a new file at ``path`` with mode 0600. Never overwrites.

    Raises KeyFileError if the file exists or cannot be written.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"Key file {path} already exists; not overwriting it.") from None
    except OSError as exc:
        raise KeyFileError(f"Key file {path} cannot be created: {exc.strerror}.") from None
    try:
        os.fchmod(fd, 0o600)  # the umask may have removed bits; make the mode exact
        os.write(fd, key.to_pem())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_key_file(path: Path) -> SigningKey:
    """Load an Ed25519 key written by :func:`write_key_file`.

    Raises KeyFileError if the file is missing, readable by group or others, or
    does not hold an unencrypted Ed25519 PKCS#8 PEM key.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise KeyFileError(f"Key file {path} cannot be opened: {exc.strerror}.") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"Key file {path} is not a regular file.")
        if st.st_mode & 0o077:
            raise KeyFileError(
                f"Key file {path} has mode {stat.S_IMODE(st.st_mode):04o}; "
                "it must not be readable by group or others (chmod 600)."
            )
        data = f.read(64 * 1024)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyFileError(
            f"Key file {path} does not hold an unencrypted PEM private key.") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"Key file {path} holds a key that is not Ed25519.")
    return SigningKey(key)
