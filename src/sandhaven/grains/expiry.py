"""Expiry of sharing links: reading the expiry a person asks for, saying when a
link expired, and the alarm that makes an expiry take effect on open WebSockets.

A link's expiry (``shares.expires_at``, naive UTC) is checked with every other
condition of its chain (:func:`~sandhaven.grains.access.chain_permissions`), so
sessions and API tokens derived from it stop at their next check (cached at most
:data:`~sandhaven.grains.sessions.RECHECK_SECONDS`). A WebSocket is not checked
per request: :class:`ExpiryAlarm` wakes when the next link expires and tells every
open connection to recheck, as a revocation does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from sandhaven.errors import InvalidInput

log = structlog.get_logger("sandhaven.grains")

# The furthest ahead an expiry may be set: ten years, well inside datetime's range.
MAX_DAYS = 3650
# The alarm rechecks at least this often (seconds), so a clock change or a missed
# wake-up is corrected within that time.
IDLE_RECHECK = 300.0


def describe(at: datetime) -> str:
    """A naive UTC time as people read it in messages: ``2026-12-01 13:05 UTC``."""
    return at.strftime("%Y-%m-%d %H:%M UTC")


def parse_expiry(now: datetime, expires: str | datetime | None = None,
                 expires_in_days: int | None = None) -> datetime | None:
    """The expiry (naive UTC) that ``expires`` (an ISO 8601 time; without an offset
    it is UTC) or ``expires_in_days`` (whole days from ``now``) asks for; None when
    neither is given (the link never expires). Raises InvalidInput when both are
    given, the time is not ISO 8601, lies in the past, or more than
    :data:`MAX_DAYS` days ahead."""
    if expires is not None and expires_in_days is not None:
        raise InvalidInput("Give 'expires' or 'expires_in_days', not both.")
    if expires_in_days is not None:
        if isinstance(expires_in_days, bool) or not 1 <= expires_in_days <= MAX_DAYS:
            raise InvalidInput(f"Field 'expires_in_days' has value {expires_in_days!r}: "
                               f"a whole number of days from 1 to {MAX_DAYS}.")
        return now + timedelta(days=expires_in_days)
    if expires is None:
        return None
    if isinstance(expires, str):
        try:
            at = datetime.fromisoformat(expires.strip())
        except ValueError:
            raise InvalidInput(f"Field 'expires' has value {expires[:40]!r}: not an ISO 8601 "
                               "time such as 2026-12-31T18:00:00Z.") from None
    else:
        at = expires
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    if at <= now:
        raise InvalidInput(f"Field 'expires' is {describe(at)}, which has already passed.")
    if at > now + timedelta(days=MAX_DAYS):
        raise InvalidInput(f"Field 'expires' is {describe(at)}: at most {MAX_DAYS} days "
                           "ahead.")
    return at


class ExpiryAlarm:
    """Runs ``expired`` once at start and then each time a sharing link expires
    (it clears the access caches and tells open WebSockets to recheck). ``next_expiry()``
    gives the earliest future expiry (naive UTC) or None; ``subscribe`` registers a
    wake-up that any thread may call when expiries may have changed (a new link).
    Run :meth:`run` as a task; cancel it to stop."""

    def __init__(self, next_expiry: Callable[[], datetime | None],
                 expired: Callable[[], object],
                 subscribe: Callable[[Callable[[], None]], Callable[[], None]],
                 now: Callable[[], datetime]) -> None:
        self.next_expiry = next_expiry
        self.expired = expired
        self.subscribe = subscribe
        self.now = now

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def wake() -> None:  # from whichever thread changed access
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(woken.set)

        async def act() -> None:
            try:
                await asyncio.to_thread(self.expired)
            except Exception:  # the store is busy or gone: the next expiry retries
                log.exception("expiry_alarm_failed")

        unsubscribe = self.subscribe(wake)
        try:
            await act()  # expiries that passed while the server was stopped
            while True:
                woken.clear()
                try:
                    at = await asyncio.to_thread(self.next_expiry)
                except Exception:  # the store is busy or gone: try again later
                    log.exception("expiry_alarm_failed")
                    at = None
                wait = IDLE_RECHECK
                if at is not None:
                    wait = min(wait, max(0.0, (at - self.now()).total_seconds()))
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow
                # a cancellation that arrives as the wake-up does, and the server's
                # shutdown would then wait for the next recheck.
                try:
                    async with asyncio.timeout(wait):
                        await woken.wait()
                except TimeoutError:
                    if at is not None:
                        # The loop's timer can fire a little before the wall clock
                        # reaches ``at`` (it counts in milliseconds, on another
                        # clock); ``next_expiry`` would then skip this link as no
                        # longer in the future. Wait out the rest and act.
                        remaining = (at - self.now()).total_seconds()
                        while remaining > 0:
                            await asyncio.sleep(remaining + 0.001)
                            remaining = (at - self.now()).total_seconds()
                        await act()
        finally:
            unsubscribe()
