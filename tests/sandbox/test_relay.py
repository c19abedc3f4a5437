"""The init's relay carries large bodies both ways, many connections at once,
and half-closed connections, without losing or reordering a byte."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from pathlib import Path

from sandhaven.sandbox.bridge import connect_app
from sandhaven.sandbox.testing import python_app_spec, test_config
from sandhaven.supervisor import Supervisor

HELLO = Path(__file__).parent / "apps" / "hello"


def exchange(path: Path, request: bytes, half_close: bool = False) -> tuple[bytes, bytes]:
    with connect_app(path) as s:
        s.sendall(request)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(1 << 20):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def test_relay_is_lossless_both_ways_and_under_concurrency(runtime_root: Path) -> None:
    upload = os.urandom(6 << 20)

    async def main() -> None:
        spec_for = lambda gid: python_app_spec(runtime_root, gid, HELLO)  # noqa: E731
        async with Supervisor(spec_for, test_config(runtime_root)) as sup:
            path = await sup.ensure_running("g1")
            post = (
                f"POST /echo HTTP/1.0\r\nHost: sandbox\r\nContent-Length: {len(upload)}\r\n\r\n"
            ).encode() + upload
            head, body = await asyncio.to_thread(exchange, path, post, True)
            assert head.split(b"\r\n")[0].endswith(b" 200 OK")
            assert hashlib.sha256(body).digest() == hashlib.sha256(upload).digest()

            get = b"GET /big?mb=16 HTTP/1.0\r\nHost: sandbox\r\n\r\n"
            results = await asyncio.gather(
                *(asyncio.to_thread(exchange, path, get) for _ in range(8))
            )
            expected = hashlib.sha256(bytes(range(256)) * 4096 * 16).digest()
            assert all(hashlib.sha256(b).digest() == expected for _, b in results)

            small = b"GET / HTTP/1.0\r\nHost: sandbox\r\n\r\n"
            many = await asyncio.gather(
                *(asyncio.to_thread(exchange, path, small) for _ in range(200))
            )
            assert all(body == b"hello" for _, body in many)

    asyncio.run(main())
