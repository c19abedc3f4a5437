"""A sealed server: in passphrase mode, the only thing served until unsealed.

Until an admin enters the passphrase (the form at ``/unseal``, or ``sandhaven
unseal`` posting JSON there), the store is not even mounted: every request gets
503 and the unseal form; WebSockets are refused. A right passphrase opens the
KEK, mounts the private area, builds the real server and runs its lifespan; from
then on every request goes to it. A wrong one gets 403 "Wrong passphrase.";
attempts run one at a time, each costing an Argon2id derivation (64 MiB).
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandhaven.encryption.kek import Kek, read_key_file
from sandhaven.errors import EncryptionError

log = structlog.get_logger("sandhaven.encryption")
MAX_BODY = 4096

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sealed · Sandhaven</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>This Sandhaven server is sealed</h1>
<p>Its data is encrypted. An admin must enter the passphrase to open it.</p>
{message}
<form method="post" action="/unseal">
<label>Passphrase <input type="password" name="passphrase" autocomplete="current-password"
 required autofocus></label> <button type="submit">Unseal</button></form>
</main></body></html>
"""


class SealedApp:
    """The ASGI app of a passphrase-mode server. ``open_server(kek)`` (blocking; run
    in a thread) mounts the storage and returns the real app, whose lifespan this
    app then drives."""

    def __init__(self, key_file: Path, open_server: Callable[[Kek], ASGIApp]) -> None:
        self.key_file = key_file
        self.open_server = open_server
        self.inner: ASGIApp | None = None
        self.startup_error: BaseException | None = None
        self._lock: asyncio.Lock | None = None
        self._inner_lifespan: tuple[asyncio.Queue[Message], asyncio.Queue[Message],
                                    asyncio.Task[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif self.inner is not None:
            await self.inner(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})
        elif scope["path"] == "/unseal" and scope["method"] == "POST":
            await self._unseal(scope, receive, send)
        else:
            await _answer(send, 503, scope, "The server is sealed: an admin must enter the "
                          "passphrase at /unseal.")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._inner_lifespan is not None:
                    inbox, outbox, task = self._inner_lifespan
                    await inbox.put({"type": "lifespan.shutdown"})
                    await outbox.get()
                    await task
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _unseal(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _same_site(scope):
            await _answer(send, 403, scope, "Cross-site request refused.")
            return
        passphrase = await _read_passphrase(scope, receive)
        if passphrase is None:
            await _answer(send, 400, scope, "Send the passphrase (form field or JSON "
                          "'passphrase').")
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.inner is None:
                try:
                    kek = await asyncio.to_thread(read_key_file, self.key_file, passphrase)
                except EncryptionError as exc:
                    log.warning("unseal_refused", reason=str(exc))
                    await _answer(send, 403, scope, str(exc))
                    return
                try:
                    app = await asyncio.to_thread(self.open_server, kek)
                    await self._start(app)
                except Exception as exc:
                    self.startup_error = exc
                    log.error("unseal_failed", error=str(exc))
                    await _answer(send, 500, scope, f"Unsealed, but the server cannot "
                                  f"start: {exc}")
                    return
                self.inner = app
                log.info("unsealed")
        await _answer(send, 200, scope, "Unsealed.", redirect="/")

    async def _start(self, app: ASGIApp) -> None:
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        outbox: asyncio.Queue[Message] = asyncio.Queue()

        async def receive() -> Message:
            return await inbox.get()

        async def send(message: Message) -> None:
            await outbox.put(message)

        task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                        "state": {}}, receive, send))
        await inbox.put({"type": "lifespan.startup"})
        reply = await outbox.get()
        if reply["type"] != "lifespan.startup.complete":
            await task
            raise EncryptionError(str(reply.get("message") or "startup failed"))
        self._inner_lifespan = (inbox, outbox, task)


def _same_site(scope: Scope) -> bool:
    """False for a request whose ``Origin`` names another host than the one it was
    sent to (a page elsewhere posting passphrase guesses); no Origin (the command
    line) and ``Origin: null`` pass, as on the shell's forms."""
    headers = dict(scope.get("headers") or [])
    origin = headers.get(b"origin", b"").decode("latin-1")
    if not origin or origin == "null":
        return True
    host = headers.get(b"host", b"").decode("latin-1")
    return urlsplit(origin).netloc == host


async def _read_passphrase(scope: Scope, receive: Receive) -> str | None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_BODY:
            return None
        if not message.get("more_body"):
            break
    kind = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip()
    try:
        if kind == b"application/json":
            value: Any = json.loads(body).get("passphrase")
        else:
            value = parse_qs(body.decode(), max_num_fields=4).get("passphrase", [None])[0]
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) and value else None


async def _answer(send: Send, status: int, scope: Scope, message: str,
                  redirect: str | None = None) -> None:
    """JSON for ``sandhaven unseal`` (it asks for JSON), else the unseal page (or a
    redirect to the shell once unsealed)."""
    accept = dict(scope["headers"]).get(b"accept", b"")
    headers = [(b"cache-control", b"no-store")]
    if b"application/json" in accept or dict(scope["headers"]).get(
            b"content-type", b"").startswith(b"application/json"):
        body = json.dumps({"message": message}).encode()
        headers.append((b"content-type", b"application/json"))
    elif redirect and status == 200:
        status, body = 303, b""
        headers.append((b"location", redirect.encode()))
    else:
        note = f'<p role="alert">{html.escape(message)}</p>' if status != 503 else ""
        body = PAGE.format(message=note).encode()
        headers.append((b"content-type", b"text/html; charset=utf-8"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
