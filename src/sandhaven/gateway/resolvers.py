"""The resolvers that connect the gateway to grain sessions, API tokens and the
supervisor, and the session host's init path.

:class:`SessionResolver` turns a request on ``ui-<id>.<wildcard>`` into a
:class:`~sandhaven.gateway.target.Target` (or a refusal) by checking the session
cookie; :class:`ApiResolver` does the same on ``api.<wildcard>`` with a bearer
token (or HTTP Basic with the token as password); :class:`SessionInit` answers the
init path that turns the secret in the iframe's first URL into the host's cookie.
A WebSocket's target carries a :class:`~sandhaven.gateway.target.Watch`, so the
relay closes it as soon as its session or token is revoked or its permissions
change.
"""

from __future__ import annotations

import base64
import binascii
from functools import partial
from typing import Any
from urllib.parse import parse_qs, unquote

from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from sandhaven.errors import (
    Forbidden,
    GrainError,
    InvalidInput,
    NotAuthenticated,
    RequestError,
)
from sandhaven.gateway.hosts import SCOPE_KEY
from sandhaven.gateway.pages import send_page
from sandhaven.gateway.target import Identity, Target, Watch
from sandhaven.grains import Grains
from sandhaven.grains.access_log import Client
from sandhaven.grains.sessions import COOKIE_NAME, INIT_PATH, GrainSessions, LiveSession
from sandhaven.grains.tokens import GrainTokens

Scope = dict[str, Any]


class Unavailable(RequestError):
    """The grain cannot run now (crashed and backing off, or failed to start)."""

    status = 503
    code = "grain_unavailable"


def _identity(live: LiveSession) -> Identity:
    if live.user_id is None:
        return Identity.anonymous(session_id=live.public_id, tab_id=live.tab_id,
                                  permissions=live.access.permissions)
    picture = live.picture
    if picture and not all("\x21" <= c <= "\x7e" for c in picture):
        picture = None  # stored before profiles refused it: a header cannot carry it
    return Identity(user_id=live.identity_id, username=live.username,
                    permissions=live.access.permissions, session_id=live.public_id,
                    tab_id=live.tab_id, handle=live.handle, picture=picture,
                    pronouns=live.pronouns)


async def _socket(grains: Grains, grain_id: str) -> str:
    try:
        return str(await grains.ensure_running(grain_id))
    except GrainError as exc:
        # The owner sees the reason in the shell; a request gets a plain sentence.
        raise Unavailable("This grain cannot start right now. Its owner can see why in "
                          "the shell.") from exc


class SessionResolver:
    """Session host → Target: the cookie must belong to this host's live session."""

    def __init__(self, sessions: GrainSessions, grains: Grains) -> None:
        self.sessions = sessions
        self.grains = grains

    async def __call__(self, scope: Scope) -> Target:
        host_id = scope[SCOPE_KEY].label.removeprefix("ui-")
        # Several Cookie headers (HTTP/2 clients may split them) count as one.
        cookies = cookie_parser("; ".join(Headers(scope=scope).getlist("cookie")))
        secret = cookies.get(COOKIE_NAME)
        live = self.sessions.check(host_id, secret)
        watch = None
        if scope["type"] == "websocket":
            assert secret is not None
            watch = Watch(self.sessions.subscribe, partial(self.sessions.recheck, secret))
        return Target(live.grain_id, await _socket(self.grains, live.grain_id),
                      _identity(live), watch=watch)


def _client(scope: Scope) -> Client:
    """The request's address (after trusted proxies) and user agent, for the log."""
    address = scope.get("client")
    return Client(ip=address[0] if address else "",
                  user_agent=Headers(scope=scope).get("user-agent", ""))


def bearer_token(headers: Headers) -> str | None:
    """The token of ``Authorization: Bearer T`` or of HTTP Basic with T as password
    (CalDAV, WebDAV and git clients speak only Basic; compat.md)."""
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


