"""Secrets that grant something (login links, sessions, API tokens): made here,
stored only as a hash.

Tokens are 256 random bits in URL-safe base64 (43 characters), the strength
compat.md gives for sharing and API tokens. Stored form: hex SHA-256. A plain
hash suffices because the input has 256 bits of entropy; nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

# Short login codes: Crockford-style alphabet without look-alikes (0/O, 1/I/L).
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8


def new_token() -> str:
    """256 random bits, URL-safe base64 without padding (43 characters)."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """Hex SHA-256 of ``secret`` (64 characters): the stored form of every token."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_code() -> str:
    """An 8-character login code from a 30-symbol alphabet (~39 bits); guesses are
    limited per code, so this is ample."""
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(code: str) -> str:
    """Upper-cased, spaces and dashes removed, so ``abcd-efgh`` matches ``ABCDEFGH``."""
    return code.replace("-", "").replace(" ", "").strip().upper()


def same(a: str, b: str) -> bool:
    """Constant-time string comparison."""
    return hmac.compare_digest(a.encode(), b.encode())
