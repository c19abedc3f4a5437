"""Sharing links that expire: what an expiry may be, in the API and the share
dialog; bad input is refused with a clear message and makes nothing. (Expiry
taking effect on sessions, API tokens and WebSockets: tests/gateway/test_sharing.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sandhaven.errors import InvalidInput
from sandhaven.grains.expiry import MAX_DAYS, describe, parse_expiry
from sandhaven.store import utcnow
from tests.conftest import form_post, login_as

NOW = datetime(2026, 11, 30, 12, 0)


def test_parse_expiry():
    assert parse_expiry(NOW) is None
    assert parse_expiry(NOW, expires_in_days=7) == NOW + timedelta(days=7)
    assert parse_expiry(NOW, "2026-12-01T18:30:00Z") == datetime(2026, 12, 1, 18, 30)
    assert parse_expiry(NOW, "2026-12-01T18:30:00+02:00") == datetime(2026, 12, 1, 16, 30)
    assert parse_expiry(NOW, "2026-12-01T18:30") == datetime(2026, 12, 1, 18, 30)  # UTC
    assert describe(datetime(2026, 12, 1, 18, 30, 5)) == "2026-12-01 18:30 UTC"


@pytest.mark.parametrize(("expires", "days", "said"), [
    ("2026-11-30T11:59:59Z", None, "already passed"),
    ("2026-11-30T12:00:00Z", None, "already passed"),
    ("tomorrow", None, "not an ISO 8601 time"),
    ("2026-12-01", 3, "not both"),
    (None, 0, "from 1 to 3650"),
    (None, -1, "from 1 to 3650"),
    (None, MAX_DAYS + 1, "from 1 to 3650"),
    ("2046-12-01T00:00:00Z", None, "at most 3650 days"),
])
def test_bad_expiries_are_refused(expires, days, said):
    with pytest.raises(InvalidInput, match=said):
        parse_expiry(NOW, expires, days)


def _grain(gs) -> str:  # type: ignore[no-untyped-def]
    login_as(gs.client, gs.services, "ann@example.org", "Ann")
    return gs.services.grains.create(
        gs.services.identity.users.find_by_email("ann@example.org").id, gs.app_id, 0, "N").id


def test_api_expiry_and_bad_input(grain_server):
    gs = grain_server
    from tests.conftest import bearer

    bearer(gs.client, gs.services, "ann@example.org", "Ann")
    gid = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()["id"]
    url = f"/api/v1/grains/{gid}/shares"
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for body, status, said in (
        ({"role": 1, "expires": past}, 400, "already passed"),
        ({"role": 1, "expires": "next week"}, 400, "ISO 8601"),
        ({"role": 1, "expires_in_days": 0}, 400, "from 1 to 3650"),
        ({"role": 1, "expires_in_days": "7"}, 422, None),
        ({"role": 1, "expires_in_days": 7, "expires": "2030-01-01T00:00:00Z"}, 400,
         "not both"),
        ({"role": 1, "email": "bob@example.org", "expires_in_days": 7}, 400,
         "not to invitations"),
        ({"role": 9, "expires_in_days": 7}, 400, "role"),
    ):
        answer = gs.client.post(url, json=body)
        assert answer.status_code == status, (body, answer.text)
        if said:
            message = answer.json()["error"]["message"]
            assert said in message and "\n" not in message, message
    assert gs.client.get(f"/api/v1/grains/{gid}/access").json() == []

    week = gs.client.post(url, json={"role": 1, "label": "week", "expires_in_days": 7})
    assert week.status_code == 201
    at = datetime.fromisoformat(week.json()["expires_at"].removesuffix("Z"))
    assert abs(at - (utcnow() + timedelta(days=7))) < timedelta(minutes=1)
    exact = gs.client.post(url, json={"role": 1, "expires": "2030-01-02T03:04:05+01:00"})
    assert exact.json()["expires_at"] == "2030-01-02T02:04:05Z"
    listed = gs.client.get(f"/api/v1/grains/{gid}/access").json()
    assert [(a["expires_at"], a["expired"]) for a in listed] == [
        (week.json()["expires_at"], False), ("2030-01-02T02:04:05Z", False)]


def test_share_dialog_sets_an_expiry_and_shows_it(grain_server):
    gs = grain_server
    gid = _grain(gs)
    owner = gs.client
    page = owner.get(f"/grains/{gid}").text
    for option in ('value="" selected>never', 'value="1">in 1 day', 'value="7">in 7 days',
                   'value="30">in 30 days', 'value="date"'):
        assert option in page
    assert 'name="expires_on" type="date"' in page

    week = form_post(owner, f"/grains/{gid}", f"/grains/{gid}/shares",
                     {"role": "1", "label": "week", "expires": "7"})
    assert week.status_code == 200 and "/shared/" in week.text
    on = (utcnow() + timedelta(days=3)).date()
    dated = form_post(owner, f"/grains/{gid}", f"/grains/{gid}/shares",
                      {"role": "1", "label": "dated", "expires": "date",
                       "expires_on": on.isoformat()})
    assert dated.status_code == 200
    never = form_post(owner, f"/grains/{gid}", f"/grains/{gid}/shares",
                      {"role": "1", "label": "never", "expires": ""})
    assert never.status_code == 200
    owner_id = gs.services.identity.users.find_by_email("ann@example.org").id
    made = {v.label: v.expires_at for v in gs.services.shares.list_access(owner_id, gid)}
    assert made["never"] is None
    assert made["dated"] == datetime.combine(on + timedelta(days=1), datetime.min.time())
    assert abs(made["week"] - (utcnow() + timedelta(days=7))) < timedelta(minutes=1)
    table = owner.get(f"/grains/{gid}").text.split('aria-label="Who has access"', 1)[1]
    assert f'{made["dated"].strftime("%Y-%m-%d %H:%M")} UTC' in table
    assert "never</td>" in table

    yesterday = (utcnow() - timedelta(days=1)).date().isoformat()
    for form, said in (
        ({"expires": "date", "expires_on": yesterday}, "already passed"),
        ({"expires": "date", "expires_on": "31.12.2030"}, "choose a date"),
        ({"expires": "date", "expires_on": ""}, "choose a date"),
        ({"expires": "fortnight"}, "choose one from the list"),
        ({"expires": "99999"}, "from 1 to 3650"),
    ):
        answer = form_post(owner, f"/grains/{gid}", f"/grains/{gid}/shares",
                           {"role": "1", "label": "bad", **form})
        assert answer.status_code == 400 and said in answer.text, (form, answer.text[-600:])
        assert 'class="share" open' in answer.text.replace("  ", " ")
    assert "bad" not in {v.label for v in gs.services.shares.list_access(owner_id, gid)}


def test_links_that_expired_while_the_server_was_stopped_end_their_credentials(grain_server):
    """At start the server acts on every link that expired meanwhile: the people who
    held the grain only through it lose their grain tokens for good."""
    from sandhaven.grains.shares import Shares
    from sandhaven.store.models import ApiToken, Share
    from tests.conftest import BASE, bearer

    gs = grain_server
    bearer(gs.client, gs.services, "ann@example.org", "Ann")
    gid = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()["id"]
    link = gs.client.post(f"/api/v1/grains/{gid}/shares",
                          json={"role": 1, "expires_in_days": 30}).json()
    bob = gs.browser()
    bearer(bob, gs.services, "bob@example.org", "Bob")
    assert bob.post(link["url"].removeprefix(BASE)).status_code == 303
    token = bob.post(f"/api/v1/grains/{gid}/api-tokens", json={"role": 1}).json()
    with gs.services.store.session() as s:  # as if it expired a week ago, server down
        s.get(Share, link["id"]).expires_at = utcnow() - timedelta(days=7)
    restarted = Shares(gs.services.store, gs.services.grain_sessions, gs.services.grains)
    assert restarted.end_expired() == 1
    with gs.services.store.read() as s:
        assert s.get(ApiToken, token["id"]).revoked_at is not None
    assert restarted.end_expired() == 0  # acted on once


def run_alarm_until_it_acted_twice(next_expiry, now) -> list[datetime]:  # type: ignore[no-untyped-def]
    """Run an ExpiryAlarm on its own loop until it has acted twice (at start, then at
    an expiry); returns when each act happened (bounded: 10 s)."""
    import asyncio

    from sandhaven.grains.expiry import ExpiryAlarm

    acted: list[datetime] = []
    done = asyncio.Event()

    def expired() -> None:
        acted.append(utcnow())
        if len(acted) == 2:
            loop.call_soon_threadsafe(done.set)

    async def main() -> None:
        alarm = ExpiryAlarm(lambda: next_expiry(acted), expired,
                            lambda wake: (lambda: None), now)
        task = asyncio.create_task(alarm.run())
        await asyncio.wait_for(done.wait(), timeout=10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return acted


def test_the_alarm_acts_at_start_and_at_each_expiry():
    soon = utcnow() + timedelta(seconds=0.3)
    acted = run_alarm_until_it_acted_twice(lambda acted: soon if not acted[1:] else None,
                                           utcnow)
    assert len(acted) == 2 and acted[0] < soon <= acted[1]


def test_the_alarm_acts_when_its_timer_fires_a_hair_before_the_expiry():
    """The loop's timer may fire just before the wall clock reaches the expiry; the
    link must still be acted on, though ``next_expiry`` (which lists only future
    expiries) no longer names it."""
    soon = utcnow() + timedelta(seconds=0.2)
    tricked: list[bool] = []

    def now() -> datetime:
        real = utcnow()
        if real >= soon and not tricked:  # the first reading at the expiry is early
            tricked.append(True)
            return soon - timedelta(milliseconds=1)
        return real

    acted = run_alarm_until_it_acted_twice(lambda acted: soon if soon > utcnow() else None,
                                           now)
    assert tricked and len(acted) == 2 and soon <= acted[1]


@pytest.mark.parametrize("steps", range(6))
def test_the_alarm_stops_when_cancelled_as_it_is_woken(steps):
    """A cancellation arriving as the alarm wakes must still stop it (the server
    waits for it on shutdown); ``steps`` spreads the cancel over the wake-up."""
    import asyncio

    from sandhaven.grains.expiry import ExpiryAlarm

    async def main() -> bool:
        wakes: list = []
        started = asyncio.Event()

        def subscribe(wake):  # type: ignore[no-untyped-def]
            wakes.append(wake)
            return lambda: None

        def expired() -> None:
            loop.call_soon_threadsafe(started.set)

        task = asyncio.create_task(ExpiryAlarm(lambda: None, expired, subscribe,
                                               utcnow).run())
        await started.wait()  # past its first act, now waiting
        for _ in range(20):
            await asyncio.sleep(0)
        wakes[0]()
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        return task.cancelled()

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(main())
    finally:
        loop.close()
