"""The reverse proxy from a session host or the API host to a grain's HTTP server.

:class:`GrainProxy` is one ASGI app per host kind. For each request it asks the
resolver for a :class:`~sandhaven.gateway.target.Target` (nothing reaches a
grain otherwise), rewrites the request headers (:mod:`.request_headers`),
streams the request body to the grain's Unix socket and the response body
back (:mod:`.response_headers` on the way), and relays WebSockets
(:mod:`.websocket`).

Memory stays bounded in both directions: the ASGI server pauses reading the
browser's socket while a request chunk is waiting to be forwarded, the
upstream client (:mod:`.upstream_h1`) awaits the grain socket's drain per
chunk, and on the way back it pauses the grain's socket past 1 MiB buffered
while the ASGI server's ``send`` waits for the browser's socket to drain
(measured: 4 GiB each way grows the gateway's peak RSS by a few MiB).
``Content-Length`` is passed through when the grain sent one; otherwise the
response goes out chunked, each
piece as soon as the grain produced it (server-sent events are not buffered).

Failures never leak detail: the grain unreachable or dying before its response
headers → 502 page; no response headers within ``header_timeout`` seconds of
the last request byte → 504 page; the grain dying mid-body → the browser's
connection is cut (an incomplete body is the only honest signal once the
status line has gone out).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
from yarl import URL

from sandhaven.errors import InvalidInput, RequestError, SandhavenError
from sandhaven.gateway import websocket as ws_relay
from sandhaven.gateway.activity import ActivityHook, NoActivity
from sandhaven.gateway.hosts import SCOPE_KEY, HostClassifier, HostKind, HostMatch, host_header
from sandhaven.gateway.pages import send_page
from sandhaven.gateway.request_headers import request_headers
from sandhaven.gateway.response_headers import (
    api_response_headers,
    session_csp,
    session_response_headers,
)
from sandhaven.gateway.target import Resolver, Target
from sandhaven.gateway.upstream import UpstreamPool
from sandhaven.gateway.upstream_h1 import UpstreamError, UpstreamResponse

# WebSocket errors that mean "the grain is not there or went away".
_UPSTREAM_ERRORS = (aiohttp.ClientError, OSError)


class _BrowserGone(Exception):
    """The browser disconnected while its request body was being forwarded."""


class GrainProxy:
    """ASGI app relaying requests on ``kind`` hosts (SESSION or API) to grains.

    ``resolve(scope)`` is awaited per request and returns a Target, or returns or
    raises a RequestError whose status is answered with a plain page (and, for
    a WebSocket, a refused handshake); a ``headers`` attribute on that error
    (list of ``(bytes, bytes)``) is added to the page, e.g. ``WWW-Authenticate:
    Basic realm="…"`` with a 401 on the API host. Any other SandhavenError
    becomes a page with its 5xx status and no message (the message may hold
    platform detail). ``activity``
    hears about every relayed request and WebSocket. ``header_timeout`` is in
    seconds; ``ws_max_message`` in bytes (the ASGI server's own limit,
    uvicorn's ``ws_max_size``, must be at least as large).
    """

    def __init__(
        self,
        resolve: Resolver,
        *,
        classifier: HostClassifier,
        kind: HostKind,
        pool: UpstreamPool | None = None,
        activity: ActivityHook | None = None,
        header_timeout: float = 300.0,
        ws_max_message: int = 64 * 1024 * 1024,
    ) -> None:
        if kind not in (HostKind.SESSION, HostKind.API):
            raise ValueError(f"GrainProxy serves session or API hosts, not {kind.value}.")
        self.resolve = resolve
        self.classifier = classifier
        self.kind = kind
        self.pool = pool or UpstreamPool()
        self.activity = activity or NoActivity()
        self.header_timeout = header_timeout
        self.ws_max_message = ws_max_message
        self._csp_cache: dict[str, bytes] = {}

    # -- entry -------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind not in ("http", "websocket"):
            return
        match: HostMatch | None = scope.get(SCOPE_KEY)
        if match is None:
            match = self.classifier.classify(host_header(scope))
        if match.kind is not self.kind:
            await self._refuse(scope, send, 404, "There is nothing at this address.")
            return
        try:
            result = await self.resolve(scope)
        except RequestError as exc:
            result = exc
        except SandhavenError as exc:
            # The platform's own failure (grain would not start…): status only.
            await self._refuse(scope, send, exc.status if exc.status >= 500 else 503, None)
            return
        if isinstance(result, RequestError):
            await self._refuse(
                scope, send, result.status, result.message, getattr(result, "headers", None)
            )
            return
        target: Target = result
        base_path = match.origin if self.kind is HostKind.SESSION else None
        try:
            headers = request_headers(
                scope["headers"],
                target.identity,
                base_path=base_path,
                client_ip=(scope.get("client") or ("",))[0] or None,
                websocket=kind == "websocket",
            )
        except InvalidInput as exc:
            await self._refuse(scope, send, 400, exc.message)
            return
        request_target = self._target(scope, target)
        if kind == "http":
            await self._http(scope, receive, send, target, request_target, headers, match)
        else:
            await self._websocket(scope, receive, send, target, request_target, headers)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.pool.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _refuse(
        self,
        scope: dict[str, Any],
        send: Any,
        status: int,
        message: str | None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        if scope["type"] == "http":
            extra = list(headers or ())
            if self.kind is HostKind.API:
                # Browser clients of the API must be able to read a 401/403.
                extra += [(b"access-control-allow-origin", b"*"), (b"vary", b"Authorization")]
            await send_page(send, status, message, extra)
        else:
            await ws_relay.deny(scope, send, status)

    @staticmethod
    def _target(scope: dict[str, Any], target: Target) -> bytes:
        """The request target for the grain: the raw path byte for byte (no
        re-quoting, no dot-segment folding: the grain sees what the browser asked
        for), after the target's path prefix, and the query string."""
        path: bytes = scope.get("raw_path") or scope["path"].encode()
        if target.path_prefix:
            prefix = target.path_prefix.rstrip("/").encode()
            path = prefix + (path if path.startswith(b"/") else b"/" + path)
        query: bytes = scope.get("query_string", b"")
        return path + b"?" + query if query else path

    def _csp(self, origin: str) -> bytes:
        csp = self._csp_cache.get(origin)
        if csp is None:
            if len(self._csp_cache) > 4096:
                self._csp_cache.clear()
            csp = session_csp(origin, self.classifier.shell_origin).encode()
            self._csp_cache[origin] = csp
        return csp

    # -- HTTP --------------------------------------------------------------

    async def _http(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        target: Target,
        request_target: bytes,
        headers: list[tuple[bytes, bytes]],
        match: HostMatch,
    ) -> None:
        chunked = False
        has_body = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                has_body = value.strip() != b"0"
            elif name == b"transfer-encoding":
                has_body = chunked = True
        if chunked:  # framing is the client's job; a Content-Length beside it is void
            headers = [(n, v) for n, v in headers if n != b"content-length"]
        body_state = {"done": not has_body}
        loop = asyncio.get_running_loop()
        deadline: asyncio.Timeout | None = None

        async def body() -> Any:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _BrowserGone()
                chunk = message.get("body", b"")
                if deadline is not None:
                    deadline.reschedule(loop.time() + self.header_timeout)
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    body_state["done"] = True
                    return

        self.activity.request_started(target)
        response: UpstreamResponse | None = None
        watch = _DisconnectWatch(receive, loop, body_state)
        # A grain slow to answer (long polling…) must not outlive the browser's
        # interest; a timer is cheaper than a watching task on every request.
        watch.start_later(_WATCH_AFTER)
        try:
            try:
                if has_body:
                    # Waiting for the head starts after the last body byte: each
                    # chunk pushes the deadline back (see body()).
                    async with asyncio.timeout(self.header_timeout) as deadline:
                        response = await self.pool.http.request(
                            target.socket_path,
                            scope["method"],
                            request_target,
                            headers,
                            body(),
                            chunked=chunked,
                        )
                else:
                    # The head deadline rides on the watch's timer: one timer
                    # handle on the hot path instead of two.
                    watch.head_by(loop.time() + self.header_timeout)
                    try:
                        response = await self.pool.http.request(
                            target.socket_path, scope["method"], request_target, headers
                        )
                    except asyncio.CancelledError:
                        if watch.expired and watch.owner.uncancel() == 0:  # type: ignore[union-attr]
                            raise TimeoutError from None
                        raise
                    finally:
                        watch.head_arrived()
            except TimeoutError:
                await send_page(send, 504)
                return
            except _BrowserGone:
                return
            except UpstreamError:
                await send_page(send, 502)
                return
            await self._stream_response(send, response, match, watch)
        except asyncio.CancelledError:
            if watch.gone:
                watch.owner.uncancel()  # type: ignore[union-attr]
                return
            raise
        finally:
            watch.stop_timer()
            if watch.task is not None:
                await watch.stop()
            if response is not None:
                response.release()
            self.activity.request_finished(target)

    async def _stream_response(
        self, send: Any, response: UpstreamResponse, match: HostMatch, watch: _DisconnectWatch
    ) -> None:
        if self.kind is HostKind.SESSION:
            out_headers = session_response_headers(response.headers, self._csp(match.origin))
        else:
            out_headers = api_response_headers(response.headers)
        await send(
            {"type": "http.response.start", "status": response.status, "headers": out_headers}
        )
        while True:
            if not response.ready():
                # About to wait on the grain: stop as soon as the browser leaves
                # (the ASGI server drops sends to a closed connection silently,
                # so without this a 4 GiB download or an event stream would go on).
                watch.start()
            try:
                chunk = await response.read()
            except UpstreamError:
                # The grain died mid-body: cut the browser's connection by
                # returning without completing the response.
                return
            if response.at_eof():
                await send({"type": "http.response.body", "body": chunk, "more_body": False})
                return
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

    # -- WebSocket ---------------------------------------------------------

    async def _websocket(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        target: Target,
        request_target: bytes,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        session = self.pool.websocket_session(target.socket_path)
        url = URL("http://grain" + request_target.decode("latin-1"), encoded=True)
        str_headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]
        try:
            async with asyncio.timeout(self.header_timeout):
                ws = await session.ws_connect(
                    url,
                    headers=str_headers,
                    protocols=tuple(scope.get("subprotocols") or ()),
                    autoping=True,
                    autoclose=True,
                    max_msg_size=self.ws_max_message,
                    compress=0,
                )
        except TimeoutError:
            await ws_relay.deny(scope, send, 504)
            return
        except aiohttp.WSServerHandshakeError as exc:
            await ws_relay.deny(scope, send, exc.status if 400 <= exc.status < 500 else 502)
            return
        except _UPSTREAM_ERRORS:
            await ws_relay.deny(scope, send, 502)
            return
        self.activity.stream_opened(target)
        try:
            await send({"type": "websocket.accept", "subprotocol": ws.protocol})
            await ws_relay.relay(ws, receive, send, target.watch,
                                 target.identity.permissions)
        finally:
            if not ws.closed:
                await ws.close()
            self.activity.stream_closed(target)


_WATCH_AFTER = 1.0
"""Seconds a request may wait on its grain before the browser's connection is watched."""


class _DisconnectWatch:
    """Cancels the request's task when the browser disconnects while the proxy
    waits on the grain. Watching means a task blocked in ``receive()``, so it
    starts only when needed (after :data:`_WATCH_AFTER` seconds without a
    response head, or when the body stalls) and only once the request body
    has been read (``receive`` then has nothing else to deliver).

    It also keeps the deadline for the response head of a bodiless request
    (:meth:`head_by`): past it the task is cancelled with ``expired`` set. That
    deadline is armed only when the watch's own timer fires (or at once when it
    is nearer than that timer), so a request answered within
    :data:`_WATCH_AFTER` costs one timer handle."""

    __slots__ = ("receive", "loop", "body_state", "owner", "task", "timer", "gone",
                 "deadline", "deadline_timer", "expired")

    def __init__(
        self, receive: Any, loop: asyncio.AbstractEventLoop, body_state: dict[str, bool]
    ) -> None:
        self.receive = receive
        self.loop = loop
        self.body_state = body_state
        self.owner = asyncio.current_task()
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.gone = False
        self.deadline: float | None = None
        self.deadline_timer: asyncio.TimerHandle | None = None
        self.expired = False

    def start_later(self, delay: float) -> None:
        self.timer = self.loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        self._arm_deadline()
        if self.body_state["done"]:
            self.start()
        else:  # still uploading: the body reader sees a disconnect by itself
            self.start_later(_WATCH_AFTER)

    def head_by(self, deadline: float) -> None:
        """Cancel the owner (``expired`` set) unless :meth:`head_arrived` is called
        before ``deadline`` (the loop's clock, seconds)."""
        self.deadline = deadline
        if self.timer is None or deadline - self.loop.time() < _WATCH_AFTER:
            self._arm_deadline()

    def head_arrived(self) -> None:
        self.deadline = None
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
            self.deadline_timer = None

    def _arm_deadline(self) -> None:
        if self.deadline is not None and self.deadline_timer is None:
            self.deadline_timer = self.loop.call_at(self.deadline, self._expire)

    def _expire(self) -> None:
        self.deadline_timer = None
        if self.deadline is not None and self.owner is not None:
            self.expired = True
            self.owner.cancel()

    def start(self) -> None:
        if self.task is None and self.body_state["done"]:
            self.task = asyncio.ensure_future(_until_disconnect(self.receive))
            self.task.add_done_callback(self._on_disconnect)

    def _on_disconnect(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is None and self.owner is not None:
            self.gone = True
            self.owner.cancel()

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.head_arrived()

    async def stop(self) -> None:
        self.stop_timer()
        task = self.task
        if task is not None and not task.done():
            task.remove_done_callback(self._on_disconnect)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _until_disconnect(receive: Any) -> None:
    """Return when the browser disconnects (its request body is already consumed)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
