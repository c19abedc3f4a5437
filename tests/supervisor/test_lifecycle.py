"""Grain lifecycle with real sandboxes: start, share, stop, crash, idle, limits."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from sandhaven.errors import GrainCrashed, GrainStartFailed, NotFound
from sandhaven.sandbox.spec import GrainSpec, Limits, MiB
from sandhaven.sandbox.testing import (
    http_request,
    pid_alive,
    python_app_spec,
    test_config,
    wait_until,
)
from sandhaven.supervisor import GrainState, Supervisor

HELLO = Path(__file__).parent.parent / "sandbox" / "apps" / "hello"
SQLITE = Path(__file__).parent / "apps" / "sqlite"


def hello(root: Path, **kw: object):
    return lambda gid: python_app_spec(root, gid, HELLO, **kw)  # type: ignore[arg-type]


def test_start_serve_stop_leaves_nothing(root: Path) -> None:
    async def main() -> None:
        async with Supervisor(hello(root), test_config(root)) as sup:
            assert sup.status("g1") is GrainState.STOPPED
            sock = await sup.ensure_running("g1")
            assert sup.status("g1") is GrainState.RUNNING
            assert await http_request(sock, "/") == (200, b"hello")
            who = json.loads((await http_request(sock, "/whoami"))[1])
            assert who == {"uid": 1000, "gid": 1000, "pid": 2, "hostname": "sandbox"}
            stats = sup.statistics()
            assert stats["running"] == 1 and stats["starts"] == 1
            assert stats["memory_bytes"] > 0
            cg = sup._cgroups.grain("g1")  # noqa: SLF001
            pids = cg.pids()
            assert len(pids) >= 3  # bubblewrap, init, app
            await sup.stop("g1")
            assert sup.status("g1") is GrainState.STOPPED
            assert not any(pid_alive(p) for p in pids)
            assert not any(d.exists() for d in cg.dirs)
            assert not sock.parent.exists()
            assert "stopped" in sup.read_log("g1")

    asyncio.run(main())


def test_concurrent_callers_share_one_start(root: Path) -> None:
    async def main() -> None:
        async with Supervisor(hello(root), test_config(root)) as sup:
            socks = await asyncio.gather(*(sup.ensure_running("g1") for _ in range(20)))
            assert len(set(socks)) == 1
            assert sup.statistics()["starts"] == 1

    asyncio.run(main())


def test_unknown_grain_error_from_the_spec_source_propagates(root: Path) -> None:
    def spec_for(gid: str) -> GrainSpec:
        raise NotFound(f"No grain {gid}.")

    async def main() -> None:
        async with Supervisor(spec_for, test_config(root)) as sup:
            with pytest.raises(NotFound):
                await sup.ensure_running("nope")
            assert sup.status("nope") is GrainState.STOPPED

    asyncio.run(main())


def test_app_that_never_answers_fails_to_start_within_the_timeout(root: Path) -> None:
    def spec_for(gid: str) -> GrainSpec:
        spec = python_app_spec(root, gid, HELLO)
        return GrainSpec(
            package_dir=spec.package_dir,
            storage_dir=spec.storage_dir,
            command=("/usr/bin/sleep", "600"),
            app_port=8000,
        )

    async def main() -> None:
        async with Supervisor(spec_for, test_config(root, start_timeout=0.5)) as sup:
            with pytest.raises(GrainStartFailed, match="did not answer HTTP"):
                await sup.ensure_running("g1")
            assert sup.status("g1") is GrainState.CRASHED
            assert sup._cgroups.grain("g1").pids() == []  # noqa: SLF001

    asyncio.run(main())


def test_crash_is_recorded_logged_and_restarted_after_backoff(root: Path) -> None:
    async def main() -> None:
        config = test_config(root, restart_backoff=2.0)  # long enough for a loaded machine
        async with Supervisor(hello(root), config) as sup:
            sock = await sup.ensure_running("g1")
            assert await _status(sock, "/exit?code=3") == 0  # connection closed, no answer
            await wait_until(lambda: sup.status("g1") is GrainState.CRASHED, what="crash")
            info = sup.last_exit("g1")
            assert info is not None and info.status == 3
            assert info.reason == "exited with status 3"
            log = sup.read_log("g1")
            assert "exiting on request" in log and "exited with status 3" in log
            with pytest.raises(GrainCrashed) as raised:
                await sup.ensure_running("g1")
            assert 0 < raised.value.retry_after <= 2.0
            await wait_until(lambda: not _in_backoff(sup, "g1"), what="backoff")
            sock = await sup.ensure_running("g1")
            assert await http_request(sock, "/") == (200, b"hello")
            stats = sup.statistics()
            assert stats["crashes"] == 1 and stats["starts"] == 2

    asyncio.run(main())


async def _status(sock: Path, path: str) -> int:
    """The status of one request; 0 when the grain closed without answering."""
    try:
        return (await http_request(sock, path))[0]
    except OSError:
        return 0


def _in_backoff(sup: Supervisor, gid: str) -> bool:
    import time

    return time.monotonic() < sup._grains[gid].retry_at  # noqa: SLF001


def test_memory_limit_kills_only_that_grain_and_says_why(root: Path) -> None:
    limits = Limits(memory_bytes=96 * MiB)

    async def main() -> None:
        async with Supervisor(hello(root, limits=limits), test_config(root)) as sup:
            other = await sup.ensure_running("other")
            sock = await sup.ensure_running("g1")
            for _ in range(10):
                if await _status(sock, "/alloc?mb=16") != 200:
                    break
            await wait_until(lambda: sup.status("g1") is GrainState.CRASHED, what="OOM")
            info = sup.last_exit("g1")
            assert info is not None and info.limit_hit == "memory"
            assert "memory limit exceeded" in sup.read_log("g1")
            assert await http_request(other, "/") == (200, b"hello")

    asyncio.run(main())


def test_idle_grain_is_stopped(root: Path) -> None:
    config = test_config(root, idle_timeout=0.5, idle_check_interval=0.05)

    async def main() -> None:
        async with Supervisor(hello(root), config) as sup:
            await sup.ensure_running("g1")
            await wait_until(
                lambda: sup.status("g1") is GrainState.STOPPED, timeout=10, what="idle stop"
            )
            assert sup.statistics()["idle_stops"] == 1
            assert sup._cgroups.grain("g1").pids() == []  # noqa: SLF001

    asyncio.run(main())


def test_open_stream_keeps_the_grain_running_past_the_idle_time(root: Path) -> None:
    config = test_config(root, idle_timeout=0.5, idle_check_interval=0.05)

    async def main() -> None:
        from sandhaven.sandbox.bridge import open_app_connection

        async with Supervisor(hello(root), config) as sup:
            sock = await sup.ensure_running("g1")
            with sup.activity("g1"):
                reader, writer = await open_app_connection(sock)
                writer.write(b"GET /stream HTTP/1.1\r\nHost: sandbox\r\n\r\n")
                ticks = 0
                while ticks < 10:  # ten ticks of 0.2 s: four idle timeouts
                    line = await asyncio.wait_for(reader.readline(), 5)
                    ticks += line == b"tick\n"
                assert sup.status("g1") is GrainState.RUNNING
                writer.close()
            await wait_until(
                lambda: sup.status("g1") is GrainState.STOPPED,
                timeout=10,
                what="idle stop after the stream ended",
            )

    asyncio.run(main())


def test_stop_escalates_to_sigkill_after_the_timeout(root: Path) -> None:
    config = test_config(root, stop_timeout=0.5)

    async def main() -> None:
        async with Supervisor(hello(root, env={"IGNORE_SIGTERM": "1"}), config) as sup:
            await sup.ensure_running("g1")
            pids = sup._cgroups.grain("g1").pids()  # noqa: SLF001
            await sup.stop("g1")
            assert sup.status("g1") is GrainState.STOPPED
            assert sup.statistics()["kills"] == 1
            assert not any(pid_alive(p) for p in pids)
            assert "killed after the stop timeout" in sup.read_log("g1")

    asyncio.run(main())


def test_sqlite_writer_shuts_down_cleanly_on_stop(root: Path) -> None:
    async def main() -> None:
        spec_for = lambda gid: python_app_spec(root, gid, SQLITE)  # noqa: E731
        async with Supervisor(spec_for, test_config(root)) as sup:
            sock = await sup.ensure_running("db")
            await _wait_rows(sock, 200)
            await sup.stop("db")
            assert sup.statistics()["kills"] == 0
            assert sup.last_exit("db").reason == "stopped"  # type: ignore[union-attr]

    asyncio.run(main())
    storage = root / "storage" / "db"
    marker = (storage / "clean-shutdown").read_text()
    assert marker.startswith("rows ")
    assert not (storage / "data.sqlite3-journal").exists()  # no hot journal
    db = sqlite3.connect(storage / "data.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == int(marker.split()[1])


async def _wait_rows(sock: Path, n: int) -> None:
    async def rows() -> int:
        return json.loads((await http_request(sock, "/"))[1])["rows"]

    deadline = asyncio.get_running_loop().time() + 20
    while await rows() < n:
        assert asyncio.get_running_loop().time() < deadline, "writer made no progress"
        await asyncio.sleep(0.02)


def test_close_stops_every_grain(root: Path) -> None:
    async def main() -> None:
        sup = Supervisor(hello(root), test_config(root))
        await sup.start()
        try:
            await asyncio.gather(*(sup.ensure_running(f"g{i}") for i in range(3)))
            pids = [p for i in range(3) for p in sup._cgroups.grain(f"g{i}").pids()]  # noqa: SLF001
        finally:
            await sup.close()
        assert sup.statistics()["running"] == 0
        assert not any(pid_alive(p) for p in pids)

    asyncio.run(main())


def test_app_environment_and_its_proxy_through_the_real_bridge(root: Path) -> None:
    async def main() -> None:
        spec_for = hello(root, env={"APP_SETTING": "on"})
        async with Supervisor(spec_for, test_config(root)) as sup:
            sock = await sup.ensure_running("g1")
            env = json.loads((await http_request(sock, "/env"))[1])
            env.pop("PWD", None)  # set by the interpreter's start-up
            assert env == {
                "APP_SETTING": "on",
                "HOME": "/var",
                "LANG": "C.UTF-8",
                "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
                "HTTP_PROXY": "http://127.0.0.1:15239",
                "http_proxy": "http://127.0.0.1:15239",
                "NO_PROXY": "localhost,127.0.0.1",
                "no_proxy": "localhost,127.0.0.1",
            }
            platform = json.loads(
                (await http_request(sock, "/proxy?url=http://http-bridge/session/abc/claim"))[1]
            )
            assert platform["status"] == 404
            assert json.loads(platform["body"])["error"] == "not_found"
            outside = json.loads((await http_request(sock, "/proxy?url=http://example.com/"))[1])
            assert outside["status"] == 403

    asyncio.run(main())


def test_settings_feed_the_supervisor_config(tmp_path: Path) -> None:
    from sandhaven.config import load_settings
    from sandhaven.supervisor import SupervisorConfig

    settings = load_settings(
        environ={"SANDHAVEN_DATA_DIR": str(tmp_path), "SANDHAVEN_GRAINS_IDLE_TIMEOUT": "60"}
    )
    config = SupervisorConfig.from_settings(settings)
    assert config.idle_timeout == 60.0
    assert config.stop_timeout == 10.0
    assert config.log_bytes == 1024 * 1024
    assert config.grain_uid == 64999
    assert config.helpers_dir == tmp_path.resolve() / "lib"
    other = SupervisorConfig.from_settings(settings.replace(data_dir=str(tmp_path / "x")))
    assert other.runtime_dir != config.runtime_dir
    assert other.cgroup_parent != config.cgroup_parent
    limits = Limits.from_settings(settings)
    assert limits == Limits(memory_bytes=1024 * MiB, max_processes=512, tmp_bytes=16 * MiB)


def test_a_command_that_cannot_run_fails_the_start_with_the_reason(root: Path) -> None:
    def spec_for(gid: str) -> GrainSpec:
        spec = python_app_spec(root, gid, HELLO)
        return GrainSpec(
            package_dir=spec.package_dir,
            storage_dir=spec.storage_dir,
            command=("/opt/app/missing",),
            app_port=8000,
        )

    async def main() -> None:
        async with Supervisor(spec_for, test_config(root)) as sup:
            with pytest.raises(GrainStartFailed, match="exited with status 127"):
                await sup.ensure_running("g1")
            assert "cannot run /opt/app/missing" in sup.read_log("g1")
            assert sup.status("g1") is GrainState.CRASHED

    asyncio.run(main())


def test_a_process_ignoring_sigterm_cannot_keep_a_dead_app_grain_alive(root: Path) -> None:
    async def main() -> None:
        async with Supervisor(hello(root), test_config(root, stop_timeout=1)) as sup:
            sock = await sup.ensure_running("g1")
            await _status(sock, "/exit?code=4&stubborn=1")
            await wait_until(
                lambda: sup.status("g1") is GrainState.CRASHED,
                timeout=10,
                what="the grain to end one grace period after its app",
            )
            assert sup.last_exit("g1").status == 4  # type: ignore[union-attr]
            assert sup._cgroups.grain("g1").pids() == []  # noqa: SLF001

    asyncio.run(main())
