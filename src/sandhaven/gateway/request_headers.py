"""What of a browser's (or API client's) request headers reaches a grain, and what
the platform adds.

Source of every rule: ``reference/compat.md`` ("Request headers the platform
adds", "Request headers never passed to the app") and DESIGN.md "Identity
headers". An **allow-list** decides what passes, as compat.md recommends: a
header nobody thought about stays out. In particular never passed: every
incoming ``X-Sandstorm-*`` (including ``X-Sandstorm-App-*``, which Sandstorm
lets through; Sandhaven drops them all), ``Authorization``, ``Origin``,
``Referer``, ``Access-Control-Request-*``, ``Via``, ``Proxy-*``, ``Sec-*``,
``DNT``, hop-by-hop headers, ``X-Forwarded-*`` and ``Forwarded`` (regenerated),
and the platform's own cookies (names starting ``sandhaven``). On the API host
no cookie passes at all.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from urllib.parse import quote

from sandhaven.errors import InvalidInput
from sandhaven.gateway.target import Identity

# Headers an app may see, as the browser sent them. Besides the generic content
# negotiation, caching preconditions and body description, the families that
# real clients of Sandstorm apps rely on: CSRF tokens set by JS frameworks,
# WebDAV/CalDAV (Depth, Destination, Overwrite, Lock-Token, If, Timeout, Prefer,
# Brief), git's smart HTTP (Git-Protocol) and ownCloud/Nextcloud sync (OC-*).
PASSED = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "pragma",
        "content-type",
        "content-encoding",
        "content-language",
        "content-length",
        "content-range",
        "content-md5",
        "digest",
        "range",
        "if-range",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "user-agent",
        "x-requested-with",
        "x-csrf-token",
        "x-csrftoken",
        "x-xsrf-token",
        "depth",
        "destination",
        "overwrite",
        "lock-token",
        "if",
        "timeout",
        "prefer",
        "brief",
        "git-protocol",
        "oc-total-length",
        "oc-chunk-size",
        "oc-checksum",
        "x-oc-mtime",
    }
)
PASSED_PREFIXES = ("x-oc-",)
PASSED_BYTES = frozenset(name.encode() for name in PASSED)
PASSED_PREFIXES_BYTES = tuple(prefix.encode() for prefix in PASSED_PREFIXES)

PLATFORM_COOKIE_PREFIX = "sandhaven"
"""Cookies whose name starts with this (any case) belong to the platform, never to a grain."""

SANDBOX_HOST = "sandbox"
"""``Host`` of API requests (compat.md: "API requests … carry Host: sandbox")."""


def filter_cookies(value: str) -> str:
    """``Cookie`` header value without the platform's cookies; ``""`` when none is left.
    Values up to 1 KiB are remembered (a browser sends the same cookies with
    request after request); longer ones are not, so the memory stays bounded."""
    if len(value) <= 1024:
        return _filter_cookies_cached(value)
    return _filter_cookies(value)


@functools.lru_cache(maxsize=1024)
def _filter_cookies_cached(value: str) -> str:
    return _filter_cookies(value)


def _filter_cookies(value: str) -> str:
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


@functools.lru_cache(maxsize=4096)
def identity_headers(identity: Identity) -> tuple[tuple[bytes, bytes], ...]:
    """The ``X-Sandstorm-*`` identity headers of compat.md for ``identity``, in its order;
    user ID, handle, picture and pronouns only for logged-in users, pronouns only
    when not neutral. Cached per (frozen, hashable) identity: a session sends
    the same identity with every request."""
    out: list[tuple[str, str]] = []
    if identity.user_id is not None:
        out.append(("x-sandstorm-user-id", identity.user_id))
    out.append(("x-sandstorm-username", encode_username(identity.username)))
    if identity.user_id is not None:
        if identity.handle:
            out.append(("x-sandstorm-preferred-handle", identity.handle))
        if identity.picture:
            out.append(("x-sandstorm-user-picture", identity.picture))
        if identity.pronouns:
            out.append(("x-sandstorm-user-pronouns", identity.pronouns))
    out.append(("x-sandstorm-permissions", ",".join(identity.permissions)))
    out.append(("x-sandstorm-session-id", identity.session_id))
    out.append(("x-sandstorm-tab-id", identity.tab_id))
    out.append(("x-sandstorm-session-type", identity.session_type))
    if identity.api:
        out.append(("x-sandstorm-api", identity.api))
    return tuple((name.encode(), value.encode()) for name, value in out)


def request_headers(
    headers: Iterable[tuple[bytes, bytes]],
    identity: Identity,
    *,
    base_path: str | None,
    client_ip: str | None = None,
    websocket: bool = False,
) -> list[tuple[bytes, bytes]]:
    """The header list to send upstream for one request, as lower-case byte pairs.

    ``headers`` are the ASGI scope's (lower-case byte names); ``base_path`` is the
    session origin (``http://ui-….localhost:6080``) on session hosts and ``None``
    on the API host, which also drops every cookie and, when the client sent
    ``X-Sandstorm-Passthrough: address``, adds ``X-Real-IP: client_ip``.
    ``websocket`` leaves out body headers (the handshake is regenerated).
    Content-Length passes; Transfer-Encoding does not (the client frames bodies).

    Raises InvalidInput when a value holds CR, LF or NUL.
    """
    out: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    passthrough = False
    for name, value in headers:
        if b"\r" in value or b"\n" in value or b"\x00" in value:
            raise InvalidInput(f"Header {name.decode('latin-1')!r} has a line break.")
        if name in PASSED_BYTES or name.startswith(PASSED_PREFIXES_BYTES):
            if not (websocket and name.startswith(b"content-")):
                out.append((name, value))
        elif name == b"cookie":
            cookies.append(value)
        elif name == b"x-sandstorm-passthrough":
            passthrough = b"address" in [v.strip().lower() for v in value.split(b",")]
    if base_path is not None and cookies:
        kept = filter_cookies(b"; ".join(cookies).decode("latin-1"))
        if kept:
            out.append((b"cookie", kept.encode("latin-1")))
    out.extend(identity_headers(identity))
    if base_path is not None:
        scheme, _, host = base_path.partition("://")
        out.append((b"x-sandstorm-base-path", base_path.encode()))
        out.append((b"host", host.encode()))
        out.append((b"x-forwarded-proto", scheme.encode()))
    else:
        out.append((b"host", SANDBOX_HOST.encode()))
        if passthrough and client_ip:
            out.append((b"x-real-ip", client_ip.encode()))
    return out
