"""Request header rules of compat.md (unit: no network)."""

from __future__ import annotations

import pytest

from sandhaven.errors import InvalidInput
from sandhaven.gateway.request_headers import (
    encode_username,
    filter_cookies,
    identity_headers,
    request_headers,
)
from sandhaven.gateway.target import Identity

IDENTITY = Identity(
    user_id="0ba26e59c64ec75dedbc11679f267a40",
    username="Kurt Friedrich Gödel",
    permissions=("edit",),
    session_id="sid",
    tab_id="ab" * 16,
)
BASE = "http://ui-" + "ab" * 16 + ".localhost:6080"


def as_dict(headers: list[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for n, v in headers:
        out.setdefault(n.decode(), []).append(v.decode())
    return out


def test_username_encoding_matches_compat_examples() -> None:
    assert encode_username("Renée Dupont") == "Ren%C3%A9e%20Dupont"
    assert encode_username("Kurt Friedrich Gödel") == "Kurt%20Friedrich%20G%C3%B6del"
    assert encode_username("Anonymous User") == "Anonymous%20User"
    assert encode_username("a'b(c)!*~_.-") == "a'b(c)!*~_.-"
    assert encode_username("a/b;c=d") == "a%2Fb%3Bc%3Dd"


def test_anonymous_identity() -> None:
    anon = Identity.anonymous(session_id="s", tab_id="cd" * 16)
    headers = dict((n.decode(), v.decode()) for n, v in identity_headers(anon))
    assert "x-sandstorm-user-id" not in headers
    assert headers["x-sandstorm-username"] == "Anonymous%20User"
    assert headers["x-sandstorm-permissions"] == ""
    with pytest.raises(ValueError):
        Identity(
            user_id=None, username="x", permissions=(), session_id="s", tab_id="cd" * 16, handle="x"
        )


@pytest.mark.parametrize(
    "field,value",
    [
        ("user_id", "ABCDEF0123456789abcdef0123456789"),
        ("user_id", "short"),
        ("tab_id", "x" * 32),
        ("handle", "9lives"),
        ("handle", "Bad"),
        ("pronouns", "they"),
        ("session_type", "other"),
        ("username", "a\r\nb"),
        ("picture", "u\nv"),
        ("permissions", ("edit,admin",)),
    ],
)
def test_identity_rejects_bad_values(field: str, value: object) -> None:
    fields = dict(
        user_id="0ba26e59c64ec75dedbc11679f267a40",
        username="x",
        permissions=(),
        session_id="s",
        tab_id="cd" * 16,
    )
    fields[field] = value
    with pytest.raises(ValueError):
        Identity(**fields)  # type: ignore[arg-type]


def test_allow_list_and_identity() -> None:
    incoming = [
        (b"host", b"whatever"),
        (b"accept", b"*/*"),
        (b"x-sandstorm-user-id", b"f" * 32),
        (b"x-sandstorm-app-foo", b"1"),
        (b"authorization", b"Bearer x"),
        (b"origin", b"o"),
        (b"referer", b"r"),
        (b"connection", b"keep-alive"),
        (b"keep-alive", b"5"),
        (b"te", b"trailers"),
        (b"upgrade", b"h2c"),
        (b"proxy-authorization", b"p"),
        (b"sec-websocket-key", b"k"),
        (b"dnt", b"1"),
        (b"via", b"v"),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"transfer-encoding", b"chunked"),
        (b"content-type", b"text/plain"),
        (b"depth", b"1"),
        (b"x-oc-mtime", b"5"),
        (b"cookie", b"a=1; sandhaven_sid=s; SANDHAVENX=y"),
        (b"cookie", b"b=2"),
    ]
    out = as_dict(request_headers(incoming, IDENTITY, base_path=BASE))
    assert out["accept"] == ["*/*"]
    assert out["content-type"] == ["text/plain"]
    assert out["depth"] == ["1"] and out["x-oc-mtime"] == ["5"]
    assert out["cookie"] == ["a=1; b=2"]
    assert out["host"] == [BASE[len("http://") :]]
    assert out["x-forwarded-proto"] == ["http"]
    assert out["x-sandstorm-base-path"] == [BASE]
    assert out["x-sandstorm-user-id"] == ["0ba26e59c64ec75dedbc11679f267a40"]
    for gone in (
        "authorization",
        "origin",
        "referer",
        "connection",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "sec-websocket-key",
        "dnt",
        "via",
        "x-forwarded-for",
        "transfer-encoding",
        "x-sandstorm-app-foo",
    ):
        assert gone not in out, gone


def test_api_request_has_sandbox_host_and_no_cookies() -> None:
    out = as_dict(
        request_headers(
            [(b"cookie", b"a=1"), (b"x-sandstorm-passthrough", b"address")],
            IDENTITY,
            base_path=None,
            client_ip="198.51.100.4",
        )
    )
    assert out["host"] == ["sandbox"]
    assert "cookie" not in out and "x-sandstorm-base-path" not in out
    assert out["x-real-ip"] == ["198.51.100.4"]
    out = as_dict(request_headers([], IDENTITY, base_path=None, client_ip="198.51.100.4"))
    assert "x-real-ip" not in out


@pytest.mark.parametrize("value", [b"a\rb", b"a\nb", b"a\x00b"])
def test_line_breaks_refused(value: bytes) -> None:
    with pytest.raises(InvalidInput):
        request_headers([(b"x-ignored-anyway", value)], IDENTITY, base_path=BASE)


def test_filter_cookies() -> None:
    assert filter_cookies("sandhaven=1") == ""
    assert filter_cookies(" a=1 ;; Sandhaven_x=2; b ") == "a=1; b"
    # Asked again (answered from memory) and past the remembered length: same rules.
    assert filter_cookies(" a=1 ;; Sandhaven_x=2; b ") == "a=1; b"
    long_value = "a=" + "x" * 2000 + "; sandhaven_session=s; b=2"
    assert filter_cookies(long_value) == "a=" + "x" * 2000 + "; b=2"


def test_powerbox_session_type_and_api_name() -> None:
    identity = Identity(
        user_id=None,
        username="x",
        permissions=("read", "write"),
        session_id="s",
        tab_id="ab" * 16,
        session_type="request",
        api="caldav",
    )
    headers = dict((n.decode(), v.decode()) for n, v in identity_headers(identity))
    assert headers["x-sandstorm-session-type"] == "request"
    assert headers["x-sandstorm-api"] == "caldav"
    assert headers["x-sandstorm-permissions"] == "read,write"
