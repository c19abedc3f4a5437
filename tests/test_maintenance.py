"""The server's hourly maintenance, run once by hand."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta

from sqlalchemy import func, select

from sandhaven.server import Lifespan
from sandhaven.store import utcnow
from sandhaven.store.models import RateEvent


def test_maintenance_removes_stale_installs_and_old_rate_events(make_shell):
    services, client = make_shell()
    packages = services.packages.packages_dir
    packages.mkdir(parents=True)
    stale, fresh = packages / ".install-old", packages / ".install-new"
    for d in (stale, fresh):
        (d / "tree").mkdir(parents=True)
        (d / "tree" / "f").write_text("x")
    hour_ago = time.time() - 7200
    os.utime(stale, (hour_ago, hour_ago))
    with services.store.session() as s:
        s.add(RateEvent(bucket="login-mail:x", at=utcnow() - timedelta(days=2)))
        s.add(RateEvent(bucket="login-mail:y", at=utcnow()))
    lifespan = client.app
    assert isinstance(lifespan, Lifespan)
    asyncio.run(lifespan.maintain_once())
    assert not stale.exists() and fresh.exists()
    with services.store.read() as s:
        assert s.scalar(select(func.count()).select_from(RateEvent)) == 1
