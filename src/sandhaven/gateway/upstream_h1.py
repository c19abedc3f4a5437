"""A lean HTTP/1.1 client for the gateway's hot path: pooled keep-alive connections
to one grain's Unix socket, the response parsed by ``httptools`` (llhttp, C).

Why not aiohttp here (it stays for WebSockets): per proxied small request,
aiohttp's request machinery (URL objects, request/response classes, timers,
tracing hooks, cookie handling) cost more than the rest of the gateway put
together; this client does only what a proxy needs — write a request head,
stream a body, parse a response head, stream a body with back-pressure — and
took the gateway from about 6.8 k to the figures in docs/performance.md
("Gateway"). Measured with ``bench/gateway_bench.py``.

Bounded memory: the request body is written one chunk at a time, each write
awaiting the socket's drain when its buffer passes the transport's high-water
mark; response bytes are buffered up to :data:`HIGH_WATER` before reading from
the grain's socket pauses (resumed below :data:`LOW_WATER`).

Errors: :class:`UpstreamError` for anything the grain does wrong or by dying
(connect refused or missing socket, connection lost mid-message, unparsable
response). Its message is for logs, never for the browser.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

import httptools

HIGH_WATER = 1024 * 1024
LOW_WATER = 256 * 1024


class UpstreamError(Exception):
    """The grain could not be reached, broke the connection, or sent a bad response."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; one request at a time (no pipelining)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: UpstreamResponse | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None

    # -- transport events --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        response.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            response.fail(UpstreamError(f"unparsable response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(UpstreamError("connection lost while sending"))
        if self.response is not None:
            self.response.connection_lost()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- parser callbacks (names fixed by httptools) -----------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.response.headers.append((name, value))  # type: ignore[union-attr]

    def on_headers_complete(self) -> None:
        self.response.headers_complete(  # type: ignore[union-attr]
            self.parser.get_status_code(), self.parser.should_keep_alive()
        )

    def on_body(self, body: bytes) -> None:
        self.response.feed(body)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        self.response.message_complete()  # type: ignore[union-attr]

    # -- use -----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.closed:
            raise UpstreamError("connection lost while sending")
        self.transport.write(data)  # type: ignore[union-attr]

    async def drain(self) -> None:
        if self.closed:
            raise UpstreamError("connection lost while sending")
        if self._write_paused:
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamResponse:
    """A grain's response: ``status`` (int), ``headers`` (raw ``(name, value)`` bytes
    pairs as sent, several of a name kept) and a body read with :meth:`read`.

    Call :meth:`release` when done: the connection goes back to the pool only if
    the message was read to its end and may be kept alive.
    """

    def __init__(self, connection: _Connection, pool: _SocketPool, head_only: bool) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.received_any = False
        self._connection = connection
        self._pool = pool
        self._head_only = head_only
        self._interim = False
        self._keep_alive = False
        self._done = False
        self._exc: UpstreamError | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._read_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self.head: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sender: asyncio.Task[None] | None = None

    # -- fed by the connection -----------------------------------------------

    def headers_complete(self, status: int, keep_alive: bool) -> None:
        if 100 <= status < 200:  # an interim response (103 Early Hints…): skip it
            self.headers = []
            self._interim = True
            return
        self.status = status
        self._keep_alive = keep_alive
        if self._head_only:
            # httptools cannot be told the request was HEAD and would wait for
            # the body Content-Length announces; end here and drop the connection.
            self._done = True
            self._keep_alive = False
        if not self.head.done():
            self.head.set_result(None)

    def feed(self, body: bytes) -> None:
        if self._done:
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._read_paused:
            self._read_paused = True
            self._connection.transport.pause_reading()  # type: ignore[union-attr]
        self._wake()

    def message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._done = True
        self._wake()

    def connection_lost(self) -> None:
        if self._done:
            return
        if self.head.done() and self._delimited_by_close():
            self._done = True  # a body without length ends when the grain closes
            self._wake()
        else:
            self.fail(UpstreamError("the grain closed the connection mid-message"))

    def fail(self, exc: UpstreamError) -> None:
        if not self.head.done():
            self.head.set_exception(exc)
            self.head.exception()  # retrieved here; the caller sees it through await
        else:
            self._exc = exc
        self._wake()

    def _delimited_by_close(self) -> bool:
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == b"content-length":
                return False
            if lowered == b"transfer-encoding" and b"chunked" in value.lower():
                return False
        return True

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- read by the proxy -------------------------------------------------------

    def ready(self) -> bool:
        """True when :meth:`read` would return without waiting."""
        return bool(self._chunks) or self._done or self._exc is not None

    def at_eof(self) -> bool:
        """True when the whole body has been read."""
        return self._done and not self._chunks

    async def read(self) -> bytes:
        """The next piece of the body as received (waiting for one), ``b""`` at the end.
        Raises UpstreamError when the grain broke off mid-body."""
        while not self._chunks:
            if self._exc is not None:
                raise self._exc
            if self._done:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        # One piece at a time: joining would copy every byte once more.
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._read_paused and self._buffered < LOW_WATER and not self._connection.closed:
            self._read_paused = False
            self._connection.transport.resume_reading()  # type: ignore[union-attr]
        return data

    def release(self) -> None:
        """Give the connection back (if reusable) or close it. Idempotent."""
        connection, self._connection.response = self._connection, None
        reusable = (
            self._done
            and self._keep_alive
            and not self._chunks
            and (self.sender is None or self.sender.done())
        )
        if self.sender is not None and not self.sender.done():
            self.sender.cancel()
        if reusable and not connection.closed:
            self._pool.put(connection)
        else:
            connection.close()


