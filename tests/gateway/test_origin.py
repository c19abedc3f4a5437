"""Cross-site refusal on session hosts (unit: in-process ASGI)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sandhaven.gateway.hosts import HostClassifier
from sandhaven.gateway.origin import SameOriginOnly

SESSION = "ui-" + "ab" * 16 + ".localhost:6080"
CLASSIFIER = HostClassifier("http://localhost:6080", "*.localhost:6080")


def status(method: str, origin: str | None, kind: str = "http") -> int | str:
    sent: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        sent.append({"type": "passed"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"host", SESSION.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    scope = {"type": kind, "method": method, "headers": headers}
    asyncio.run(SameOriginOnly(app, classifier=CLASSIFIER)(scope, None, send))
    first = sent[0]
    return "passed" if first["type"] == "passed" else first.get("status", first["type"])


@pytest.mark.parametrize(
    "method,origin",
    [
        ("GET", "https://evil.example"),
        ("POST", None),
        ("POST", "null"),
        ("POST", f"http://{SESSION}"),
        ("PUT", f"HTTP://{SESSION.upper()}".replace("UI-", "ui-")),
        ("DELETE", "http://localhost:6080"),
        ("OPTIONS", "https://evil.example"),
    ],
)
def test_passes(method: str, origin: str | None) -> None:
    assert status(method, origin) == "passed"


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://ui-" + "cd" * 16 + ".localhost:6080",
        "http://api.localhost:6080",
        f"https://{SESSION}",
    ],
)
def test_refused(origin: str) -> None:
    assert status("POST", origin) == 403


def test_cross_site_websocket_refused() -> None:
    assert status("GET", "https://evil.example", kind="websocket") == "websocket.close"
    assert status("GET", f"http://{SESSION}", kind="websocket") == "passed"
