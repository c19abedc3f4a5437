"""An HTTP protocol for uvicorn that coalesces the writes of one event-loop step.

uvicorn's httptools protocol writes a response's status line and headers on
``http.response.start`` and the body on ``http.response.body``: two ``write``
calls, so two syscalls (and two TCP segments) for every small proxied
response. Here the transport handed to uvicorn gathers what is written during
one step of the event loop and writes it with one ``writelines`` (a single
``writev`` in uvloop) at the start of the next step; a large write (a body
being streamed) goes out at once with whatever was gathered before it, so
streaming is not delayed. Nothing else changes:
flow control, upgrades and closing go to the real transport (a close first
flushes what is gathered).

Use: ``uvicorn.Config(app, http=CoalescingHttpToolsProtocol, ...)``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LARGE = 16 * 1024
"""Writes of at least this many bytes go out at once (with anything gathered before)."""


class CoalescingTransport:
    """Wraps an asyncio transport; ``write`` calls made within one loop step are
    written together. Every other attribute is the wrapped transport's."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if len(data) >= LARGE:
            # Streaming: a big piece gains nothing from waiting; send it now,
            # after whatever is gathered (order is kept).
            self._pending.append(data)
            self._flush()
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending or self._transport.is_closing():
            return
        if len(pending) == 1:
            self._transport.write(pending[0])
        else:
            self._transport.writelines(pending)

    def writelines(self, data: Any) -> None:
        for piece in data:
            self.write(piece)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(p) for p in self._pending)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


MAX_HEAD = 64 * 1024
"""Bytes a request's line and headers may take (nginx allows 4 × 8 KiB by
default; browsers send a few KiB). Past it: 431 and close."""
HEAD_TIMEOUT = 30.0
"""Seconds a connection may take to send a request's head once it connected or
began the request (nginx's ``client_header_timeout`` is 60 s). Past it: 408 and
close; a client that trickles header lines cannot hold a connection for ever.
Idle kept-alive connections between requests are uvicorn's (``timeout_keep_alive``)."""
MAX_CONNECTIONS = 4096
"""Connections (and requests in flight) served at once; beyond it uvicorn answers
503 (``limit_concurrency``). Each proxied request also holds a connection to its
grain, and the process may open 20,000 files."""
LINGER = 2.0
"""Seconds a refused connection keeps reading (and dropping) before it closes."""


def _answer(status: bytes, text: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"connection: close\r\ncontent-length: " + str(len(text)).encode()
            + b"\r\n\r\n" + text)


_TOO_LARGE = _answer(b"431 Request Header Fields Too Large", b"Request header fields too large.\n")
_TOO_SLOW = _answer(b"408 Request Timeout", b"The request's headers took too long.\n")


class _HeadTooLarge(Exception):
    """Raised in a parser callback to stop parsing a request whose head is too large."""


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a :class:`CoalescingTransport`, with bounds
    on a request's head: its size (:data:`MAX_HEAD`, 431) and the time it may take
    to arrive (:data:`HEAD_TIMEOUT`, 408). uvicorn's httptools protocol has
    neither: a client could stream headers into the server's memory without end,
    or hold connections open by sending nothing."""

    _in_head = False
    _head_bytes = 0
    _head_since: float | None = None
    _refused = False
    _too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        self._head_since = self.loop.time()
        _watch_heads(self.loop, self.server_state)

    _read = 0

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the rest of a refused request: read and dropped (see below)
        self._read = len(data)
        super().data_received(data)
        if self._in_head:
            # A head arriving in pieces: what the parser keeps stays bounded by
            # MAX_HEAD plus one read (the whole head is measured when complete).
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD and not self.transport.is_closing():
                self._refuse(_TOO_LARGE)

    def on_message_begin(self) -> None:
        self._in_head, self._head_bytes = True, 0
        if self._head_since is None:
            self._head_since = self.loop.time()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head, self._head_since = False, None
        # Measured only when the bytes read for it could hold more than MAX_HEAD
        # (never for an ordinary request: this runs for every one).
        if self._head_bytes + self._read > MAX_HEAD and (
                len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers) > MAX_HEAD):
            # Stops the parser before the request is dispatched; uvicorn then
            # answers through send_400_response, which answers 431 instead.
            self._too_large = True
            raise _HeadTooLarge
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._too_large:
            self._refuse(_TOO_LARGE)
            return
        super().send_400_response(msg)

    def head_overdue(self, now: float) -> bool:
        """True when a request's head has been arriving for over HEAD_TIMEOUT."""
        return self._head_since is not None and now - self._head_since > HEAD_TIMEOUT

    def refuse_slow_head(self) -> None:
        if not self._refused and not self.transport.is_closing():
            self._refuse(_TOO_SLOW)

    def _refuse(self, answer: bytes) -> None:
        """Answer and end the connection. Closing while the client is still sending
        would make the kernel reset the connection, and the client would never
        read the answer; so the answer is followed by a half-close, what else
        arrives is dropped, and the connection closes after LINGER seconds (or
        when the client closes its side)."""
        self._in_head, self._refused, self._head_since = False, True, None
        self.transport.write(answer)
        try:
            self.transport.write_eof()
        except (AttributeError, NotImplementedError, OSError, RuntimeError):
            self.transport.close()
            return
        self.loop.call_later(LINGER, self.transport.close)

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()
            return
        super().eof_received()


def _watch_heads(loop: asyncio.AbstractEventLoop, state: Any) -> None:
    """Make sure a sweep runs every HEAD_TIMEOUT / 4 seconds while the server
    (uvicorn's ``ServerState``) has connections: one timer per server, not one
    per request."""
    if getattr(state, "sandhaven_head_sweep", None) is not None:
        return

    def sweep() -> None:
        state.sandhaven_head_sweep = None
        now = loop.time()
        for connection in list(state.connections):
            overdue = getattr(connection, "head_overdue", None)
            if overdue is not None and overdue(now):
                connection.refuse_slow_head()
        if state.connections:
            state.sandhaven_head_sweep = loop.call_later(HEAD_TIMEOUT / 4, sweep)

    state.sandhaven_head_sweep = loop.call_later(HEAD_TIMEOUT / 4, sweep)
