"""``X-Forwarded-*`` from trusted reverse proxies only (setting ``trusted_proxies``).

Trust model (as in uvicorn's ``proxy_headers`` middleware, whose built-in use
must stay off — run uvicorn with ``proxy_headers=False`` so this class is the
only one deciding): when the TCP peer's address is in ``trusted_proxies``,

- ``X-Forwarded-Proto`` (``http``/``https``) sets ``scope["scheme"]``,
- ``X-Forwarded-For``: the right-most address that is not itself a trusted
  proxy becomes ``scope["client"]`` (entries left of it were written by the
  client and prove nothing),
- ``X-Forwarded-Host`` replaces ``Host``, so routing by host works behind a
  proxy that rewrites it.

From any other peer these headers are removed, so nothing further in the
gateway can mistake them for facts. Empty ``trusted_proxies`` trusts no one.
"""

from __future__ import annotations

import ipaddress
from typing import Any

_FORWARDED = (b"x-forwarded-proto", b"x-forwarded-for", b"x-forwarded-host", b"forwarded")


class TrustedForwarded:
    """ASGI middleware applying ``X-Forwarded-*`` from ``trusted`` peers (addresses or
    networks as in the ``trusted_proxies`` setting); dropping them from others."""

    def __init__(self, app: Any, trusted: tuple[str, ...] | list[str]) -> None:
        self.app = app
        self.networks = tuple(ipaddress.ip_network(t, strict=False) for t in trusted)

    def is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        if not any(name in _FORWARDED for name, _ in headers):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        scope = dict(scope)
        kept = [(n, v) for n, v in headers if n not in _FORWARDED]
        if client and self.networks and self.is_trusted(client[0]):
            found = {n: v.decode("latin-1") for n, v in headers if n in _FORWARDED}
            proto = found.get(b"x-forwarded-proto", "").split(",")[-1].strip().lower()
            if proto in ("http", "https"):
                secure = proto == "https"
                if scope["type"] == "websocket":
                    scope["scheme"] = "wss" if secure else "ws"
                else:
                    scope["scheme"] = proto
            hops = [h.strip() for h in found.get(b"x-forwarded-for", "").split(",") if h.strip()]
            for hop in reversed(hops):
                if not self.is_trusted(hop):
                    scope["client"] = (hop, 0)
                    break
            forwarded_host = found.get(b"x-forwarded-host", "").split(",")[-1].strip()
            if forwarded_host and "\r" not in forwarded_host and "\n" not in forwarded_host:
                kept = [(n, v) for n, v in kept if n != b"host"]
                kept.append((b"host", forwarded_host.encode("latin-1")))
        scope["headers"] = kept
        await self.app(scope, receive, send)
