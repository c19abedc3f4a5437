"""The activity hook: how the supervisor learns a grain is busy (for idle shutdown).

DESIGN.md: "an open WebSocket or a response still streaming counts as activity".
The proxy calls :meth:`ActivityHook.request_started` before relaying an HTTP
request and :meth:`~ActivityHook.request_finished` when its response body has
fully gone out or failed; :meth:`~ActivityHook.stream_opened` and
:meth:`~ActivityHook.stream_closed` bracket a relayed WebSocket. Calls come in
pairs, always (``finally``), from the event loop thread; they must be quick and
must not raise.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Protocol

from sandhaven.gateway.target import Target


class ActivityHook(Protocol):
    def request_started(self, target: Target) -> None: ...
    def request_finished(self, target: Target) -> None: ...
    def stream_opened(self, target: Target) -> None: ...
    def stream_closed(self, target: Target) -> None: ...


class NoActivity:
    """Hook that records nothing: the default when no supervisor listens."""

    def request_started(self, target: Target) -> None:
        pass

    def request_finished(self, target: Target) -> None:
        pass

    def stream_opened(self, target: Target) -> None:
        pass

    def stream_closed(self, target: Target) -> None:
        pass


class ActivityCounter:
    """Hook counting in-flight requests and open WebSockets per grain ID, with the
    monotonic time (seconds, ``time.monotonic``) of the last event of each grain.

    A grain is idle when :meth:`busy` is false and ``now - last_seen[grain]`` is
    past the idle time.
    """

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.streams: Counter[str] = Counter()
        self.last_seen: dict[str, float] = {}

    def _touch(self, target: Target) -> None:
        self.last_seen[target.grain_id] = time.monotonic()

    def request_started(self, target: Target) -> None:
        self.requests[target.grain_id] += 1
        self._touch(target)

    def request_finished(self, target: Target) -> None:
        self.requests[target.grain_id] -= 1
        if self.requests[target.grain_id] <= 0:
            del self.requests[target.grain_id]
        self._touch(target)

    def stream_opened(self, target: Target) -> None:
        self.streams[target.grain_id] += 1
        self._touch(target)

    def stream_closed(self, target: Target) -> None:
        self.streams[target.grain_id] -= 1
        if self.streams[target.grain_id] <= 0:
            del self.streams[target.grain_id]
        self._touch(target)

    def busy(self, grain_id: str) -> bool:
        """Whether ``grain_id`` has a request in flight or a WebSocket open."""
        return self.requests[grain_id] > 0 or self.streams[grain_id] > 0
