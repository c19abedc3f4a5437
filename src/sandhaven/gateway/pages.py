"""Plain error pages the gateway answers with itself: a status, one sentence, no detail.

Nothing from the platform's internals (exception text, socket paths, grain IDs)
ever goes into these pages; the threat model treats every visitor as untrusted.
"""

from __future__ import annotations

from html import escape
from typing import Any

Send = Any

TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Forbidden",
    404: "Not found",
    413: "Request too large",
    429: "Too many requests",
    500: "Server error",
    502: "The grain is not responding",
    503: "The grain is not available",
    504: "The grain took too long to answer",
}

# A page the browser may render but never run anything from.
PAGE_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'"),
    (b"referrer-policy", b"same-origin"),
]


def page_body(status: int, message: str | None = None) -> bytes:
    """The HTML of a plain page for ``status``; ``message`` is shown escaped."""
    title = TITLES.get(status, "Error")
    text = escape(message or title)
    return (
        f"<!doctype html><meta charset=utf-8><title>{status} {escape(title)}</title>"
        f"<h1>{status} {escape(title)}</h1><p>{text}</p>\n"
    ).encode()


async def send_page(
    send: Send,
    status: int,
    message: str | None = None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a complete plain page response on an ASGI ``http`` scope."""
    body = page_body(status, message)
    headers = [*PAGE_HEADERS, (b"content-length", str(len(body)).encode()), *(extra_headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def refuse(
    scope: dict[str, Any], receive: Any, send: Send, status: int, message: str | None = None
) -> None:
    """Answer any ASGI scope with ``status``: a page for HTTP, a refused handshake for
    WebSockets (uvicorn turns a close before accept into 403)."""
    if scope["type"] == "http":
        await send_page(send, status, message)
    elif scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
