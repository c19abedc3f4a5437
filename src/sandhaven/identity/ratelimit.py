"""Rate limits kept in the store, so they hold across restarts and CLI processes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from sandhaven.errors import RateLimited
from sandhaven.store import utcnow
from sandhaven.store.models import RateEvent


def hit(session: Session, bucket: str, *, limit: int, window: timedelta, what: str) -> None:
    """Count one event in ``bucket``; raise RateLimited if ``limit`` events already
    happened within ``window``. ``what`` names the action in the message."""
    now = utcnow()
    since = now - window
    count = session.scalar(
        select(func.count()).select_from(RateEvent)
        .where(RateEvent.bucket == bucket, RateEvent.at >= since)
    )
    if (count or 0) >= limit:
        minutes = max(1, int(window.total_seconds() // 60))
        raise RateLimited(f"Too many {what}; try again within {minutes} minutes.")
    session.add(RateEvent(bucket=bucket, at=now))


def prune(session: Session, older_than: timedelta = timedelta(days=1)) -> int:
    """Delete events older than ``older_than``; returns how many."""
    result = session.execute(delete(RateEvent).where(RateEvent.at < utcnow() - older_than))
    return result.rowcount or 0
