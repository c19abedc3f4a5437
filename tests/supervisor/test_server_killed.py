"""A server killed with SIGKILL takes its grains with it and leaves nothing that
blocks the next start: stale sockets, socket directories and cgroups are cleaned."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from sandhaven.sandbox.testing import http_request, pid_alive, python_app_spec, test_config
from sandhaven.supervisor import GrainState, Supervisor

SQLITE = Path(__file__).parent / "apps" / "sqlite"
SERVER = Path(__file__).parent / "serve_one_grain.py"


def test_sigkilled_server_then_clean_start(root: Path) -> None:
    config = test_config(root)
    server = subprocess.Popen(
        [sys.executable, str(SERVER), str(root), "db", str(SQLITE), config.cgroup_parent],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        assert line, "the server printed nothing"
        first = json.loads(line)
        sock = Path(first["socket"])
        status, _ = asyncio.run(http_request(sock, "/"))
        assert status == 200
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
        server.stdout.close()  # type: ignore[union-attr]

    async def after() -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while any(pid_alive(p) for p in first["pids"]):
            assert loop.time() < deadline, "grain processes outlived the killed server"
            await asyncio.sleep(0.01)
        assert sock.parent.exists()  # a stale socket directory is left behind
        async with Supervisor(lambda gid: python_app_spec(root, gid, SQLITE), config) as sup:
            assert not sock.parent.exists()  # cleaned at start
            assert sup._cgroups.leftovers() == []  # noqa: SLF001 - stale cgroup removed
            new_sock = await sup.ensure_running("db")
            assert sup.status("db") is GrainState.RUNNING
            assert (await http_request(new_sock, "/"))[0] == 200
            await sup.stop("db")

    asyncio.run(after())
    storage = root / "storage" / "db"
    assert (storage / "clean-shutdown").exists()
    db = sqlite3.connect(storage / "data.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
