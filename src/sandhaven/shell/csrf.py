"""CSRF protection for every state-changing request to the shell host.

Double-submit token: a random ``sandhaven_csrf`` cookie (SameSite=Strict,
HttpOnly) whose value every form carries as the ``csrf_token`` field, and
every script as the ``X-CSRF-Token`` header. A cross-site page can neither read
the cookie nor set the header, so it cannot forge either. Additionally, a
non-GET request whose ``Origin`` names another site is refused outright.

Requests authenticated with ``Authorization: Bearer`` carry no ambient
authority and are exempt. For ``application/x-www-form-urlencoded`` bodies the
middleware reads the (size-limited) body, checks the field and replays the body
to the app; multipart uploads must send the token in the header or as the
``csrf_token`` query parameter, so that large uploads stay streamed.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandhaven.identity.secrets import same

CSRF_COOKIE = "sandhaven_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def _cookie(headers: Headers, name: str) -> str | None:
    from http.cookies import SimpleCookie

    raw = headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None


class CSRFMiddleware:
    """Refuses unsafe requests without a matching token with 403, before the app runs.

    ``reject(scope, receive, send, reason)`` renders the refusal (an HTML page
    or JSON, chosen by the shell). ``allowed_origin`` is the shell's origin.
    """

    def __init__(self, app: ASGIApp, *, allowed_origin: str, reject: ASGIApp | None = None,
                 session_cookie: str = "sandhaven_session", api_prefix: str = "/api/") -> None:
        self.app = app
        self.allowed_origin = allowed_origin.rstrip("/")
        self.reject = reject
        self.session_cookie = session_cookie
        self.api_prefix = api_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin and origin != "null" and origin.rstrip("/") != self.allowed_origin:
            await self._refuse(scope, receive, send, "Cross-site request refused.")
            return
        if headers.get("authorization", "").lower().startswith("bearer "):
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(self.api_prefix) and not _cookie(headers,
                                                                     self.session_cookie):
            # An API call without a login cookie carries no ambient authority to abuse.
            await self.app(scope, receive, send)
            return
        cookie = _cookie(headers, CSRF_COOKIE)
        presented = headers.get(CSRF_HEADER) or QueryParams(scope.get("query_string", b"")
                                                            ).get(CSRF_FIELD)
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        body: bytes | None = None
        if presented is None and ctype == "application/x-www-form-urlencoded":
            body = await _read_body(receive)
            if body is None:
                await self._refuse(scope, receive, send, "Request body is malformed.")
                return
            try:
                fields = parse_qs(body.decode("latin-1"), keep_blank_values=True)
            except ValueError:
                fields = {}
            presented = (fields.get(CSRF_FIELD) or [None])[0]
        if not cookie or not presented or not same(cookie, presented):
            await self._refuse(scope, receive, send,
                               "This form has expired or did not come from this site. "
                               "Reload the page and try again.")
            return
        if body is not None:
            receive = _replay(body)
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, reason: str) -> None:
        scope.setdefault("state", {})["csrf_reason"] = reason
        if self.reject is not None:
            await self.reject(scope, receive, send)
            return
        body = reason.encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
