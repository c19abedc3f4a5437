"""X-Forwarded-* trust (unit: no network)."""

from __future__ import annotations

import asyncio
from typing import Any

from sandhaven.gateway.forwarded import TrustedForwarded


def _scope_after(
    trusted: tuple[str, ...], client: str, headers: list[tuple[bytes, bytes]]
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(scope)

    scope = {
        "type": "http",
        "scheme": "http",
        "client": (client, 5000),
        "headers": [(b"host", b"localhost:6080"), *headers],
    }
    asyncio.run(TrustedForwarded(app, trusted)(scope, None, None))
    return seen


FORWARDED = [
    (b"x-forwarded-proto", b"https"),
    (b"x-forwarded-for", b"6.6.6.6, 203.0.113.9"),
    (b"x-forwarded-host", b"box.example.org"),
]


def test_untrusted_peer_headers_are_removed() -> None:
    scope = _scope_after((), "203.0.113.9", FORWARDED)
    assert scope["scheme"] == "http"
    assert scope["client"] == ("203.0.113.9", 5000)
    assert scope["headers"] == [(b"host", b"localhost:6080")]


def test_trusted_proxy_is_believed() -> None:
    scope = _scope_after(("127.0.0.1",), "127.0.0.1", FORWARDED)
    assert scope["scheme"] == "https"
    assert scope["client"] == ("203.0.113.9", 0)
    assert (b"host", b"box.example.org") in scope["headers"]
    assert (b"host", b"localhost:6080") not in scope["headers"]
    assert not any(n.startswith(b"x-forwarded") for n, _ in scope["headers"])


def test_client_is_rightmost_untrusted_hop() -> None:
    scope = _scope_after(
        ("10.0.0.0/8",), "10.0.0.2", [(b"x-forwarded-for", b"6.6.6.6, 198.51.100.7, 10.0.0.1")]
    )
    assert scope["client"] == ("198.51.100.7", 0)


def test_peer_outside_the_trusted_network_is_not_believed() -> None:
    scope = _scope_after(("10.0.0.0/8",), "192.168.1.1", FORWARDED)
    assert scope["scheme"] == "http"
