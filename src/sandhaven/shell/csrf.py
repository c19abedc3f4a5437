"""CSRF protection for every state-changing request to the shell host.

Every form carries a token as the ``csrf_token`` field, every script as the
``X-CSRF-Token`` header. For a logged-in browser the token is an HMAC of its
login-session cookie under a server secret, so it is bound to that session and
cannot be planted from elsewhere; for a visitor not logged in it is the value
of a random ``sandhaven_csrf`` cookie (double submit; SameSite=Lax so that
following a link from a mail keeps it). A cross-site page can neither read the
cookie nor compute the HMAC. Additionally, a non-GET request whose ``Origin``
names another site is refused outright.

Requests authenticated with ``Authorization: Bearer`` carry no ambient
authority and are exempt. For ``application/x-www-form-urlencoded`` bodies the
middleware reads the (size-limited) body, checks the field and replays the body
to the app; multipart uploads must send the token in the header or as the
``csrf_token`` query parameter, so that large uploads stay streamed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers, QueryParams
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandhaven.identity.secrets import same

CSRF_COOKIE = "sandhaven_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def session_csrf_token(secret: bytes, session_cookie: str) -> str:
    """The CSRF token of a login session: HMAC-SHA256(secret, cookie), base64url."""
    digest = hmac.new(secret, session_cookie.encode("utf-8", "replace"), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


def expected_token(secret: bytes, cookies: dict[str, str], session_cookie: str) -> str | None:
    """The token a request with these cookies must present, or None if none can match."""
    session = cookies.get(session_cookie)
    if session:
        return session_csrf_token(secret, session)
    return cookies.get(CSRF_COOKIE) or None


def _cookies(headers: Headers) -> dict[str, str]:
    # The same parser Starlette uses for request.cookies, so the check and the
    # login see the same cookies.
    return cookie_parser(headers.get("cookie", ""))


class CSRFMiddleware:
    """Refuses unsafe requests without a matching token with 403, before the app runs.

    ``reject(scope, receive, send, reason)`` renders the refusal (an HTML page
    or JSON, chosen by the shell). ``allowed_origin`` is the shell's origin.
    """

    def __init__(self, app: ASGIApp, *, allowed_origin: str, secret: bytes,
                 reject: ASGIApp | None = None, session_cookie: str = "sandhaven_session",
                 api_prefix: str = "/api/") -> None:
        self.app = app
        self.secret = secret
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
        cookies = _cookies(headers)
        if scope["path"].startswith(self.api_prefix) and not cookies.get(self.session_cookie):
            # An API call without a login cookie carries no ambient authority to abuse.
            await self.app(scope, receive, send)
            return
        expected = expected_token(self.secret, cookies, self.session_cookie)
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
        if not expected or not presented or not same(expected, presented):
            await self._refuse(scope, receive, send,
                               "This form has expired or did not come from this site. "
                               "Reload the page and try again.")
            return
        if body is not None:
            receive = _replay(body, receive)
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


def _replay(body: bytes, upstream: Receive) -> Receive:
    """The body already read, then whatever the connection says next (a real
    disconnect when the client leaves): a streaming response listens for that, and an
    invented disconnect would cut it short."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await upstream()

    return receive


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
