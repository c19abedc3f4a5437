"""Security headers on every shell response.

The shell is never framed (``frame-ancestors 'none'``, ``X-Frame-Options: DENY``),
so a grain cannot clickjack its buttons; it runs only its own scripts and styles;
it frames only session hosts under the wildcard; and it sends no referrer, since
shell URLs may carry setup or invitation tokens.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def shell_csp(base_url: str, wildcard_host: str) -> str:
    """The shell's Content-Security-Policy for a base URL and wildcard host."""
    scheme = base_url.split("://", 1)[0]
    frames = f"{scheme}://{wildcard_host}"
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: https:",
        f"frame-src {frames}",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
    ])


class ShellSecurityHeaders:
    def __init__(self, app: ASGIApp, *, base_url: str, wildcard_host: str) -> None:
        self.app = app
        self.headers = [
            ("Content-Security-Policy", shell_csp(base_url, wildcard_host)),
            ("X-Frame-Options", "DENY"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
        ]
        if base_url.startswith("https://"):
            self.headers.append(("Strict-Transport-Security", "max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers:
                    if name == "Content-Security-Policy" and name in headers:
                        # A route's own, stricter policy (package icons: sandbox) stays;
                        # browsers enforce every policy sent, so both apply.
                        headers.append(name, value)
                    else:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HeadAsGet:
    """Answer HEAD like GET without the body (RFC 9110 §9.3.2), for every shell page."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def no_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body"):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, no_body)
