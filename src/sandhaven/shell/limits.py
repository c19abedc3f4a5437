"""Request body limits: a body past its limit gets 413 and never reaches the app whole.

``Content-Length`` over the limit is refused before reading; a chunked body is
counted as it streams and cut off at the limit. Paths may have their own limit
(package and backup uploads are large, forms are not).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandhaven.errors import PayloadTooLarge


class BodyLimitMiddleware:
    """``limit``: bytes for any path; ``overrides``: ``{path prefix: bytes}``."""

    def __init__(self, app: ASGIApp, *, limit: int, overrides: dict[str, int] | None = None,
                 reject: ASGIApp | None = None) -> None:
        self.app = app
        self.limit = limit
        self.overrides = sorted((overrides or {}).items(), key=lambda kv: -len(kv[0]))
        self.reject = reject

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.overrides:
            if path.startswith(prefix):
                return limit
        return self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        length = Headers(scope=scope).get("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > limit:
                await self._too_large(scope, receive, send, limit)
                return
        seen = 0
        exceeded = False
        started = False
        replaced = False

        async def limited() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")
            return message

        async def guarded_send(message: Message) -> None:
            # Frameworks may turn the error raised while reading into their own 400;
            # whatever the app answers after the limit was hit becomes our 413.
            nonlocal started, replaced
            if message["type"] == "http.response.start" and exceeded and not started:
                replaced = True
                started = True
                await self._too_large(scope, receive, send, limit)
                return
            if replaced:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, guarded_send)
        except PayloadTooLarge:
            if started:
                if replaced:
                    return
                raise
            await self._too_large(scope, receive, send, limit)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        scope.setdefault("state", {})["error"] = PayloadTooLarge(
            f"Request body is larger than the limit of {limit} bytes.")
        if self.reject is not None:
            await self.reject(scope, receive, send)
            return
        body = f"Request body is larger than the limit of {limit} bytes.".encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
