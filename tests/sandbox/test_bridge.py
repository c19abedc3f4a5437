"""The platform side of the bridge: safe socket connects and the app's proxy."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from sandhaven.errors import GrainError
from sandhaven.sandbox.bridge import PlatformApi, connect_app, probe_http


def test_connect_refuses_a_symlink_planted_in_place_of_the_socket(tmp_path: Path) -> None:
    target = tmp_path / "host.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(target))
    server.listen()
    try:
        planted = tmp_path / "app.sock"
        planted.symlink_to(target)
        with pytest.raises(GrainError, match="not a socket"):
            connect_app(planted)
        with pytest.raises(GrainError, match="does not exist"):
            connect_app(tmp_path / "missing.sock")
        connect_app(target).close()
    finally:
        server.close()


def test_probe_is_false_until_something_answers_http(tmp_path: Path) -> None:
    async def main() -> None:
        path = tmp_path / "app.sock"
        assert not await probe_http(path, 1)

        async def closes_at_once(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.close()

        server = await asyncio.start_unix_server(closes_at_once, path=str(path))
        async with server:
            assert not await probe_http(path, 1)

    asyncio.run(main())


async def _ask(path: Path, request: bytes) -> tuple[int, dict[str, str]]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(request)
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_proxy_answers_platform_calls_and_refuses_everything_else(tmp_path: Path) -> None:
    async def main() -> None:
        api = PlatformApi("g1", tmp_path / "api.sock")
        await api.start()
        try:
            status, body = await _ask(
                api.path,
                b"POST http://http-bridge/session/x/claim HTTP/1.1\r\nHost: http-bridge\r\n\r\n",
            )
            assert status == 404 and body["error"] == "not_found"
            for request in (
                b"GET http://example.com/ HTTP/1.1\r\n\r\n",
                b"CONNECT example.com:443 HTTP/1.1\r\n\r\n",
                b"GET http://http-bridge.evil.com/ HTTP/1.1\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: http-bridge\r\n\r\n",
            ):
                status, body = await _ask(api.path, request)
                assert status == 403, request
            assert (api.calls, api.refused) == (1, 4)
        finally:
            await api.close()

    asyncio.run(main())
