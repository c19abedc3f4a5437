"""How GrainProxy answers what the resolver decides (in-process ASGI, no grain needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandhaven.errors import Forbidden, NotFound, SandhavenError, StoreError
from sandhaven.gateway import GrainProxy, HostClassifier, HostKind, Identity, Target

CLASSIFIER = HostClassifier("http://localhost:6080", "*.localhost:6080")
SESSION_HOST = "ui-" + "ab" * 16 + ".localhost:6080"


def get(proxy: GrainProxy, host: str = SESSION_HOST) -> httpx.Response:
    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=proxy)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as c:
            return await c.get("/x")

    return asyncio.run(main())


def proxy_with(outcome: Any, kind: HostKind = HostKind.SESSION) -> GrainProxy:
    async def resolve(scope: dict[str, Any]) -> Any:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return GrainProxy(resolve, classifier=CLASSIFIER, kind=kind)


def returning(outcome: Any) -> GrainProxy:
    async def resolve(scope: dict[str, Any]) -> Any:
        return outcome

    return GrainProxy(resolve, classifier=CLASSIFIER, kind=HostKind.SESSION)


@pytest.mark.parametrize("make", [proxy_with, returning], ids=["raised", "returned"])
@pytest.mark.parametrize(
    "error,status",
    [
        (Forbidden("No access to this grain."), 403),
        (NotFound("No such grain."), 404),
    ],
)
def test_request_errors(make: Any, error: Exception, status: int) -> None:
    response = get(make(error))
    assert response.status_code == status
    assert str(error) in response.text


def test_platform_failure_is_a_bare_5xx() -> None:
    response = get(proxy_with(StoreError("database /secret/path is locked")))
    assert response.status_code == 500
    assert "secret" not in response.text
    response = get(proxy_with(SandhavenError("internal detail")))
    assert response.status_code == 500
    assert "internal detail" not in response.text


def test_wrong_host_kind_is_404_without_resolving() -> None:
    calls = []

    async def resolve(scope: dict[str, Any]) -> Any:
        calls.append(scope)
        raise AssertionError("must not be called")

    proxy = GrainProxy(resolve, classifier=CLASSIFIER, kind=HostKind.SESSION)
    assert get(proxy, "api.localhost:6080").status_code == 404
    assert calls == []


def test_missing_socket_is_502_without_detail(tmp_path: Path) -> None:
    target = Target(
        "g", str(tmp_path / "gone.sock"), Identity.anonymous(session_id="s", tab_id="ab" * 16)
    )
    response = get(proxy_with(target))
    assert response.status_code == 502
    assert "gone.sock" not in response.text


def test_proxy_kind_must_be_session_or_api() -> None:
    with pytest.raises(ValueError):
        proxy_with(None, HostKind.SHELL)


@pytest.mark.parametrize("header_timeout", [0.3, 1.4], ids=["before-watch", "after-watch"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_grain_that_never_answers_gets_504_at_the_head_deadline(
        tmp_path: Path, header_timeout: float, method: str) -> None:
    """The deadline for the response head holds whether it falls before the
    disconnect watch's timer (1 s) or after it, with and without a request body;
    the grain's connection is dropped and nothing stays in flight."""
    path = str(tmp_path / "mute.sock")
    target = Target("g", path, Identity.anonymous(session_id="s", tab_id="ab" * 16))
    received: list[bytes] = []
    closed = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        await reader.read()  # never answers; returns when the gateway hangs up
        closed.set()
        writer.close()

    async def main() -> tuple[httpx.Response, float]:
        server = await asyncio.start_unix_server(mute, path)
        proxy = GrainProxy(returning(target).resolve, classifier=CLASSIFIER,
                           kind=HostKind.SESSION, header_timeout=header_timeout)
        transport = httpx.ASGITransport(app=proxy)  # type: ignore[arg-type]
        async with server, httpx.AsyncClient(transport=transport,
                                             base_url=f"http://{SESSION_HOST}") as c:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            body = b"x" * 10 if method == "POST" else None
            response = await c.request(method, "/wait", content=body)
            elapsed = loop.time() - t0
            await asyncio.wait_for(closed.wait(), 10)
            return response, elapsed

    response, elapsed = asyncio.run(main())
    assert response.status_code == 504
    assert "took too long" in response.text
    assert header_timeout <= elapsed < header_timeout + 5
    assert received and received[0].startswith(f"{method} /wait HTTP/1.1".encode())
