"""Pooled keep-alive HTTP/1.1 connections to grains' Unix sockets.

The client library is aiohttp (``UnixConnector``), chosen by measurement
(``bench/upstream_clients.py``, trivial uvicorn app on a Unix socket, this
2-core machine):

=========  ==========  =============  ===================
client     sequential  64 concurrent  256 MiB download
=========  ==========  =============  ===================
aiohttp    9.6 k/s     13.7 k/s       1.7 GB/s
httpx uds  1.9 k/s     0.8 k/s        2.0 GB/s
h11        7.8 k/s     17.4 k/s       0.5 GB/s
=========  ==========  =============  ===================

httpx collapses under concurrency (its pool serialises on a lock), h11 over
asyncio streams is pure Python and slow on bodies; aiohttp parses with C,
pools per connector, applies read back-pressure (its buffer pauses the socket
past a high-water mark, so a slow browser slows the grain instead of filling
memory), and brings a WebSocket client for the same socket.

One :class:`aiohttp.ClientSession` per socket path keeps that grain's
connections alive between requests (field-notes.md: a new connection through
a relay costs 5–10× a kept-alive one).
"""

from __future__ import annotations

import aiohttp

# No total or read timeout: server-sent events and long downloads may be idle
# for a long time. Connecting to a Unix socket is immediate or fails; waiting
# for response headers is bounded by the proxy itself (``header_timeout``).
_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=None)


class UpstreamPool:
    """Keep-alive connection pools, one per grain socket path.

    ``limit_per_socket`` caps simultaneous connections to one grain (0 = no cap).
    Call :meth:`forget` when a grain stops (its pooled connections are dead) and
    :meth:`aclose` at shutdown. Sessions are created lazily inside the running
    event loop.
    """

    def __init__(self, *, limit_per_socket: int = 256, keepalive_timeout: float = 30.0) -> None:
        self.limit = limit_per_socket
        self.keepalive_timeout = keepalive_timeout
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, socket_path: str) -> aiohttp.ClientSession:
        """The pooled client session for ``socket_path`` (created on first use)."""
        session = self._sessions.get(socket_path)
        if session is None or session.closed:
            connector = aiohttp.UnixConnector(
                path=socket_path, limit=self.limit, limit_per_host=0,
                keepalive_timeout=self.keepalive_timeout,
            )
            session = aiohttp.ClientSession(
                connector=connector, timeout=_TIMEOUT,
                # The proxy relays bodies as they are: no decompression, no
                # cookie jar, no default headers the browser did not send.
                auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                read_bufsize=2**18, max_line_size=16384, max_field_size=16384,
            )
            self._sessions[socket_path] = session
        return session

    async def forget(self, socket_path: str) -> None:
        """Close and drop the pool of ``socket_path`` (after its grain stopped)."""
        session = self._sessions.pop(socket_path, None)
        if session is not None:
            await session.close()

    async def aclose(self) -> None:
        """Close every pool; the proxy must not be used afterwards."""
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()
