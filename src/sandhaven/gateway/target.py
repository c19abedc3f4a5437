"""What the gateway needs to know to relay one request: the grain's socket and who asks.

The gateway builds no sessions and checks no tokens itself. Whoever composes the
server gives :class:`~sandhaven.gateway.proxy.GrainProxy` a :data:`Resolver`:
an async callable that looks at the ASGI scope (host, cookies, ``Authorization``),
decides, starts the grain if needed, and returns a :class:`Target`, or returns or
raises a :class:`~sandhaven.errors.RequestError` (403, 401, 404…) that the proxy
turns into a plain page with that status. Nothing reaches a grain unless a
``Target`` came back.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sandhaven.errors import RequestError

_HEX32 = re.compile(r"[0-9a-f]{32}")
# compat.md: "a non-unique handle of [a-z0-9_], not starting with a digit".
_HANDLE = re.compile(r"[a-z_][a-z0-9_]*")
_PERMISSION = re.compile(r"[A-Za-z0-9_.-]+")
SESSION_TYPES = ("normal", "request", "offer")
PRONOUNS = ("male", "female", "robot")


def _single_line(name: str, value: str) -> None:
    if any(c in value for c in "\r\n\x00"):
        raise ValueError(f"Identity field {name!r} has a line break or NUL: {value!r}.")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is making a request, in the shape the identity headers of compat.md need.

    ``user_id`` is the per-grain user ID (32 lowercase hex) or ``None`` for an
    anonymous visitor; ``username`` is the display name in plain Unicode (the
    gateway percent-encodes it); ``permissions`` are permission *names* held in
    this grain; ``tab_id`` is 32 hex; ``pronouns`` is ``None`` when neutral;
    ``api`` names the powerbox API the request came through, if any.

    Raises ValueError when a field breaks the formats compat.md lists, so a bad
    value never turns into a forged header.
    """

    user_id: str | None
    username: str
    permissions: tuple[str, ...]
    session_id: str
    tab_id: str
    session_type: str = "normal"
    handle: str | None = None
    picture: str | None = None
    pronouns: str | None = None
    api: str | None = None

    def __post_init__(self) -> None:
        if self.user_id is not None and not _HEX32.fullmatch(self.user_id):
            raise ValueError(f"Identity user_id {self.user_id!r} is not 32 lowercase hex.")
        if not _HEX32.fullmatch(self.tab_id):
            raise ValueError(f"Identity tab_id {self.tab_id!r} is not 32 lowercase hex.")
        if self.session_type not in SESSION_TYPES:
            raise ValueError(
                f"Identity session_type {self.session_type!r} is not one of "
                f"{', '.join(SESSION_TYPES)}."
            )
        if self.handle is not None and not _HANDLE.fullmatch(self.handle):
            raise ValueError(
                f"Identity handle {self.handle!r} is not [a-z0-9_] starting with a letter or _."
            )
        if self.pronouns is not None and self.pronouns not in PRONOUNS:
            raise ValueError(
                f"Identity pronouns {self.pronouns!r} is not one of "
                f"{', '.join(PRONOUNS)} (None means neutral)."
            )
        for permission in self.permissions:
            if not _PERMISSION.fullmatch(permission):
                raise ValueError(f"Identity permission {permission!r} is not a permission name.")
        for name in ("username", "session_id", "picture", "api"):
            value = getattr(self, name)
            if value is not None:
                _single_line(name, value)
        if self.user_id is None and any((self.handle, self.picture, self.pronouns)):
            raise ValueError(
                "Identity of an anonymous visitor cannot carry a handle, picture or pronouns."
            )

    @classmethod
    def anonymous(
        cls,
        *,
        session_id: str,
        tab_id: str,
        permissions: tuple[str, ...] = (),
        session_type: str = "normal",
    ) -> Identity:
        """An anonymous visitor: no user ID, the username compat.md prescribes."""
        return cls(
            user_id=None,
            username="Anonymous User",
            permissions=permissions,
            session_id=session_id,
            tab_id=tab_id,
            session_type=session_type,
        )


@dataclass(frozen=True, slots=True)
class Watch:
    """How a long-lived connection (a WebSocket) learns that its access changed.

    ``subscribe(callback)`` registers ``callback`` to run, from any thread, after
    any revocation or role change, and returns a function that unregisters it;
    ``current()`` rechecks the connection's credential, uncached, and returns the
    permissions it holds now, or None when it grants nothing any more.
    """

    subscribe: Callable[[Callable[[], None]], Callable[[], None]]
    current: Callable[[], tuple[str, ...] | None]


@dataclass(frozen=True, slots=True)
class Target:
    """Where and as whom to relay one request.

    ``grain_id`` keys the activity hook; ``socket_path`` is the grain's HTTP Unix
    socket; ``path_prefix`` is prepended to the request path (the manifest's API
    path on the API host, e.g. ``/api/``; empty on session hosts). ``watch``, given
    for WebSockets, lets the relay close the connection once its access is revoked
    or its permissions change.
    """

    grain_id: str
    socket_path: str
    identity: Identity
    path_prefix: str = ""
    watch: Watch | None = None

    def __post_init__(self) -> None:
        if self.path_prefix and not self.path_prefix.startswith("/"):
            raise ValueError(f"Target path_prefix {self.path_prefix!r} must start with '/'.")
        _single_line("path_prefix", self.path_prefix)


Scope = dict[str, Any]
Resolver = Callable[[Scope], Awaitable["Target | RequestError"]]
"""``async resolve(scope) -> Target | RequestError``; may also raise RequestError."""
