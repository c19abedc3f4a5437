"""Connections from the gateway to grains' Unix sockets: one pool set per socket.

Two clients, each where it measured best (``bench/upstream_clients.py`` compares
libraries alone against a trivial uvicorn app on a Unix socket; the gateway as
a whole is measured by ``bench/gateway_bench.py``):

=================  ==========  =============  ===================
client             sequential  64 concurrent  256 MiB download
=================  ==========  =============  ===================
aiohttp            9.6 k/s     13.7 k/s       1.7 GB/s
httpx (uds)        1.9 k/s     0.8 k/s        2.0 GB/s
h11 over streams   7.8 k/s     17.4 k/s       0.5 GB/s
=================  ==========  =============  ===================

- Plain HTTP goes through :class:`~sandhaven.gateway.upstream_h1.H1Client`
  (httptools' C parser, nothing else): as fast as h11 on small requests
  without h11's pure-Python body parsing, and without the per-request weight
  that made aiohttp the gateway's largest cost per small request.
- WebSockets go through aiohttp (``UnixConnector``): a complete, maintained
  client for the upgrade, framing, ping/pong and close handshake. httpx
  collapses under concurrency and has no WebSocket client.

Call :meth:`UpstreamPool.forget` when a grain stops (its pooled connections
are dead) and :meth:`UpstreamPool.aclose` at shutdown.
"""

from __future__ import annotations

import aiohttp

from sandhaven.gateway.upstream_h1 import H1Client

# WebSockets: no total or read timeout (a quiet socket is normal); connecting to
# a Unix socket is immediate or fails.
_WS_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=None)


class UpstreamPool:
    """Pooled HTTP connections (:attr:`http`) and WebSocket client sessions per socket.

    ``max_idle_per_socket`` bounds the kept-alive HTTP connections of one grain;
    ``keepalive_timeout`` (seconds) closes idle ones before the grain would.
    """

    def __init__(self, *, max_idle_per_socket: int = 128, keepalive_timeout: float = 30.0) -> None:
        self.http = H1Client(
            max_idle_per_socket=max_idle_per_socket, keepalive_timeout=keepalive_timeout
        )
        self._ws_sessions: dict[str, aiohttp.ClientSession] = {}

    def websocket_session(self, socket_path: str) -> aiohttp.ClientSession:
        """The aiohttp session for WebSockets to ``socket_path`` (created on first use,
        inside the running event loop)."""
        session = self._ws_sessions.get(socket_path)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=socket_path, limit=0),
                timeout=_WS_TIMEOUT,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            )
            self._ws_sessions[socket_path] = session
        return session

    async def forget(self, socket_path: str) -> None:
        """Drop every pooled connection to ``socket_path`` (after its grain stopped)."""
        await self.http.forget(socket_path)
        session = self._ws_sessions.pop(socket_path, None)
        if session is not None:
            await session.close()

    async def aclose(self) -> None:
        """Close everything; the pool must not be used afterwards."""
        await self.http.aclose()
        sessions, self._ws_sessions = self._ws_sessions, {}
        for session in sessions.values():
            await session.close()
