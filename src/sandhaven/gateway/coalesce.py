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
"""Bytes a request's line and headers may take before the head is complete (nginx
allows 4 × 8 KiB by default; browsers send a few KiB). Past it: 431 and close."""

LINGER = 2.0
"""Seconds a refused connection keeps reading (and dropping) before it closes."""

_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
              b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
              b"content-length: 33\r\n\r\nRequest header fields too large.\n")


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a :class:`CoalescingTransport`, with a bound
    on the size of a request's head (uvicorn's httptools protocol has none: a
    client could stream headers into the server's memory without end)."""

    _in_head = False
    _head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    _refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the rest of a refused request: read and dropped (see below)
        super().data_received(data)
        if self._in_head:
            # Counted after parsing, so a piece that ends the head and carries body
            # bytes is not held against it; what the parser keeps stays bounded
            # by MAX_HEAD plus one read.
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD and not self.transport.is_closing():
                self._refuse_head()

    def _refuse_head(self) -> None:
        """Answer 431 and end the connection. Closing while the client is still
        sending would make the kernel reset the connection, and the client would
        never read the answer; so the answer is followed by a half-close, what
        else arrives is dropped, and the connection closes after LINGER seconds
        (or when the client closes its side)."""
        self._in_head, self._refused = False, True
        self.transport.write(_TOO_LARGE)
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

    def on_message_begin(self) -> None:
        self._in_head, self._head_bytes = True, 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()
