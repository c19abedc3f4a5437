"""Cross-site request refusal on session hosts.

compat.md "Session hosts and cookies": non-GET requests whose ``Origin`` is
another site are refused; ``Origin: null`` is tolerated (some apps send it,
e.g. from sandboxed frames or after redirects). A session host's own pages
send their own origin; the shell's origin is also accepted (the shell may
post to a grain it frames). Requests without ``Origin`` pass: browsers send
it on every cross-site non-GET request, so its absence means a same-origin
request of an old browser or a non-browser client, which holds no cookie of
the user's anyway.
"""

from __future__ import annotations

from typing import Any

from sandhaven.gateway.hosts import SCOPE_KEY, HostClassifier, host_header
from sandhaven.gateway.pages import send_page

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SameOriginOnly:
    """ASGI middleware for session hosts: 403 for an unsafe method with a foreign
    ``Origin``. WebSocket handshakes (always GET) are checked too, since a
    cross-site page could otherwise open a socket carrying the session cookie."""

    def __init__(self, app: Any, *, classifier: HostClassifier) -> None:
        self.app = app
        self.classifier = classifier

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or (
            kind == "http" and scope["method"] in SAFE_METHODS
        ):
            await self.app(scope, receive, send)
            return
        origin = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1").strip().lower()
                break
        if origin is None or origin == "null" or origin == self.classifier.shell_origin:
            await self.app(scope, receive, send)
            return
        match = scope.get(SCOPE_KEY) or self.classifier.classify(host_header(scope))
        if origin == match.origin.lower():
            await self.app(scope, receive, send)
            return
        if kind == "http":
            await send_page(send, 403, "Requests from other sites are not accepted here.")
        else:
            await send({"type": "websocket.close", "code": 1008})
