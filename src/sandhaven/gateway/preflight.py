"""CORS preflight answers on the API host.

compat.md: API responses carry ``Access-Control-Allow-Origin: *`` and
``Access-Control-Request-*`` never reaches an app. A browser sends its
preflight ``OPTIONS`` without credentials, so the token check cannot pass it;
this piece answers it before the token check, granting what was asked (the
real request must still carry a valid token; no cookies are involved, so a
wildcard grant gives a page nothing it could not do with the token itself).
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN_LIST = re.compile(rb"[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*")
MAX_AGE = b"3600"


class ApiPreflight:
    """ASGI middleware: ``OPTIONS`` with ``Access-Control-Request-Method`` → 204 with
    the CORS grant; everything else goes to ``app``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return
        method = headers = None
        for name, value in scope["headers"]:
            if name == b"access-control-request-method":
                method = value.strip()
            elif name == b"access-control-request-headers":
                headers = value.strip()
        if method is None:
            await self.app(scope, receive, send)
            return
        out = [
            (b"access-control-allow-origin", b"*"),
            (b"access-control-max-age", MAX_AGE),
            (b"vary", b"Authorization"),
            (b"content-length", b"0"),
        ]
        if _TOKEN_LIST.fullmatch(method):
            out.append((b"access-control-allow-methods", method))
        if headers and _TOKEN_LIST.fullmatch(headers):
            out.append((b"access-control-allow-headers", headers))
        await send({"type": "http.response.start", "status": 204, "headers": out})
        await send({"type": "http.response.body", "body": b""})
