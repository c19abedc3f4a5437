"""Validation of what a person may set about themselves: name, handle, picture, pronouns.

Handle rules and pronoun values follow compat.md (``X-Sandstorm-Preferred-Handle``:
``[a-z0-9_]``, not starting with a digit; pronouns neutral/male/female/robot).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

from sandhaven.errors import InvalidInput

PRONOUNS = ("neutral", "male", "female", "robot")
_HANDLE = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")


def clean_name(raw: str) -> str:
    """A display name: 1–200 characters, no control characters. Raises InvalidInput."""
    name = " ".join((raw or "").split())
    if not name:
        raise InvalidInput("Name is empty.")
    if len(name) > 200:
        raise InvalidInput("Name is longer than 200 characters.")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise InvalidInput("Name contains control characters.")
    return name


def clean_handle(raw: str) -> str:
    """A handle per compat.md. Raises InvalidInput naming the rule broken."""
    handle = (raw or "").strip()
    if not _HANDLE.match(handle):
        raise InvalidInput(
            f"Handle '{handle[:64]}' is not valid: use 1–64 of a-z, 0-9 and _, "
            "not starting with a digit."
        )
    return handle


def handle_from(name: str, email: str = "") -> str:
    """A default handle derived from a name (or the address's local part)."""
    base = unicodedata.normalize("NFKD", name or email.split("@")[0])
    base = base.encode("ascii", "ignore").decode().lower()
    base = re.sub(r"[^a-z0-9_]+", "_", base).strip("_")
    base = base.lstrip("0123456789") or "user"
    return base[:64]


def clean_pronouns(raw: str) -> str:
    value = (raw or "neutral").strip().lower()
    if value not in PRONOUNS:
        raise InvalidInput(f"Pronouns '{value[:20]}' must be one of {', '.join(PRONOUNS)}.")
    return value


def clean_picture_url(raw: str) -> str:
    """Empty, or an http(s) URL of at most 2000 printable ASCII characters (it
    travels in a request header to every grain: compat.md
    ``X-Sandstorm-User-Picture``). Raises InvalidInput."""
    url = (raw or "").strip()
    if not url:
        return ""
    if not all("\x21" <= c <= "\x7e" for c in url):
        # urlsplit silently drops tabs and line breaks; a header cannot hold them.
        raise InvalidInput("Picture URL holds spaces, control or non-ASCII characters "
                           "(percent-encode them).")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2000:
        raise InvalidInput("Picture must be an http:// or https:// URL.")
    return url