class _SocketPool:
    """Idle keep-alive connections to one socket, most recently used first out."""

    def __init__(self, path: str, max_idle: int, keepalive_timeout: float) -> None:
        self.path = path
        self.max_idle = max_idle
        self.keepalive_timeout = keepalive_timeout
        self.idle: list[_Connection] = []

    async def get(self) -> _Connection:
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self.idle:
            connection = self.idle.pop()
            if not connection.closed and now - connection.idle_since < self.keepalive_timeout:
                connection.reused = True
                return connection
            connection.close()
        try:
            _, connection = await loop.create_unix_connection(_Connection, self.path)
        except OSError as exc:
            raise UpstreamError(f"cannot connect: {exc.strerror or exc}") from None
        return connection

    def put(self, connection: _Connection) -> None:
        if len(self.idle) >= self.max_idle:
            connection.close()
            return
        connection.idle_since = asyncio.get_running_loop().time()
        self.idle.append(connection)

    def close(self) -> None:
        idle, self.idle = self.idle, []
        for connection in idle:
            connection.close()


class H1Client:
    """HTTP/1.1 requests to grains' Unix sockets, connections pooled per socket."""

    def __init__(self, *, max_idle_per_socket: int = 128, keepalive_timeout: float = 30.0) -> None:
        self.max_idle = max_idle_per_socket
        self.keepalive_timeout = keepalive_timeout
        self._pools: dict[str, _SocketPool] = {}

    def _pool(self, path: str) -> _SocketPool:
        pool = self._pools.get(path)
        if pool is None:
            pool = self._pools[path] = _SocketPool(path, self.max_idle, self.keepalive_timeout)
        return pool

    async def request(
        self,
        socket_path: str,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None = None,
        *,
        chunked: bool = False,
    ) -> UpstreamResponse:
        """Send one request and return once the response head has arrived.

        ``target`` is the request target (path and query, already encoded);
        ``headers`` are sent as given (the caller supplies Host and, for a body,
        Content-Length unless ``chunked``, in which case this adds
        ``Transfer-Encoding: chunked`` and frames each body chunk). A body is
        written concurrently with waiting for the response, so a grain that
        answers early (413…) is heard. An idempotent request without a body is
        retried once on a fresh connection if a kept-alive one turns out closed.

        Raises UpstreamError; exceptions raised by ``body`` propagate.
        """
        pool = self._pool(socket_path)
        lines = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
        for name, value in headers:
            lines += (name, b": ", value, b"\r\n")
        if chunked:
            lines.append(b"transfer-encoding: chunked\r\n")
        lines.append(b"\r\n")
        head = b"".join(lines)
        head_only = method == "HEAD"
        for attempt in (0, 1):
            connection = await pool.get()
            response = UpstreamResponse(connection, pool, head_only)
            connection.response = response
            connection.write(head)
            if body is None:
                try:
                    await response.head
                except UpstreamError:
                    response.release()
                    if (
                        attempt == 0
                        and connection.reused
                        and not response.received_any
                        and method in ("GET", "HEAD", "OPTIONS")
                    ):
                        continue
                    raise
                except BaseException:
                    response.release()
                    raise
                return response
            response.sender = asyncio.ensure_future(_send_body(connection, body, chunked))
            response.sender.add_done_callback(_retrieve)
            try:
                await asyncio.wait(
                    (response.head, response.sender), return_when=asyncio.FIRST_COMPLETED
                )
                if not response.head.done():
                    exc = response.sender.exception()
                    if exc is not None and not isinstance(exc, UpstreamError):
                        raise exc  # the browser went away mid-upload
                await response.head
            except BaseException:
                response.release()
                raise
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def forget(self, socket_path: str) -> None:
        """Close the idle connections of ``socket_path`` (its grain stopped)."""
        pool = self._pools.pop(socket_path, None)
        if pool is not None:
            pool.close()

    async def aclose(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()


def _retrieve(task: asyncio.Task[None]) -> None:
    # A failed upload after the response head arrived is reported by the
    # response itself (or is moot); mark the exception seen.
    if not task.cancelled():
        task.exception()


async def _send_body(connection: _Connection, body: AsyncIterator[bytes], chunked: bool) -> None:
    try:
        async for chunk in body:
            if chunked:
                connection.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            else:
                connection.write(chunk)
            await connection.drain()
        if chunked:
            connection.write(b"0\r\n\r\n")
    finally:
        with contextlib.suppress(Exception):
            await body.aclose()  # type: ignore[attr-defined]
