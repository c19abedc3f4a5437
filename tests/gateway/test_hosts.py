"""Host classification and routing (unit: no network)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sandhaven.gateway.hosts import SCOPE_KEY, HostClassifier, HostKind, HostRouter

SESSION = "ui-" + "0123456789abcdef" * 2


def test_default_settings() -> None:
    c = HostClassifier("http://localhost:6080", "*.localhost:6080")
    assert c.classify("localhost:6080").kind is HostKind.SHELL
    match = c.classify(f"{SESSION}.localhost:6080")
    assert match.kind is HostKind.SESSION
    assert match.label == SESSION
    assert match.origin == f"http://{SESSION}.localhost:6080"
    assert c.classify("api.localhost:6080").kind is HostKind.API
    assert c.classify("API.LOCALHOST:6080").kind is HostKind.API
    assert c.shell_origin == "http://localhost:6080"


@pytest.mark.parametrize(
    "host",
    [
        "",
        "localhost",
        "localhost:6081",
        "evil.example",
        f"{SESSION}.localhost",
        f"{SESSION}.localhost:6081",
        "ui-0123.localhost:6080",
        f"{SESSION}0.localhost:6080",
        f"x.{SESSION}.localhost:6080",
        "api.localhost",
        "www.localhost:6080",
        f"{SESSION.upper()}x.localhost:6080",
        f"{SESSION}.localhost:6080.evil.example",
    ],
)
def test_unknown_hosts(host: str) -> None:
    c = HostClassifier("http://localhost:6080", "*.localhost:6080")
    assert c.classify(host).kind is HostKind.UNKNOWN


def test_classes_are_remembered_per_value_and_the_memory_stays_bounded() -> None:
    c = HostClassifier("http://localhost:6080", "*.localhost:6080")
    first = c.classify(f"{SESSION}.localhost:6080")
    assert c.classify(f"{SESSION}.localhost:6080") is first  # the remembered answer
    # A client sending a new Host with every request (hostile or not) cannot grow it
    # past its bound; a long value is answered but not remembered.
    for n in range(10_000):
        assert c.classify(f"x{n}.localhost:6080").kind is HostKind.UNKNOWN
    long_host = "a" * 300 + ".localhost:6080"
    assert c.classify(long_host).kind is HostKind.UNKNOWN
    assert len(c._classified) <= 4096 and long_host not in c._classified
    # ...and classes stay right after the memory started over.
    assert c.classify(f"{SESSION}.localhost:6080").kind is HostKind.SESSION
    assert c.classify("localhost:6080").kind is HostKind.SHELL


def test_uppercase_session_host_is_the_same_host() -> None:
    c = HostClassifier("http://localhost:6080", "*.localhost:6080")
    match = c.classify(f"{SESSION.upper()}.LOCALHOST:6080".replace("UI-", "ui-"))
    assert match.kind is HostKind.SESSION
    assert match.label == SESSION


def test_https_default_port_is_optional() -> None:
    c = HostClassifier("https://box.example.org", "*.box.example.org")
    assert c.classify("box.example.org:443").kind is HostKind.SHELL
    assert c.classify(f"{SESSION}.box.example.org").origin == f"https://{SESSION}.box.example.org"
    assert c.classify(f"{SESSION}.box.example.org:443").kind is HostKind.SESSION
    assert c.classify("api.box.example.org").kind is HostKind.API
    assert c.classify(f"{SESSION}.box.example.org:80").kind is HostKind.UNKNOWN


def _call(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_router_dispatches_and_records_the_match() -> None:
    seen: dict[str, Any] = {}

    def app(name: str) -> Any:
        async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
            seen[name] = scope[SCOPE_KEY]

        return inner

    router = HostRouter(
        app("shell"),
        app("session"),
        app("api"),
        classifier=HostClassifier("http://localhost:6080", "*.localhost:6080"),
    )
    for host, name in (
        ("localhost:6080", "shell"),
        (f"{SESSION}.localhost:6080", "session"),
        ("api.localhost:6080", "api"),
    ):
        _call(router, {"type": "http", "headers": [(b"host", host.encode())]})
        assert seen[name].kind.value == name
    sent = _call(router, {"type": "http", "headers": [(b"host", b"evil.example")]})
    assert sent[0]["status"] == 404
    assert b"nothing at this address" in sent[1]["body"]


def test_repeated_host_header_reaches_nothing() -> None:
    async def never(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise AssertionError("routed")

    router = HostRouter(
        never, never, never, classifier=HostClassifier("http://localhost:6080", "*.localhost:6080")
    )
    sent = _call(
        router,
        {
            "type": "http",
            "headers": [
                (b"host", b"localhost:6080"),
                (b"host", f"{SESSION}.localhost:6080".encode()),
            ],
        },
    )
    assert sent[0]["status"] == 404
