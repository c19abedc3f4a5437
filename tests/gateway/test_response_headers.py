"""Response header rules and security headers of compat.md (unit: no network)."""

from __future__ import annotations

from sandhaven.gateway.response_headers import (
    api_response_headers,
    rewrite_set_cookie,
    session_csp,
    session_response_headers,
)

ORIGIN = "http://ui-" + "ab" * 16 + ".localhost:6080"
SHELL = "http://localhost:6080"


def test_session_csp() -> None:
    csp = session_csp(ORIGIN, SHELL)
    directives = dict(d.split(" ", 1) for d in csp.split("; "))
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == f"'self' {SHELL}"
    assert directives["frame-src"] == f"'self' {SHELL}"
    assert directives["worker-src"] == "'none'"
    assert directives["connect-src"] == "'self' ws://ui-" + "ab" * 16 + ".localhost:6080"
    assert directives["img-src"].startswith("*")
    assert "'unsafe-eval'" in directives["script-src"]
    assert directives["form-action"] == "'self'"
    https = session_csp("https://ui-x.box.example.org", "https://box.example.org")
    assert "connect-src 'self' wss://ui-x.box.example.org" in https


def test_session_response_headers() -> None:
    raw = [
        (b"Content-Type", b"text/html"),
        (b"Set-Cookie", b"a=1; Domain=localhost; Path=/"),
        (b"set-cookie", b"b=2"),
        (b"set-cookie", b"SandhavenSession=x"),
        (b"Content-Security-Policy", b"default-src *"),
        (b"X-Frame-Options", b"ALLOW"),
        (b"Access-Control-Allow-Origin", b"*"),
        (b"WWW-Authenticate", b"Basic"),
        (b"Connection", b"keep-alive, x-private"),
        (b"X-Private", b"hop"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Strict-Transport-Security", b"max-age=1"),
        (b"Public-Key-Pins", b"x"),
        (b"Referrer-Policy", b"unsafe-url"),
        (b"Content-Length", b"10"),
        (b"X-Bad", b"a\r\nInjected: 1"),
    ]
    out = session_response_headers(raw, b"CSP")
    assert out == [
        (b"content-type", b"text/html"),
        (b"set-cookie", b"a=1; Path=/"),
        (b"set-cookie", b"b=2"),
        (b"content-length", b"10"),
        (b"content-security-policy", b"CSP"),
        (b"referrer-policy", b"same-origin"),
    ]


def test_api_response_headers() -> None:
    raw = [
        (b"content-type", b"application/json"),
        (b"set-cookie", b"a=1"),
        (b"vary", b"Accept"),
        (b"www-authenticate", b'Basic realm="x"'),
        (b"access-control-allow-origin", b"https://evil.example"),
        (b"x-private", b"hop"),  # named in Connection below: a hop-by-hop header
        (b"Connection", b"close, X-Private"),
    ]
    out = api_response_headers(raw)
    assert out == [
        (b"content-type", b"application/json"),
        (b"www-authenticate", b'Basic realm="x"'),
        (b"vary", b"Accept, Authorization"),
        (b"access-control-allow-origin", b"*"),
        (b"content-security-policy", b"default-src 'none'; sandbox"),
    ]


def test_rewrite_set_cookie() -> None:
    assert rewrite_set_cookie(b"a=1; domain=.example.org; Secure") == b"a=1; Secure"
    assert rewrite_set_cookie(b"a=1;Domain=x;DOMAIN=y;Path=/") == b"a=1;Path=/"
    assert rewrite_set_cookie(b"=nameless") is None
    assert rewrite_set_cookie(b"sandhaven_sid=x") is None
