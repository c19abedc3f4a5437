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

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a :class:`CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
