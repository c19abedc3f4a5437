"""The catalog's own signature over its index, so the metadata a market shows
(titles, descriptions, package IDs and sizes) is authenticated, not only the
packages.

``index.json.sig`` holds the base32 (Sandstorm alphabet, as app IDs) Ed25519
signature of ``b"sandhaven-catalog-index\\x00" + <the exact bytes of index.json>``,
made with the catalog key (``KEYS_DIR/catalog.key``, written by ``catalog build``).
The catalog key's public half, written like an app ID, is the ``catalog.key``
setting; when it is set, an index without a valid signature is refused.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sandhaven.errors import CatalogError
from sandhaven.packages.ids import base32_decode, base32_encode
from sandhaven.packages.keys import SigningKey, read_key_file, write_key_file

CONTEXT = b"sandhaven-catalog-index\x00"
SIGNATURE_FILE = "index.json.sig"
KEY_FILE = "catalog.key"
MAX_SIGNATURE_BYTES = 200


def catalog_key(keys_dir: Path) -> SigningKey:
    """The catalog key in ``keys_dir/catalog.key``, created (mode 0600) when missing."""
    path = Path(keys_dir) / KEY_FILE
    if not path.exists():
        write_key_file(SigningKey.generate(), path)
    return read_key_file(path)


def sign_index(key: SigningKey, index_bytes: bytes) -> str:
    """The text of ``index.json.sig`` for these exact index bytes."""
    return base32_encode(key.sign(CONTEXT + index_bytes)) + "\n"


def verify_index(public_key: str, index_bytes: bytes, signature_text: bytes) -> None:
    """Check ``index.json.sig`` against the configured public key (52 characters,
    as an app ID). Raises CatalogError when it is malformed or does not verify."""
    try:
        signature = base32_decode(signature_text.decode("ascii").strip())
        key = Ed25519PublicKey.from_public_bytes(base32_decode(public_key))
    except (ValueError, UnicodeDecodeError):
        raise CatalogError("The catalog's index signature is malformed.") from None
    try:
        key.verify(signature, CONTEXT + index_bytes)
    except InvalidSignature:
        raise CatalogError("The catalog's index signature does not verify with the "
                           "configured catalog key: refused.") from None


def default_public_key(keys_dir: Path) -> str:
    """The public half of ``keys_dir/catalog.key`` when that file exists, else "".
    The server uses it for the default catalog, built on this machine with that key."""
    path = Path(keys_dir) / KEY_FILE
    return read_key_file(path).app_id if path.is_file() else ""
