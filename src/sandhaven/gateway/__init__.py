"""The gateway: the HTTP front door that routes the shell host, session hosts and
the API host, and relays requests to grains.

Each concern is one small plain-ASGI class (``__init__(app, ...)`` and
``async __call__(scope, receive, send)``):

- :mod:`.hosts` — classify the ``Host`` header (shell, session, API, unknown → 404);
- :mod:`.forwarded` — ``X-Forwarded-*`` honoured only from trusted proxy addresses;
- :mod:`.origin` — cross-site unsafe requests refused on session hosts;
- :mod:`.request_headers` / :mod:`.response_headers` — what may cross the boundary
  in each direction, and the identity and security headers the platform adds;
- :mod:`.upstream` — pooled keep-alive connections to each grain's Unix socket
  (:mod:`.upstream_h1` for plain HTTP, aiohttp for WebSockets);
- :mod:`.proxy` — the streaming reverse proxy, with :mod:`.websocket` for upgrades;
- :mod:`.preflight` — CORS preflight answers on the API host;
- :mod:`.activity` — the hook the supervisor uses to know a grain is busy.

Sessions, tokens and the supervisor plug in through one callable, the
:data:`~sandhaven.gateway.target.Resolver` given to :class:`~.proxy.GrainProxy`.
The whole stack, as ``sandhaven.testing.gateway_server`` builds it::

    classifier = HostClassifier(settings.base_url, settings.wildcard_host)
    pool, activity = UpstreamPool(), supervisor_activity_hook
    session = SameOriginOnly(GrainProxy(resolve_session, classifier=classifier,
                                        kind=HostKind.SESSION, pool=pool, activity=activity),
                             classifier=classifier)
    api = ApiPreflight(GrainProxy(resolve_api_token, classifier=classifier,
                                  kind=HostKind.API, pool=pool, activity=activity))
    app = TrustedForwarded(HostRouter(shell_app, session, api, classifier=classifier),
                           settings.trusted_proxies)
    uvicorn.Config(app, proxy_headers=False, server_header=False, date_header=False,
                   ws_max_size=64 << 20, http=CoalescingHttpToolsProtocol, ...)

``proxy_headers=False`` leaves forwarded-header trust to :class:`TrustedForwarded`;
no server/date headers of uvicorn's own, so the grain's pass through; the
session host's init path (cookie, redirect) is the session layer's, mounted
in front of ``session``; ``await pool.aclose()`` at shutdown and
``await pool.forget(socket_path)`` when a grain stops.
"""

from sandhaven.gateway.activity import ActivityCounter, ActivityHook, NoActivity
from sandhaven.gateway.coalesce import CoalescingHttpToolsProtocol
from sandhaven.gateway.forwarded import TrustedForwarded
from sandhaven.gateway.hosts import HostClassifier, HostKind, HostMatch, HostRouter
from sandhaven.gateway.origin import SameOriginOnly
from sandhaven.gateway.preflight import ApiPreflight
from sandhaven.gateway.proxy import GrainProxy
from sandhaven.gateway.target import Identity, Resolver, Target
from sandhaven.gateway.upstream import UpstreamPool

__all__ = [
    "ActivityCounter",
    "ActivityHook",
    "ApiPreflight",
    "CoalescingHttpToolsProtocol",
    "GrainProxy",
    "HostClassifier",
    "HostKind",
    "HostMatch",
    "HostRouter",
    "Identity",
    "NoActivity",
    "Resolver",
    "SameOriginOnly",
    "Target",
    "TrustedForwarded",
    "UpstreamPool",
]
