"""CORS preflight on the API host (unit: in-process ASGI)."""

from __future__ import annotations

import asyncio
from typing import Any

from sandhaven.gateway.preflight import ApiPreflight


def run(headers: list[tuple[bytes, bytes]], method: str = "OPTIONS") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "passed-on"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "headers": headers}
    asyncio.run(ApiPreflight(app)(scope, None, send))
    return sent


def test_preflight_answered() -> None:
    sent = run(
        [
            (b"access-control-request-method", b"PUT"),
            (b"access-control-request-headers", b"authorization, content-type"),
        ]
    )
    assert sent[0]["status"] == 204
    headers = dict(sent[0]["headers"])
    assert headers[b"access-control-allow-origin"] == b"*"
    assert headers[b"access-control-allow-methods"] == b"PUT"
    assert headers[b"access-control-allow-headers"] == b"authorization, content-type"


def test_garbage_request_headers_not_echoed() -> None:
    sent = run(
        [
            (b"access-control-request-method", b"PUT"),
            (b"access-control-request-headers", b"a b\x01"),
        ]
    )
    assert b"access-control-allow-headers" not in dict(sent[0]["headers"])


def test_other_requests_pass() -> None:
    assert run([]) == [{"type": "passed-on"}]
    assert run([(b"access-control-request-method", b"PUT")], method="GET") == [
        {"type": "passed-on"}
    ]
