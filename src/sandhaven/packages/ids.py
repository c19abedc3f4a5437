"""App IDs and package IDs, written exactly as Sandstorm writes them.

- App ID: the 32-byte Ed25519 public key in Sandstorm's base32 — alphabet
  ``0123456789acdefghjkmnpqrstuvwxyz`` (no b, i, l, o), bits taken most
  significant first, the last 4 bits zero-padded — 52 characters.
  (Sandstorm ``src/sandstorm/util.c++`` ``base32Encode``.)
- Package ID: the first 16 bytes of the SHA-256 of the whole ``.spk`` file, as 32
  lowercase hex characters.
"""

from __future__ import annotations

import base64
import re

ALPHABET = "0123456789acdefghjkmnpqrstuvwxyz"
_RFC4648 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_TO_SANDSTORM = str.maketrans(_RFC4648, ALPHABET)
_FROM_SANDSTORM = str.maketrans(ALPHABET, _RFC4648)

APP_ID_RE = re.compile(r"[0123456789acdefghjkmnpqrstuvwxyz]{52}")
PACKAGE_ID_RE = re.compile(r"[0-9a-f]{32}")


def base32_encode(data: bytes) -> str:
    """``data`` in Sandstorm's base32, unpadded: ``ceil(8 * len(data) / 5)`` characters."""
    return base64.b32encode(data).decode("ascii").rstrip("=").translate(_TO_SANDSTORM)


def base32_decode(text: str) -> bytes:
    """Inverse of :func:`base32_encode`. Only the canonical form is accepted:
    lowercase, no padding, unused trailing bits zero. Raises ValueError otherwise."""
    if any(c not in ALPHABET for c in text):
        raise ValueError("not Sandstorm base32")
    bits = len(text) * 5
    if bits % 8 >= 5:
        raise ValueError("not a whole number of bytes")
    padded = text.translate(_FROM_SANDSTORM) + "=" * (-len(text) % 8)
    data = base64.b32decode(padded)
    if base32_encode(data) != text:
        raise ValueError("not canonical (trailing bits set)")
    return data


def app_id_from_public_key(public_key: bytes) -> str:
    """The 52-character app ID of a 32-byte Ed25519 public key."""
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return base32_encode(public_key)


def public_key_from_app_id(app_id: str) -> bytes:
    """The 32-byte public key named by an app ID. Raises ValueError if malformed."""
    if not APP_ID_RE.fullmatch(app_id):
        raise ValueError("an app ID is 52 characters of 0-9 and a-z without b, i, l, o")
    return base32_decode(app_id)


def package_id_from_digest(sha256_digest: bytes) -> str:
    """The package ID from the SHA-256 digest (32 bytes) of a whole ``.spk`` file."""
    return sha256_digest[:16].hex()


def is_package_id(text: str) -> bool:
    """True for 32 lowercase hex characters."""
    return PACKAGE_ID_RE.fullmatch(text) is not None


def is_app_id(text: str) -> bool:
    """True for a well-formed, canonical app ID."""
    try:
        public_key_from_app_id(text)
    except ValueError:
        return False
    return True
