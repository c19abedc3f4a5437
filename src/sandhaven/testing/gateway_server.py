"""A gateway with a fixed, fake resolver, served by uvicorn: for tests and benchmarks.

The fake resolver stands in for sessions and tokens: a session-host request is
let through to ``--socket`` as the fixed identity :data:`SESSION_IDENTITY` when
it carries the cookie ``sandhaven_test=granted`` (otherwise 403, and the grain
is never contacted); an API-host request is let through with the anonymous
:data:`API_IDENTITY` and the API path ``/api/`` when it carries
``Authorization: Bearer granted`` (otherwise 401). The shell host answers
``GET /activity`` with the activity counters as JSON.

Run: ``python -m sandhaven.testing.gateway_server --fd N --socket PATH
--base-url http://localhost:6080 --wildcard '*.localhost:6080'``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from typing import Any

from sandhaven.errors import Forbidden, NotAuthenticated, RequestError
from sandhaven.gateway import (
    ActivityCounter,
    ApiPreflight,
    GrainProxy,
    HostClassifier,
    HostKind,
    HostRouter,
    Identity,
    SameOriginOnly,
    Target,
    TrustedForwarded,
    UpstreamPool,
)
from sandhaven.gateway.coalesce import MAX_CONNECTIONS, CoalescingHttpToolsProtocol
from sandhaven.gateway.tuning import tune_gc, tune_malloc

SESSION_IDENTITY = Identity(
    user_id="0ba26e59c64ec75dedbc11679f267a40",
    username="Renée Dupont 李小龍",
    permissions=("edit", "comment"),
    session_id="b2d7c5a1e0f94d3c8a6b",
    tab_id="5f0c1a9e7d3b48a2b6c4e8f0a1b2c3d4",
    handle="renee",
    picture="https://localhost:6080/pictures/renee.png",
    pronouns="female",
)
API_IDENTITY = Identity.anonymous(
    session_id="api-session",
    tab_id="9a8b7c6d5e4f30211203f4e5d6c7b8a9",
    permissions=("read",),
)
GRANT_COOKIE = "sandhaven_test=granted"


class FakeResolver:
    """Grants by a fixed cookie or bearer token; never used outside tests."""

    def __init__(self, socket_path: str, kind: HostKind) -> None:
        self.socket_path = socket_path
        self.kind = kind

    async def __call__(self, scope: dict[str, Any]) -> Target | RequestError:
        headers = scope["headers"]
        if self.kind is HostKind.SESSION:
            cookies = b"; ".join(v for n, v in headers if n == b"cookie").decode("latin-1")
            if GRANT_COOKIE not in [c.strip() for c in cookies.split(";")]:
                return Forbidden("This session is not open in this browser.")
            return Target("grain-1", self.socket_path, SESSION_IDENTITY)
        if (b"authorization", b"Bearer granted") not in headers:
            refusal = NotAuthenticated("A valid API token is required.")
            refusal.headers = [(b"www-authenticate", b'Basic realm="Sandhaven API"')]
            return refusal
        return Target("grain-1", self.socket_path, API_IDENTITY, path_prefix="/api/")


class ShellStub:
    """The shell's place in the router: says hello and shows the activity counters."""

    def __init__(self, activity: ActivityCounter) -> None:
        self.activity = activity

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["path"] == "/activity":
            body = json.dumps(
                {"requests": dict(self.activity.requests), "streams": dict(self.activity.streams)}
            ).encode()
        else:
            body = b"shell\n"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/plain"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def build_app(
    socket_path: str, base_url: str, wildcard: str, trusted_proxies: tuple[str, ...] = ()
) -> Any:
    """The whole gateway stack around the fake resolver."""
    classifier = HostClassifier(base_url, wildcard)
    pool = UpstreamPool()
    activity = ActivityCounter()
    session = SameOriginOnly(
        GrainProxy(
            FakeResolver(socket_path, HostKind.SESSION),
            classifier=classifier,
            kind=HostKind.SESSION,
            pool=pool,
            activity=activity,
        ),
        classifier=classifier,
    )
    api = ApiPreflight(
        GrainProxy(
            FakeResolver(socket_path, HostKind.API),
            classifier=classifier,
            kind=HostKind.API,
            pool=pool,
            activity=activity,
        )
    )
    router = HostRouter(ShellStub(activity), session, api, classifier=classifier)
    return TrustedForwarded(router, trusted_proxies)


def command(listener_fd: int, socket_path: str, port: int, *extra: str) -> list[str]:
    """The command line that serves this stack on an inherited listening socket
    (``listener_fd``, bound to ``port``) in front of the grain at ``socket_path``."""
    return [sys.executable, "-m", "sandhaven.testing.gateway_server", "--fd",
            str(listener_fd), "--socket", socket_path, "--base-url",
            f"http://localhost:{port}", "--wildcard", f"*.localhost:{port}", *extra]


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fd", type=int, required=True, help="inherited listening TCP socket")
    parser.add_argument("--socket", required=True, help="the grain's Unix socket")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--wildcard", required=True)
    parser.add_argument("--trusted-proxy", action="append", default=[])
    parser.add_argument(
        "--uncoalesced",
        action="store_true",
        help="uvicorn's own httptools protocol (to measure the difference)",
    )
    parser.add_argument("--head-timeout", type=float, default=None,
                        help="seconds a request head may take (tests; default: coalesce's)")
    args = parser.parse_args()
    if args.head_timeout is not None:
        from sandhaven.gateway import coalesce

        coalesce.HEAD_TIMEOUT = args.head_timeout
    app = build_app(args.socket, args.base_url, args.wildcard, tuple(args.trusted_proxy))
    # proxy_headers off: TrustedForwarded alone decides about X-Forwarded-*.
    # No server/date headers of uvicorn's own: the grain's pass through.
    config = uvicorn.Config(
        app,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
        http="httptools" if args.uncoalesced else CoalescingHttpToolsProtocol,
        date_header=False,
        ws_max_size=64 << 20,
        limit_concurrency=MAX_CONNECTIONS,
        lifespan="on",
        access_log=False,
    )
    server = uvicorn.Server(config)
    sock = socket.socket(fileno=args.fd)
    tune_gc()
    tune_malloc()
    try:
        import uvloop

        uvloop.run(server.serve(sockets=[sock]))
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        asyncio.run(server.serve(sockets=[sock]))


if __name__ == "__main__":
    main()
