"""Helpers for running apps in real grains from tests and benchmarks.

- :func:`make_runtime_root`: a fresh directory the grain uid can reach, for a
  supervisor's runtime dir (pytest's own temporary directories are mode 0700);
- :func:`http_request`: one HTTP/1.0 request over a grain's app socket, through
  :func:`sandhaven.sandbox.bridge.connect_app` like the gateway;
- :func:`test_config`: a :class:`~sandhaven.supervisor.SupervisorConfig` with short
  timings for tests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sandhaven.sandbox.bridge import open_app_connection


def make_runtime_root(prefix: str = "sandhaven-test-") -> Path:
    """A new directory under /tmp with mode 0711; remove it with :func:`remove_tree`."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(path, 0o711)
    return path


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def test_config(root: Path, **overrides: Any) -> Any:
    """A SupervisorConfig under ``root`` with test-sized timings (overridable)."""
    from sandhaven.supervisor import SupervisorConfig

    values: dict[str, Any] = {
        "runtime_dir": root / "run",
        "helpers_dir": root / "lib",
        "log_dir": root / "logs",
        "idle_timeout": 300.0,
        "stop_timeout": 5.0,
        "start_timeout": 20.0,
        "restart_backoff": 0.2,
        "restart_backoff_max": 1.0,
        "cgroup_parent": f"sandhaven-test-{os.getpid()}",
    }
    values.update(overrides)
    return SupervisorConfig(**values)


test_config.__test__ = False  # type: ignore[attr-defined]


async def http_request(
    socket_path: Path, path: str = "/", *, method: str = "GET", timeout: float = 10.0
) -> tuple[int, bytes]:
    """``(status, body)`` of one request; raises OSError/TimeoutError on failure."""

    async def run() -> tuple[int, bytes]:
        reader, writer = await open_app_connection(socket_path)
        try:
            writer.write(f"{method} {path} HTTP/1.0\r\nHost: sandbox\r\n\r\n".encode())
            await writer.drain()
            data = await reader.read()
        finally:
            writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        return status, body

    return await asyncio.wait_for(run(), timeout)


class GrainHarness:
    """A supervisor on its own event loop in a thread, for synchronous tests.

    ``call(coro)`` runs a coroutine there and returns its result; ``close()``
    stops every grain and the loop. Module-scoped fixtures can share one.
    """

    def __init__(self, spec_for: Any, config: Any, release: Any = None) -> None:
        import threading

        from sandhaven.supervisor import Supervisor

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.supervisor = Supervisor(spec_for, config, release=release)
        try:
            self.call(self.supervisor.start())
        except BaseException:
            self._stop_loop()
            raise

    def call(self, coro: Any, timeout: float = 120.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, fn: Any, *args: Any) -> Any:
        """Call a plain function of the supervisor on its loop's thread."""

        async def wrapper() -> Any:
            return fn(*args)

        return self.call(wrapper())

    def get(self, grain_id: str, path: str = "/", timeout: float = 30.0) -> tuple[int, bytes]:
        """Ensure the grain runs, then one GET request to it."""

        async def go() -> tuple[int, bytes]:
            sock = await self.supervisor.ensure_running(grain_id)
            return await http_request(sock, path, timeout=timeout)

        return self.call(go(), timeout + 60)

    def close(self) -> None:
        try:
            self.call(self.supervisor.close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


DEBIAN_PYTHON = "/usr/bin/python3"  # the only Python visible inside a grain


def python_app_spec(
    root: Path,
    grain_id: str,
    app_dir: Path,
    port: int = 8000,
    limits: Any = None,
    env: dict[str, str] | None = None,
) -> Any:
    """Spec of a stdlib Python app (``app_dir/app.py PORT``) with storage under ``root``."""
    from sandhaven.sandbox.spec import GrainSpec, Limits, MiB

    storage = root / "storage" / grain_id
    storage.mkdir(parents=True, exist_ok=True)
    return GrainSpec(
        package_dir=app_dir,
        storage_dir=storage,
        command=(DEBIAN_PYTHON, "-B", "/opt/app/app.py", str(port)),
        app_port=port,
        env=env or {},
        limits=limits or Limits(memory_bytes=256 * MiB),
    )


async def wait_until(condition: Any, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition()`` every 10 ms until true; TimeoutError naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError(f"Timed out after {timeout:g} s waiting for {what}.")
        await asyncio.sleep(0.01)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
