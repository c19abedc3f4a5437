"""What of a browser's (or API client's) request headers reaches a grain, and what
the platform adds.

Source of every rule: ``reference/compat.md`` ("Request headers the platform
adds", "Request headers never passed to the app") and DESIGN.md "Identity
headers". An **allow-list** decides what passes, as compat.md recommends: a
header nobody thought about stays out. In particular never passed: every
incoming ``X-Sandstorm-*`` (including ``X-Sandstorm-App-*``, which Sandstorm
lets through; issue 5 drops them all), ``Authorization``, ``Origin``,
``Referer``, ``Access-Control-Request-*``, ``Via``, ``Proxy-*``, ``Sec-*``,
``DNT``, hop-by-hop headers, ``X-Forwarded-*`` and ``Forwarded`` (regenerated),
and the platform's own cookies (names starting ``sandhaven``). On the API host
no cookie passes at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from sandhaven.errors import InvalidInput
from sandhaven.gateway.target import Identity

# Headers an app may see, as the browser sent them. Besides the generic content
# negotiation, caching preconditions and body description, the families that
# real clients of Sandstorm apps rely on: CSRF tokens set by JS frameworks,
# WebDAV/CalDAV (Depth, Destination, Overwrite, Lock-Token, If, Timeout, Prefer,
# Brief), git's smart HTTP (Git-Protocol) and ownCloud/Nextcloud sync (OC-*).
PASSED = frozenset({
    "accept", "accept-encoding", "accept-language",
    "cache-control", "pragma",
    "content-type", "content-encoding", "content-language", "content-length",
    "content-range", "content-md5", "digest",
    "range", "if-range", "if-match", "if-none-match", "if-modified-since",
    "if-unmodified-since",
    "user-agent",
    "x-requested-with", "x-csrf-token", "x-csrftoken", "x-xsrf-token",
    "depth", "destination", "overwrite", "lock-token", "if", "timeout", "prefer", "brief",
    "git-protocol",
    "oc-total-length", "oc-chunk-size", "oc-checksum", "x-oc-mtime",
})
PASSED_PREFIXES = ("x-oc-",)

PLATFORM_COOKIE_PREFIX = "sandhaven"
"""Cookies whose name starts with this (any case) belong to the platform, never to a grain."""

SANDBOX_HOST = "sandbox"
"""``Host`` of API requests (compat.md: "API requests … carry Host: sandbox")."""

_BAD = (b"\r", b"\n", b"\x00")


def check_values(headers: Iterable[tuple[bytes, bytes]]) -> None:
    """Raise InvalidInput (400) when any header value holds CR, LF or NUL (compat.md)."""
    for name, value in headers:
        if any(b in value for b in _BAD):
            raise InvalidInput(f"Header {name.decode('latin-1')!r} has a line break.")


def filter_cookies(value: str) -> str:
    """``Cookie`` header value without the platform's cookies; ``""`` when none is left."""
    kept = []
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        name = part.split("=", 1)[0].strip()
        if name.lower().startswith(PLATFORM_COOKIE_PREFIX):
            continue
        kept.append(part)
    return "; ".join(kept)


def encode_username(name: str) -> str:
    """Percent-encoded UTF-8 as JavaScript's ``encodeURIComponent`` does
    (compat.md: ``Ren%C3%A9e%20Dupont``)."""
    return quote(name, safe="!~*'()")


def identity_headers(identity: Identity) -> list[tuple[str, str]]:
    """The ``X-Sandstorm-*`` identity headers of compat.md for ``identity``, in its order;
    user ID, handle, picture and pronouns only for logged-in users, pronouns only
    when not neutral."""
    out: list[tuple[str, str]] = []
    if identity.user_id is not None:
        out.append(("X-Sandstorm-User-Id", identity.user_id))
    out.append(("X-Sandstorm-Username", encode_username(identity.username)))
    if identity.user_id is not None:
        if identity.handle:
            out.append(("X-Sandstorm-Preferred-Handle", identity.handle))
        if identity.picture:
            out.append(("X-Sandstorm-User-Picture", identity.picture))
        if identity.pronouns:
            out.append(("X-Sandstorm-User-Pronouns", identity.pronouns))
    out.append(("X-Sandstorm-Permissions", ",".join(identity.permissions)))
    out.append(("X-Sandstorm-Session-Id", identity.session_id))
    out.append(("X-Sandstorm-Tab-Id", identity.tab_id))
    out.append(("X-Sandstorm-Session-Type", identity.session_type))
    if identity.api:
        out.append(("X-Sandstorm-Api", identity.api))
    return out


def request_headers(
    headers: Iterable[tuple[bytes, bytes]],
    identity: Identity,
    *,
    base_path: str | None,
    client_ip: str | None = None,
    websocket: bool = False,
) -> list[tuple[str, str]]:
    """The header list to send upstream for one request.

    ``headers`` are the ASGI scope's (lower-case byte names); ``base_path`` is the
    session origin (``http://ui-….localhost:6080``) on session hosts and ``None``
    on the API host, which also drops every cookie and, when the client sent
    ``X-Sandstorm-Passthrough: address``, adds ``X-Real-IP: client_ip``.
    ``websocket`` leaves out body headers (the handshake is regenerated).

    Raises InvalidInput when a value holds CR, LF or NUL.
    """
    headers = list(headers)
    check_values(headers)
    out: list[tuple[str, str]] = []
    cookies: list[str] = []
    passthrough: set[str] = set()
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name == "cookie":
            cookies.append(value)
        elif name == "x-sandstorm-passthrough":
            passthrough.update(v.strip().lower() for v in value.split(","))
        elif name in PASSED or name.startswith(PASSED_PREFIXES):
            if websocket and name.startswith("content-"):
                continue
            out.append((name, value))
    if base_path is not None and cookies:
        kept = filter_cookies("; ".join(cookies))
        if kept:
            out.append(("cookie", kept))
    out.extend(identity_headers(identity))
    if base_path is not None:
        scheme, _, host = base_path.partition("://")
        out.append(("X-Sandstorm-Base-Path", base_path))
        out.append(("Host", host))
        out.append(("X-Forwarded-Proto", scheme))
    else:
        out.append(("Host", SANDBOX_HOST))
        if "address" in passthrough and client_ip:
            out.append(("X-Real-IP", client_ip))
    return out
