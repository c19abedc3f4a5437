"""Routing by host: one listener serves the shell, session hosts and the API host.

DESIGN.md "A request to a grain": session hosts are ``ui-`` + 32 hex under the
wildcard host (setting ``wildcard_host``, default ``*.localhost:6080``), the API
host is ``api.`` under it, and the shell is the host of ``base_url``. Anything
else gets a plain 404 and reaches nothing.

Hosts are compared lower-cased, with the default port of the public scheme
(``base_url``'s: 80 for http, 443 for https) removed on both sides, so
``ui-….example.org`` and ``ui-….example.org:443`` are the same host under https.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from sandhaven.gateway.pages import refuse

_SESSION_LABEL = re.compile(r"ui-[0-9a-f]{32}")


class HostKind(Enum):
    SHELL = "shell"
    SESSION = "session"
    API = "api"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class HostMatch:
    """The class of a request's host. ``label`` is ``ui-<32 hex>`` for a session host;
    ``origin`` is the public origin of that host (``scheme://host[:port]``), which
    becomes ``X-Sandstorm-Base-Path`` on session hosts."""

    kind: HostKind
    label: str = ""
    origin: str = ""


_CLASSIFIED_MAX = 4096
"""Host header values whose class :meth:`HostClassifier.classify` remembers."""

SCOPE_KEY = "sandhaven.host"
"""Key under which :class:`HostRouter` stores the :class:`HostMatch` in the ASGI scope."""


def _strip_default_port(host: str, scheme: str) -> str:
    default = ":443" if scheme == "https" else ":80"
    return host[: -len(default)] if host.endswith(default) else host


class HostClassifier:
    """Classifies ``Host`` header values against ``base_url`` and ``wildcard_host``.

    ``base_url`` is ``scheme://host[:port]`` (setting ``base_url``);
    ``wildcard_host`` is ``*.suffix[:port]`` (setting ``wildcard_host``). The
    scheme of ``base_url`` is the public scheme of every host.
    """

    def __init__(self, base_url: str, wildcard_host: str) -> None:
        parts = urlsplit(base_url)
        self.scheme = parts.scheme
        self.shell_host = _strip_default_port(parts.netloc.lower(), self.scheme)
        self.shell_origin = f"{self.scheme}://{self.shell_host}"
        if not wildcard_host.startswith("*."):
            raise ValueError(f"Wildcard host {wildcard_host!r} must start with '*.'.")
        self.suffix = _strip_default_port(wildcard_host[1:].lower(), self.scheme)
        self.api_host = "api" + self.suffix
        self._classified: dict[str, HostMatch] = {}

    def session_origin(self, label: str) -> str:
        """The public origin of session host ``label`` (``ui-<32 hex>``)."""
        return f"{self.scheme}://{label}{self.suffix}"

    @property
    def api_origin(self) -> str:
        return f"{self.scheme}://{self.api_host}"

    def classify(self, host: str) -> HostMatch:
        """Classify one ``Host`` header value (``name[:port]``, any case).

        Results are remembered per exact header value of up to 255 characters (a
        browser sends the same ``Host`` with every request of a session); the
        memory holds at most :data:`_CLASSIFIED_MAX` values and starts over when
        full."""
        match = self._classified.get(host)
        if match is None:
            match = self._classify(host)
            if len(host) <= 255:
                if len(self._classified) >= _CLASSIFIED_MAX:
                    self._classified.clear()
                self._classified[host] = match
        return match

    def _classify(self, host: str) -> HostMatch:
        host = _strip_default_port(host.strip().lower(), self.scheme)
        if host == self.shell_host:
            return HostMatch(HostKind.SHELL, origin=self.shell_origin)
        if host == self.api_host:
            return HostMatch(HostKind.API, origin=self.api_origin)
        if host.endswith(self.suffix):
            label = host[: -len(self.suffix)]
            if _SESSION_LABEL.fullmatch(label):
                return HostMatch(HostKind.SESSION, label=label, origin=self.session_origin(label))
        return HostMatch(HostKind.UNKNOWN)


def host_header(scope: dict[str, Any]) -> str:
    """The ``Host`` header of an ASGI scope; ``""`` when absent or repeated (two Host
    headers are how requests get smuggled past one router to another: RFC 9112
    3.2 says to answer 400, here they reach nothing and get the 404)."""
    found = ""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            if found:
                return ""
            found = value.decode("latin-1")
    return found


class HostRouter:
    """ASGI app dispatching on the ``Host`` header to the shell, session or API app.

    Stores the :class:`HostMatch` in ``scope["sandhaven.host"]`` for the app it
    calls. Unknown, missing or repeated hosts get a plain 404 page (a refused
    handshake for WebSockets); lifespan events go to the shell app only.
    """

    def __init__(self, shell: Any, session: Any, api: Any, *, classifier: HostClassifier) -> None:
        self.apps = {HostKind.SHELL: shell, HostKind.SESSION: session, HostKind.API: api}
        self.classifier = classifier

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.apps[HostKind.SHELL](scope, receive, send)
            return
        match = self.classifier.classify(host_header(scope))
        app = self.apps.get(match.kind)
        if app is None:
            await refuse(scope, receive, send, 404, "There is nothing at this address.")
            return
        scope[SCOPE_KEY] = match
        await app(scope, receive, send)
