"""Relaying one WebSocket between the browser (ASGI) and a grain (aiohttp client).

Text and binary messages pass both ways unchanged, up to ``max_message`` bytes
each; close codes and reasons pass both ways. Ping/pong is answered on each
hop: the ASGI server answers the browser's pings and aiohttp answers the
grain's (ASGI exposes no ping frames, so they cannot be forwarded as frames; a
peer's liveness check still works end to end because each hop is alive while
the relay is). The handshake is regenerated: only the subprotocol list and
the allow-listed request headers reach the grain (compat.md: ``Sec-*`` never
passed).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp

from sandhaven.gateway.pages import PAGE_HEADERS, page_body
from sandhaven.gateway.target import Watch

# Codes a peer may send in a close frame (RFC 6455 7.4): 1004-1006 and 1015 are
# reserved for local use and cannot be relayed; they become 1000 or 1011.
_SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def relayable_code(code: int | None, *, abnormal: int = 1000) -> int:
    """A close code that may be put in a close frame; ``abnormal`` replaces the rest."""
    if code is None:
        return abnormal
    if code in _SENDABLE or 3000 <= code <= 4999:
        return code
    return 1000 if code == 1005 else abnormal


async def deny(scope: dict[str, Any], send: Any, status: int) -> None:
    """Refuse a WebSocket handshake: 403 as a plain close (every ASGI server turns
    that into 403); other statuses as a page through the denial-response
    extension when the server has it, else also as a close (403)."""
    if status != 403 and "websocket.http.response" in (scope.get("extensions") or {}):
        body = page_body(status)
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [*PAGE_HEADERS, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


# Sent to the browser when the connection's access was revoked or changed: 1008
# "policy violation"; the app may reconnect and gets the new permissions.
REVOKED_CODE = 1008
REVOKED_REASON = "access changed"


async def relay(ws: aiohttp.ClientWebSocketResponse, receive: Any, send: Any,
                watch: Watch | None = None, permissions: tuple[str, ...] = ()) -> None:
    """Pump messages both ways until one side closes; then close the other side
    with the same code (and reason) where RFC 6455 allows it. With ``watch``, the
    connection is also closed (browser: :data:`REVOKED_CODE`, grain: 1001) as soon
    as a recheck after a revocation or role change finds that the credential
    grants nothing any more or other permissions than ``permissions``."""

    async def browser_to_grain() -> None:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                data = message.get("bytes")
                if data is not None:
                    await ws.send_bytes(data)
                else:
                    await ws.send_str(message.get("text") or "")
            elif kind == "websocket.disconnect":
                reason = (message.get("reason") or "").encode()[:123]
                await ws.close(code=relayable_code(message.get("code")), message=reason)
                return

    async def grain_to_browser() -> None:
        while True:
            message = await ws.receive()
            if message.type is aiohttp.WSMsgType.TEXT:
                await send({"type": "websocket.send", "text": message.data})
            elif message.type is aiohttp.WSMsgType.BINARY:
                await send({"type": "websocket.send", "bytes": message.data})
            else:
                if message.type is aiohttp.WSMsgType.CLOSE:
                    code, reason = relayable_code(message.data), message.extra or ""
                elif message.type is aiohttp.WSMsgType.ERROR:
                    code, reason = 1011, ""
                else:  # CLOSING / CLOSED: the grain went away without a close frame
                    code, reason = relayable_code(ws.close_code, abnormal=1011), ""
                with contextlib.suppress(OSError, RuntimeError):
                    await send({"type": "websocket.close", "code": code, "reason": reason})
                return

    async def until_changed(watch: Watch) -> None:
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def wake() -> None:  # runs in whichever thread revoked
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(changed.set)

        unsubscribe = watch.subscribe(wake)
        try:
            while True:
                await changed.wait()
                changed.clear()
                if watch.current() != permissions:
                    with contextlib.suppress(OSError, RuntimeError):
                        await send({"type": "websocket.close", "code": REVOKED_CODE,
                                    "reason": REVOKED_REASON})
                    await ws.close(code=1001)
                    return
        finally:
            unsubscribe()

    tasks = [asyncio.ensure_future(browser_to_grain()), asyncio.ensure_future(grain_to_browser())]
    if watch is not None:
        tasks.append(asyncio.ensure_future(until_changed(watch)))
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            exc = task.exception()
            # The browser or the grain vanishing mid-send is an ordinary end.
            if exc is not None and not isinstance(
                exc, (OSError, aiohttp.ClientError, RuntimeError)
            ):
                raise exc
    finally:
        for task in tasks:
            task.cancel()
        if not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close(code=1011)
