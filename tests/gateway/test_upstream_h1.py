"""The HTTP/1.1 upstream client against scripted servers on real Unix sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from sandhaven.gateway.upstream_h1 import H1Client, UpstreamError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def serve(path: Path, handler: Handler) -> asyncio.AbstractServer:
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_unix_server(closing, path=str(path))


async def body_of(response) -> bytes:  # type: ignore[no-untyped-def]
    parts = []
    while True:
        piece = await response.read()
        if not piece:
            break
        parts.append(piece)
    return b"".join(parts)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


def test_content_length_keep_alive_reuses_the_connection(tmp_path: Path) -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            await read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello")

    async def main() -> None:
        sock = tmp_path / "s.sock"
        server = await serve(sock, handler)
        client = H1Client()
        for _ in range(3):
            r = await client.request(str(sock), "GET", b"/", [(b"host", b"grain")])
            assert r.status == 200
            assert r.headers == [(b"Content-Length", b"5"), (b"X-A", b"1"), (b"X-A", b"2")]
            assert await body_of(r) == b"hello"
            r.release()
        assert connections == 1
        await client.aclose()
        server.close()

    run(main())


def test_chunked_and_close_delimited_bodies(tmp_path: Path) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        while b"/chunked" in head:
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            )
            head = await read_head(reader)
        if True:
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close")
            await writer.drain()
            writer.close()

    async def main() -> None:
        sock = tmp_path / "s.sock"
        server = await serve(sock, handler)
        client = H1Client()
        r = await client.request(str(sock), "GET", b"/chunked", [])
        assert await body_of(r) == b"abcde"
        r.release()
        r = await client.request(str(sock), "GET", b"/close", [])
        assert await body_of(r) == b"until close"
        r.release()
        await client.aclose()
        server.close()

    run(main())


def test_truncated_body_is_an_error(tmp_path: Path) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()
        writer.close()

    async def main() -> None:
        sock = tmp_path / "s.sock"
        server = await serve(sock, handler)
        client = H1Client()
        r = await client.request(str(sock), "GET", b"/", [])
        with pytest.raises(UpstreamError):
            await body_of(r)
        r.release()
        server.close()

    run(main())


def test_head_and_interim_responses(tmp_path: Path) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        if head.startswith(b"HEAD"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        else:
            writer.write(
                b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            )

    async def main() -> None:
        sock = tmp_path / "s.sock"
        server = await serve(sock, handler)
        client = H1Client()
        r = await client.request(str(sock), "HEAD", b"/", [])
        assert r.headers == [(b"Content-Length", b"1000")]
        assert await body_of(r) == b""
        r.release()
        r = await client.request(str(sock), "GET", b"/", [])
        assert r.status == 200 and r.headers == [(b"Content-Length", b"2")]
        assert await body_of(r) == b"ok"
        r.release()
        await client.aclose()
        server.close()

    run(main())


def test_stale_kept_alive_connection_is_retried_once(tmp_path: Path) -> None:
    served = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await read_head(reader)
        served += 1
        # Claims keep-alive, then closes once the client has read the response.
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read(1)  # the next request arrives: hang up without answering
        writer.close()

    async def main() -> None:
        sock = tmp_path / "s.sock"
        server = await serve(sock, handler)
        client = H1Client()
        for _ in range(2):
            r = await client.request(str(sock), "GET", b"/", [])
            assert await body_of(r) == b"ok"
            r.release()
        assert served == 2
        await client.aclose()
        server.close()

    run(main())


def test_missing_socket_is_an_error(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(UpstreamError):
            await H1Client().request(str(tmp_path / "none.sock"), "GET", b"/", [])

    run(main())


def test_early_answer_during_upload(tmp_path: Path) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"x" * 65536
            await asyncio.sleep(0)

    async def main() -> None:
        sock = tmp_path / "s.sock"
        server = await serve(sock, handler)
        client = H1Client()
        r = await client.request(str(sock), "POST", b"/", [], endless(), chunked=True)
        assert r.status == 413
        assert await body_of(r) == b""
        r.release()
        server.close()

    run(main())


def test_chunked_upload_is_framed(tmp_path: Path) -> None:
    received: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await read_head(reader))
        received.append(await reader.readuntil(b"0\r\n\r\n"))
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")

    async def parts() -> AsyncIterator[bytes]:
        yield b"hello"
        yield b", world"

    async def main() -> None:
        sock = tmp_path / "s.sock"
        server = await serve(sock, handler)
        client = H1Client()
        r = await client.request(
            str(sock), "PUT", b"/x?y=1", [(b"host", b"sandbox")], parts(), chunked=True
        )
        assert r.status == 204
        r.release()
        assert received[0] == (
            b"PUT /x?y=1 HTTP/1.1\r\nhost: sandbox\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        assert received[1] == b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"
        await client.aclose()
        server.close()

    run(main())
