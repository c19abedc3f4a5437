"""A MariaDB server inside a grain shuts down cleanly on stop: the next start
runs no crash recovery (with bubblewrap's own PID 1 it would, every time)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

from sandhaven.sandbox.spec import Limits, MiB
from sandhaven.sandbox.testing import http_request, python_app_spec, test_config, wait_until
from sandhaven.supervisor import GrainState, Supervisor

MARIADB_APP = Path(__file__).parent / "apps" / "mariadb"


def test_mariadb_in_a_grain_stops_cleanly_and_restarts_without_recovery(root: Path) -> None:
    assert shutil.which("mariadbd", path="/usr/sbin"), (
        "mariadb-server is not installed (scripts/apt-packages-test.txt)"
    )
    limits = Limits(memory_bytes=512 * MiB)
    spec_for = lambda gid: python_app_spec(root, gid, MARIADB_APP, limits=limits)  # noqa: E731
    log = root / "storage" / "db" / "mysql-error.log"

    async def main() -> None:
        async with Supervisor(spec_for, test_config(root, start_timeout=120)) as sup:
            sock = await sup.ensure_running("db")
            for _ in range(5):
                status, _ = await http_request(sock, "/write")
                assert status == 200
            await sup.stop("db")
            assert sup.statistics()["kills"] == 0
            first = log.read_text()
            assert first.rstrip().endswith("Shutdown complete"), first[-500:]

            sock = await sup.ensure_running("db")
            status, body = await http_request(sock, "/count")
            assert (status, json.loads(body)) == (200, {"rows": 5})
            await sup.stop("db")
            second = log.read_text()[len(first) :]
            assert "crash recovery" not in second.lower(), second
            assert second.rstrip().endswith("Shutdown complete")

            # The check means something: killed outright (what a teardown without
            # our init does), the next start does run crash recovery.
            sock = await sup.ensure_running("db")
            assert (await http_request(sock, "/write"))[0] == 200
            sup._cgroups.grain("db").kill_all()  # noqa: SLF001
            await wait_until(lambda: sup.status("db") is GrainState.CRASHED, what="kill")
            await wait_until(
                lambda: time.monotonic() >= sup._grains["db"].retry_at,  # noqa: SLF001
                what="backoff",
            )
            sock = await sup.ensure_running("db")
            third = log.read_text()[len(first) + len(second) :]
            assert "crash recovery" in third.lower(), third[-2000:]
            assert json.loads((await http_request(sock, "/count"))[1]) == {"rows": 6}

    asyncio.run(main())
