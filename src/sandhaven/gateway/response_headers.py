"""What of a grain's response headers reaches the browser, and the security headers
the platform adds.

Source of every rule: ``reference/compat.md`` ("Response headers never passed to
the browser", "Security headers on session hosts", "API host and tokens").
Dropped always: hop-by-hop headers (and those named in ``Connection``),
``Access-Control-*``, ``Content-Security-Policy(-Report-Only)``,
``Referrer-Policy``, ``X-Frame-Options``, ``Strict-Transport-Security``,
``Public-Key-Pins(-Report-Only)``, and the headers that would make a browser
talk to or report to somewhere else (``Alt-Svc``, ``Report-To``,
``Reporting-Endpoints``, ``NEL``). On session hosts also ``WWW-Authenticate``
(a grain must not pop up a password prompt in the shell's frame). On the API
host every ``Set-Cookie`` goes.

Cookies the grain sets stay on its host: every ``Domain`` attribute is removed,
which makes the cookie host-only (compat.md asks that a Domain pointing
elsewhere be dropped; a host-only cookie is the narrowest form of the one that
points at the host itself). Cookies named like the platform's (``sandhaven…``)
are dropped. Several ``Set-Cookie`` headers stay several headers.
"""

from __future__ import annotations

from collections.abc import Iterable

from sandhaven.gateway.request_headers import PLATFORM_COOKIE_PREFIX

Headers = list[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
DROPPED = HOP_BY_HOP | {
    b"content-security-policy",
    b"content-security-policy-report-only",
    b"referrer-policy",
    b"x-frame-options",
    b"strict-transport-security",
    b"public-key-pins",
    b"public-key-pins-report-only",
    b"alt-svc",
    b"report-to",
    b"reporting-endpoints",
    b"nel",
    b"set-cookie2",
}
DROPPED_PREFIXES = (b"access-control-",)

API_CSP = b"default-src 'none'; sandbox"


def session_csp(session_origin: str, shell_origin: str) -> str:
    """The CSP of compat.md "Security headers on session hosts" for one session origin.

    Scripts, styles and fonts from the grain itself (plus inline, eval, ``data:``
    and ``blob:``, which apps need); images and media from anywhere; connections
    to itself and its own ``ws(s)://`` origin; no workers (a service worker could
    rewrite headers); framed only by itself and the shell. ``form-action`` and
    ``base-uri`` are not covered by ``default-src``, so they are set too: a form
    must not post the grain's data to another site.
    """
    ws_origin = "ws" + session_origin[4:] if session_origin.startswith("http") else session_origin
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:",
            "style-src 'self' 'unsafe-inline' data: blob:",
            "font-src 'self' data: blob:",
            "img-src * data: blob:",
            "media-src * data: blob:",
            f"connect-src 'self' {ws_origin}",
            "worker-src 'none'",
            f"frame-src 'self' {shell_origin}",
            f"frame-ancestors 'self' {shell_origin}",
            "manifest-src 'self'",
            "object-src 'none'",
            "form-action 'self'",
            "base-uri 'self'",
        ]
    )


def _connection_tokens(value: bytes, tokens: set[bytes] | None) -> set[bytes]:
    """``tokens`` (made when ``None``) with the names listed in one ``Connection`` value."""
    tokens = set() if tokens is None else tokens
    tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return tokens


def rewrite_set_cookie(value: bytes) -> bytes | None:
    """One ``Set-Cookie`` value with its ``Domain`` attributes removed, or ``None`` when
    the cookie is named like the platform's or has no name."""
    parts = value.split(b";")
    name = parts[0].split(b"=", 1)[0].strip()
    if not name or name.lower().startswith(PLATFORM_COOKIE_PREFIX.encode()):
        return None
    kept = [parts[0]] + [p for p in parts[1:] if p.split(b"=", 1)[0].strip().lower() != b"domain"]
    return b";".join(kept)


def session_response_headers(raw: Iterable[tuple[bytes, bytes]], csp: bytes) -> Headers:
    """Headers for the browser on a session host; ``raw`` as received from the grain
    (any name case), ``csp`` from :func:`session_csp` (encoded). One pass over
    ``raw`` (this runs for every response): headers named in ``Connection`` are
    taken out at the end, in the rare case there are any."""
    out: Headers = []
    extra_hop: set[bytes] | None = None
    for name, value in raw:
        name = name.lower()
        if (
            name in DROPPED
            or name.startswith(DROPPED_PREFIXES)
            or name == b"www-authenticate"
            or b"\r" in value
            or b"\n" in value
            or b"\x00" in value
        ):
            if name == b"connection":
                extra_hop = _connection_tokens(value, extra_hop)
            continue
        if name == b"set-cookie":
            rewritten = rewrite_set_cookie(value)
            if rewritten is None:
                continue
            value = rewritten
        out.append((name, value))
    if extra_hop:
        out = [(n, v) for n, v in out if n not in extra_hop]
    out.append((b"content-security-policy", csp))
    out.append((b"referrer-policy", b"same-origin"))
    return out


def api_response_headers(raw: Iterable[tuple[bytes, bytes]]) -> Headers:
    """Headers for an API client: no cookies, ``Access-Control-Allow-Origin: *``,
    ``Vary: Authorization`` (added to the grain's Vary), CSP ``default-src 'none'; sandbox``."""
    out: Headers = []
    vary: list[bytes] = []
    extra_hop: set[bytes] | None = None
    for name, value in raw:
        name = name.lower()
        if (
            name in DROPPED
            or name.startswith(DROPPED_PREFIXES)
            or name == b"set-cookie"
            or b"\r" in value
            or b"\n" in value
            or b"\x00" in value
        ):
            if name == b"connection":
                extra_hop = _connection_tokens(value, extra_hop)
            continue
        if name == b"vary":
            vary.append(value)
            continue
        out.append((name, value))
    if extra_hop:
        out = [(n, v) for n, v in out if n not in extra_hop]
        if b"vary" in extra_hop:
            vary = []
    if not any(b"authorization" in v.lower() for v in vary):
        vary.append(b"Authorization")
    out.append((b"vary", b", ".join(vary)))
    out.append((b"access-control-allow-origin", b"*"))
    out.append((b"content-security-policy", API_CSP))
    return out