# git and other HTTP Basic clients send credentials only after this challenge.
BASIC_CHALLENGE = [(b"www-authenticate", b'Basic realm="Sandhaven API", charset="UTF-8"')]


def _challenge(message: str) -> NotAuthenticated:
    exc = NotAuthenticated(message)
    exc.headers = BASIC_CHALLENGE  # type: ignore[attr-defined]
    return exc


def _check_path(scope: Scope) -> None:
    """Refuse ``.``/``..`` segments (raw or percent-encoded): the manifest's API path
    is prefixed to every request, and a dot segment could climb out of it in an
    app that normalises paths."""
    raw = scope.get("raw_path") or scope["path"].encode()
    for candidate in (scope["path"], unquote(raw.decode("latin-1"))):
        if any(part in (".", "..") for part in candidate.split("/")):
            raise InvalidInput("Paths with '.' or '..' segments are not allowed here.")


class ApiResolver:
    """API host → Target: a grain API token (webkey) reaches its grain with its role."""

    def __init__(self, tokens: GrainTokens, grains: Grains) -> None:
        self.tokens = tokens
        self.grains = grains

    async def __call__(self, scope: Scope) -> Target:
        token = bearer_token(Headers(scope=scope))
        if token is None:
            raise _challenge("This API needs an API token: Authorization: Bearer <token>, "
                             "or HTTP Basic with the token as password.")
        try:
            live, api_path = self.tokens.check(token, _client(scope))
        except NotAuthenticated as exc:
            raise _challenge(str(exc)) from None
        _check_path(scope)
        watch = None
        if scope["type"] == "websocket":
            watch = Watch(self.tokens.sessions.subscribe, partial(self.tokens.recheck, token))
        return Target(live.grain_id, await _socket(self.grains, live.grain_id),
                      _identity(live), path_prefix=api_path.rstrip("/") if api_path else "",
                      watch=watch)


class SessionInit:
    """Answers ``/_sandhaven/init?session=SECRET&path=/app/path`` on session hosts: sets
    the session cookie for this host only (HttpOnly; Secure under https) and
    redirects to the app path. Works once per session; anything else on the host
    goes to ``app``."""

    def __init__(self, app: Any, sessions: GrainSessions, *, https: bool) -> None:
        self.app = app
        self.sessions = sessions
        self.https = https

    @staticmethod
    def _localhost(scope: Scope) -> bool:
        host = Headers(scope=scope).get("host", "").rsplit(":", 1)[0].lower()
        return host == "localhost" or host.endswith(".localhost")

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != INIT_PATH:
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        secret = (query.get("session") or [""])[0]
        path = (query.get("path") or ["/"])[0]
        if not path.startswith("/") or path.startswith("//") or "\\" in path \
                or any(ord(c) < 32 for c in path):
            path = "/"
        host_id = scope[SCOPE_KEY].label.removeprefix("ui-")
        if not self.sessions.init(host_id, secret):
            await send_page(send, 403, Forbidden("This session link was already used or is "
                                                 "not valid. Open the grain again from the "
                                                 "shell.").message)
            return
        cookie = f"{COOKIE_NAME}={secret}; Path=/; HttpOnly"
        if self.https or self._localhost(scope):
            # The frame's host is another site than the shell's (each *.localhost
            # name is its own site, and so is a session host under a wildcard
            # domain on the public suffix list), so the cookie must be SameSite=None,
            # which needs Secure (browsers treat http://*.localhost as secure), and
            # Partitioned so that browsers blocking third-party cookies keep it for
            # this shell.
            cookie += "; Secure; SameSite=None; Partitioned"
        else:
            cookie += "; SameSite=Lax"
        await send({"type": "http.response.start", "status": 303, "headers": [
            (b"location", path.encode("latin-1", "replace")),
            (b"set-cookie", cookie.encode()),
            (b"cache-control", b"no-store"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-length", b"0"),
        ]})
        await send({"type": "http.response.body", "body": b""})
