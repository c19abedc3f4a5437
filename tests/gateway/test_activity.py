"""The activity counter (unit)."""

from __future__ import annotations

from sandhaven.gateway.activity import ActivityCounter
from sandhaven.gateway.target import Identity, Target

TARGET = Target("g1", "/nonexistent.sock", Identity.anonymous(session_id="s", tab_id="ab" * 16))


def test_counts_pairs() -> None:
    counter = ActivityCounter()
    assert not counter.busy("g1")
    counter.request_started(TARGET)
    counter.stream_opened(TARGET)
    assert counter.busy("g1")
    counter.request_finished(TARGET)
    assert counter.busy("g1")
    counter.stream_closed(TARGET)
    assert not counter.busy("g1")
    assert dict(counter.requests) == {} and dict(counter.streams) == {}
    assert "g1" in counter.last_seen
