"""A trivial grain HTTP server for tests and benchmarks: echoes headers, serves
deterministic bytes (with Range), streams, sets cookies, relays server-sent
events on demand, and echoes WebSocket messages.

Run on a Unix socket: ``python -m sandhaven.testing.http_grain --uds PATH``, or
with an inherited listening socket: ``--fd N`` (several ``--fd`` allowed; the
benchmark serves one Unix and one TCP socket from the same process).

Routes (``GET`` unless said; the same under ``/api/``):

- ``/headers[/anything]`` (any method): JSON
  ``{"method", "path", "query", "headers": [[name, value]…]}``
- ``/small``: ``hello`` (5 bytes), the benchmark's small response
- ``/bytes?n=N``: N bytes of :func:`pattern` with Content-Length, ETag, single Range
- ``/download?n=N[&chunked=1]``: N bytes of :func:`pattern`, streamed
- ``/upload`` (POST/PUT): JSON ``{"length", "sha256", "content_length"}`` of the body
  (the last is the Content-Length header received, or null)
- ``/cookies``: several Set-Cookie, one with a foreign Domain, one named like the platform's
- ``/unsafe-headers``: response headers the gateway must strip
- ``/sse?id=X&n=K``: K events; each after the first waits for ``POST /release?id=X``
- ``/slow-head?id=X``: answers only after ``POST /release?id=X``
- ``/hang-after-first-chunk``: 64 KiB then nothing (for killing the grain mid-body)
- WebSocket ``/ws``: echo; text ``close:<code>`` closes with that code and reason ``bye``
- ``/ws-closes``: JSON list of ``[code, reason]`` of the closes browsers sent
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

BLOCK_SIZE = 1 << 20
_BLOCK = random.Random(5).randbytes(BLOCK_SIZE)


def pattern(n: int, chunk: int = BLOCK_SIZE) -> Iterator[bytes]:
    """N deterministic bytes in pieces of at most ``chunk`` bytes: 1 MiB blocks of
    fixed random bytes, each starting with its 8-byte index (so a lost, repeated
    or reordered block changes the hash)."""
    sent = 0
    index = 0
    while sent < n:
        block = index.to_bytes(8, "big") + _BLOCK[8:]
        for start in range(0, BLOCK_SIZE, chunk):
            piece = block[start : start + min(chunk, n - sent)]
            if not piece:
                break
            yield piece
            sent += len(piece)
            if sent >= n:
                return
        index += 1


def pattern_bytes(n: int) -> bytes:
    return b"".join(pattern(n))


def pattern_sha256(n: int) -> str:
    h = hashlib.sha256()
    for piece in pattern(n):
        h.update(piece)
    return h.hexdigest()


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class GrainApp:
    """The ASGI app; one instance per server (state: SSE release events)."""

    def __init__(self) -> None:
        self.releases: dict[str, asyncio.Queue[None]] = {}
        self.ws_closes: list[list[Any]] = []

    def _queue(self, key: str) -> asyncio.Queue[None]:
        return self.releases.setdefault(key, asyncio.Queue())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
            return
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        route = scope["path"]
        if route.startswith("/api/"):  # the API path the test resolver prefixes
            route = route[4:]
        if route.startswith("/headers/"):  # any path below echoes too
            route = "/headers"
        handler = getattr(self, "route_" + route.strip("/").replace("-", "_"), None)
        if handler is None:
            await respond(send, 404, b"no such route\n")
            return
        await handler(scope, receive, send, query)

    async def route_small(self, scope: Any, receive: Any, send: Any, query: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
            }
        )
        await send({"type": "http.response.body", "body": b"hello"})

    async def route_headers(self, scope: Any, receive: Any, send: Any, query: Any) -> None:
        await drain(receive)
        body = json.dumps(
            {
                "method": scope["method"],
                "path": scope["raw_path"].decode("latin-1"),
                "query": scope["query_string"].decode("latin-1"),
                "headers": [
                    [n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]
                ],
            }
        ).encode()
        await respond(send, 200, body, b"application/json")

    async def route_bytes(self, scope: Any, receive: Any, send: Any, query: Any) -> None:
        data = pattern_bytes(int(query.get("n", "1024")))
        etag = b'"' + hashlib.sha256(data).hexdigest()[:16].encode() + b'"'
        headers = [
            (b"content-type", b"application/octet-stream"),
            (b"etag", etag),
            (b"accept-ranges", b"bytes"),
        ]
        status = 200
        rng = dict(scope["headers"]).get(b"range")
        if rng:
            m = _RANGE.fullmatch(rng.decode())
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    start = int(m.group(1))
                    end = int(m.group(2)) if m.group(2) else len(data) - 1
                else:
                    start, end = len(data) - int(m.group(2)), len(data) - 1
                end = min(end, len(data) - 1)
                headers.append((b"content-range", f"bytes {start}-{end}/{len(data)}".encode()))
                data, status = data[start : end + 1], 206
        headers.append((b"content-length", str(len(data)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else data}
        )

    async def route_download(self, scope: Any, receive: Any, send: Any, query: Any) -> None:
        n = int(query.get("n", "0"))
        headers = [(b"content-type", b"application/octet-stream")]
        if not query.get("chunked"):
            headers.append((b"content-length", str(n).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for piece in pattern(n, 1 << 18):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def route_upload(self, scope: Any, receive: Any, send: Any, query: Any) -> None:
        h = hashlib.sha256()
        length = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            h.update(chunk)
            length += len(chunk)
            if not message.get("more_body"):
                break
        declared = dict(scope["headers"]).get(b"content-length")
        body = json.dumps(
            {
                "length": length,
                "sha256": h.hexdigest(),
                "content_length": declared and declared.decode(),
            }
        ).encode()
        await respond(send, 200, body, b"application/json")

    async def route_cookies(self, scope: Any, receive: Any, send: Any, query: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/plain"),
                    (b"content-length", b"2"),
                    (b"set-cookie", b"a=1; Path=/; HttpOnly"),
                    (b"set-cookie", b"b=2; Domain=localhost; Path=/"),
                    (b"set-cookie", b"c=3; Path=/; domain=.example.org; Secure"),
                    (b"set-cookie", b"sandhaven_session=evil; Path=/"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})

    async def route_unsafe_headers(self, scope: Any, receive: Any, send: Any, query: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/plain"),
                    (b"content-length", b"2"),
                    (b"content-security-policy", b"default-src *"),
                    (b"x-frame-options", b"ALLOWALL"),
                    (b"access-control-allow-origin", b"https://evil.example"),
                    (b"access-control-allow-credentials", b"true"),
                    (b"referrer-policy", b"unsafe-url"),
                    (b"strict-transport-security", b"max-age=1"),
                    (b"www-authenticate", b'Basic realm="x"'),
                    (b"alt-svc", b'h3=":443"'),
                    (b"x-app-header", b"kept"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})

    async def route_ws_closes(self, scope: Any, receive: Any, send: Any, query: Any) -> None:
        await respond(send, 200, json.dumps(self.ws_closes).encode(), b"application/json")

    async def route_release(self, scope: Any, receive: Any, send: Any, query: Any) -> None:
        await drain(receive)
        self._queue(query["id"]).put_nowait(None)
        await respond(send, 200, b"released\n")

    async def route_sse(self, scope: Any, receive: Any, send: Any, query: Any) -> None:
        queue = self._queue(query["id"])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        for i in range(int(query.get("n", "3"))):
            if i:
                await queue.get()
            await send(
                {
                    "type": "http.response.body",
                    "body": f"data: event {i}\n\n".encode(),
                    "more_body": True,
                }
            )
        await send({"type": "http.response.body", "body": b""})

    async def route_slow_head(self, scope: Any, receive: Any, send: Any, query: Any) -> None:
        await self._queue(query["id"]).get()
        await respond(send, 200, b"late\n")

    async def route_hang_after_first_chunk(
        self, scope: Any, receive: Any, send: Any, query: Any
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/octet-stream"),
                    (b"content-length", str(1 << 30).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        await asyncio.Event().wait()  # until the test kills this process

    async def websocket(self, scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        assert message["type"] == "websocket.connect"
        protocols = scope.get("subprotocols") or []
        await send({"type": "websocket.accept", "subprotocol": protocols[0] if protocols else None})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.ws_closes.append([message.get("code"), message.get("reason") or ""])
                return
            text = message.get("text")
            if text is not None and text.startswith("close:"):
                await send({"type": "websocket.close", "code": int(text[6:]), "reason": "bye"})
                return
            if text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})


async def drain(receive: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body"):
            return


async def respond(send: Any, status: int, body: bytes, ctype: bytes = b"text/plain") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uds", help="Unix socket path to listen on")
    parser.add_argument(
        "--fd",
        type=int,
        action="append",
        default=[],
        help="inherited listening socket (repeatable)",
    )
    args = parser.parse_args()
    config = uvicorn.Config(
        GrainApp(), log_level="warning", ws_max_size=64 << 20, lifespan="off", server_header=False
    )
    server = uvicorn.Server(config)
    sockets = [socket.socket(fileno=fd) for fd in args.fd]
    if args.uds:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(args.uds)
        sock.listen(1024)
        sockets.append(sock)
    run = _uvloop() or asyncio.run
    run(server.serve(sockets=sockets))


def _uvloop() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.run


if __name__ == "__main__":
    main()
