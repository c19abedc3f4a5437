"""The supervisor: starts grains on demand, watches them, stops them.

The gateway talks to it only through :meth:`Supervisor.ensure_running`,
:meth:`~Supervisor.stop`, :meth:`~Supervisor.status` and the activity hooks
(:meth:`~Supervisor.request_started` / :meth:`~Supervisor.request_finished`, or
the :meth:`~Supervisor.activity` context manager). It knows nothing of HTTP
routing or the store: a ``spec_for(grain_id)`` callable gives it a
:class:`~sandhaven.sandbox.spec.GrainSpec` (the store backs it; raising
``NotFound`` there propagates unchanged).

States: ``stopped`` → ``starting`` → ``running`` → (``stopped`` | ``crashed``).
A crashed grain restarts on the next ``ensure_running`` once its backoff
(base × 2^(crashes-1), capped) has passed; before that ``GrainCrashed`` carries
the seconds left. Idle grains (no request, no open stream for ``idle_timeout``)
are stopped by a background task.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import inspect
import math
import os
import resource
import shutil
import stat
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandhaven.errors import GrainCrashed, GrainStartFailed, SandboxError, SandboxUnavailable
from sandhaven.sandbox import cgroups as cgroups_mod
from sandhaven.sandbox import etc, native, seccomp
from sandhaven.sandbox.argv import Host
from sandhaven.sandbox.layout import HostPaths
from sandhaven.sandbox.spec import GrainSpec
from sandhaven.supervisor.log import GrainLog
from sandhaven.supervisor.mounts import unmount_under
from sandhaven.supervisor.process import ExitInfo, GrainProcess

SpecSource = Callable[[str], GrainSpec | Awaitable[GrainSpec]]
# Called with the grain ID once its sandbox is gone (stop, crash, failed start):
# the grain's volume is unmounted there.
ReleaseHook = Callable[[str], Awaitable[None]]


class GrainState(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    CRASHED = "crashed"


@dataclass(frozen=True)
class SupervisorConfig:
    """Paths and timings. Times in seconds, sizes in bytes.

    ``runtime_dir`` is emptied at start and must be reachable (every ancestor
    searchable) by ``grain_uid``; ``helpers_dir`` holds the built C helpers;
    ``log_dir/<grain-id>/`` the capped logs.
    """

    runtime_dir: Path
    helpers_dir: Path
    log_dir: Path
    idle_timeout: float = 300.0
    stop_timeout: float = 10.0
    start_timeout: float = 60.0
    log_bytes: int = 1024 * 1024
    grain_uid: int = 64999
    cgroup_parent: str = "sandhaven"
    restart_backoff: float = 1.0
    restart_backoff_max: float = 60.0
    idle_check_interval: float | None = None  # default: idle_timeout / 10, at most 5 s

    @classmethod
    def from_settings(cls, settings: Any) -> SupervisorConfig:
        """Built from :class:`~sandhaven.config.Settings` (``grains.*``, ``sandbox.*``).

        The runtime dir and the cgroup parent are named after the data dir, so
        two servers (two data dirs) on one host, or in one test process, never
        clean up each other's grains.
        """
        data = Path(settings.data_dir).resolve()
        tag = hashlib.sha256(str(data).encode()).hexdigest()[:12]
        runtime = Path(settings.sandbox_runtime_dir) / tag if os.geteuid() == 0 else data / "run"
        return cls(
            runtime_dir=runtime,
            helpers_dir=data / "lib",
            log_dir=data / "grain-logs",
            cgroup_parent=f"sandhaven-{tag}",
            idle_timeout=float(settings.grains_idle_timeout),
            stop_timeout=float(settings.grains_stop_timeout),
            start_timeout=float(settings.grains_start_timeout),
            log_bytes=int(settings.grains_log_size) * 1024,
            grain_uid=int(settings.sandbox_grain_uid),
        )


@dataclass
class _Grain:
    id: str
    log: GrainLog
    state: GrainState = GrainState.STOPPED
    process: GrainProcess | None = None
    start_task: asyncio.Task[None] | None = None
    stop_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    active: int = 0
    last_activity: float = 0.0
    crashes_in_row: int = 0
    retry_at: float = 0.0
    last_exit: ExitInfo | None = None


class Supervisor:
    """Runs grains. Use as ``async with Supervisor(spec_for, config) as sup:``
    or call :meth:`start` and :meth:`close`.

    All methods belong to one event loop. Grains die with the thread that runs
    that loop (bubblewrap's ``--die-with-parent`` is a per-thread parent-death
    signal), which is what makes a killed server leave no grain behind: run the
    loop on a thread that lives as long as the server.
    """

    def __init__(self, spec_for: SpecSource, config: SupervisorConfig,
                 release: ReleaseHook | None = None) -> None:
        self.spec_for = spec_for
        self.release = release
        self.config = config
        self.paths = HostPaths(config.runtime_dir)
        self._grains: dict[str, _Grain] = {}
        self._host: Host | None = None
        self._cgroups: cgroups_mod.Cgroups | None = None
        self._filter = b""
        self._idle_task: asyncio.Task[None] | None = None
        self._watchers: set[asyncio.Task[None]] = set()
        self._counts = {
            "starts": 0,
            "start_failures": 0,
            "crashes": 0,
            "stops": 0,
            "idle_stops": 0,
            "kills": 0,
        }

    # -- lifecycle of the supervisor ------------------------------------------------

    async def start(self) -> None:
        """Check the host, clean what a killed earlier run left, build helpers.

        Raises SandboxUnavailable naming what is missing.
        """
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxUnavailable("bubblewrap (bwrap) is not installed.")
        root = os.geteuid() == 0
        grain_uid = self.config.grain_uid if root else None
        _raise_open_file_limit()
        self._clean_runtime_dir()
        if grain_uid is not None:
            _check_reachable(self.config.runtime_dir, grain_uid)
        etc.write_etc(self.paths.etc_dir)
        self.paths.stage_dir.mkdir(mode=0o755, exist_ok=True)
        self.paths.grains_dir.mkdir(mode=0o700, exist_ok=True)  # sockets: platform only
        helpers = await asyncio.to_thread(native.ensure_built, self.config.helpers_dir)
        self._filter = seccomp.build_filter()
        self._cgroups = cgroups_mod.detect(self.config.cgroup_parent)
        for grain_id in self._cgroups.leftovers():
            self._cgroups.discard(self._cgroups.grain(grain_id))
        self._host = Host(
            helpers=helpers,
            paths=self.paths,
            bwrap=bwrap,
            grain_uid=grain_uid,
            stop_grace=max(1, math.ceil(self.config.stop_timeout)),
        )
        self._idle_task = asyncio.create_task(self._idle_loop())

    async def close(self) -> None:
        """Stop every grain (SIGTERM, bounded wait, SIGKILL) and the idle task."""
        if self._idle_task is not None:
            self._idle_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._idle_task
            self._idle_task = None
        await asyncio.gather(*(self.stop(g) for g in list(self._grains)), return_exceptions=True)
        for task in list(self._watchers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._cgroups is not None:
            self._cgroups.remove_parent()
        if self._host is not None:
            self._clean_runtime_dir(recreate=False)
            self._host = None

    async def __aenter__(self) -> Supervisor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the interface the gateway uses -------------------------------------------------

    async def ensure_running(self, grain_id: str) -> Path:
        """Path of the grain's app socket once its app answers HTTP.

        Starts the grain if needed; concurrent callers share one start. Connect
        with :func:`sandhaven.sandbox.bridge.connect_app` (never by plain path).
        Raises GrainCrashed (backoff not over), GrainStartFailed, or whatever
        ``spec_for`` raises (e.g. NotFound).
        """
        g = self._grain(grain_id)
        while True:
            if g.state is GrainState.RUNNING and g.process is not None:
                g.last_activity = time.monotonic()
                return g.process.socket
            if g.start_task is None:
                if g.stop_lock.locked():
                    async with g.stop_lock:
                        pass
                    continue
                if g.state is GrainState.CRASHED and time.monotonic() < g.retry_at:
                    left = g.retry_at - time.monotonic()
                    reason = g.last_exit.reason if g.last_exit else "crashed"
                    raise GrainCrashed(
                        f"Grain {grain_id} crashed ({reason}); next start in {left:.1f} s.",
                        retry_after=left,
                    )
                g.start_task = asyncio.create_task(self._start(g))
            await asyncio.shield(g.start_task)

    async def stop(self, grain_id: str, *, reason: str = "stop") -> None:
        """Stop the grain if it runs (or is starting): SIGTERM to every process
        through its init, ``stop_timeout`` seconds, then SIGKILL; returns once every
        process, socket and cgroup of it is gone."""
        g = self._grains.get(grain_id)
        if g is None:
            return
        async with g.stop_lock:
            if g.start_task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(g.start_task)
            process = g.process
            if process is None:
                return
            g.log.note(f"stopping ({reason})")
            info = await process.stop(self.config.stop_timeout)
            g.process = None
            g.last_exit = info
            await self._release(g.id)
            if g.state is GrainState.RUNNING:
                g.state = GrainState.STOPPED
                g.crashes_in_row = 0
            self._counts["stops"] += 1
            self._counts["kills"] += process.killed
            if reason == "idle":
                self._counts["idle_stops"] += 1

    def status(self, grain_id: str) -> GrainState:
        """``stopped``, ``starting``, ``running`` or ``crashed``."""
        g = self._grains.get(grain_id)
        return GrainState.STOPPED if g is None else g.state

    def last_exit(self, grain_id: str) -> ExitInfo | None:
        """How the grain's last run ended (for "this grain crashed"), or None."""
        g = self._grains.get(grain_id)
        return None if g is None else g.last_exit

    def read_log(self, grain_id: str) -> str:
        """The grain's capped log (its output and platform notes), oldest first."""
        return self._grain(grain_id).log.read()

    def request_started(self, grain_id: str) -> None:
        """A request, response stream or WebSocket to the grain opened."""
        g = self._grain(grain_id)
        g.active += 1
        g.last_activity = time.monotonic()

    def active_requests(self, grain_id: str) -> int:
        """Requests, streams and WebSockets open to the grain now (0 if unknown)."""
        g = self._grains.get(grain_id)
        return g.active if g is not None else 0

    def request_finished(self, grain_id: str) -> None:
        """The matching end of :meth:`request_started`."""
        g = self._grain(grain_id)
        g.active = max(0, g.active - 1)
        g.last_activity = time.monotonic()

    @contextlib.contextmanager
    def activity(self, grain_id: str) -> Iterator[None]:
        """Keeps the grain from idling out while the block runs (a stream, a WebSocket)."""
        self.request_started(grain_id)
        try:
            yield
        finally:
            self.request_finished(grain_id)

    def statistics(self) -> dict[str, Any]:
        """Counters and current figures::

            {"running": int, "starting": int, "crashed": int, "starts": int,
             "start_failures": int, "crashes": int, "stops": int, "idle_stops": int,
             "kills": int, "memory_bytes": int,
             "grains": {id: {"state": str, "memory_bytes": int, "active": int,
                             "started_at": float | None}}}

        ``memory_bytes`` is what the grains' cgroups are charged (app included).
        """
        grains: dict[str, dict[str, Any]] = {}
        for g in self._grains.values():
            p = g.process
            grains[g.id] = {
                "state": g.state.value,
                "memory_bytes": p.cgroup.memory_bytes() if p else 0,
                "active": g.active,
                "started_at": p.started_at if p else None,
            }
        states = [g.state for g in self._grains.values()]
        return {
            "running": states.count(GrainState.RUNNING),
            "starting": states.count(GrainState.STARTING),
            "crashed": states.count(GrainState.CRASHED),
            **self._counts,
            "memory_bytes": sum(v["memory_bytes"] for v in grains.values()),
            "grains": grains,
        }

    # -- inside ------------------------------------------------------------------------

    def _grain(self, grain_id: str) -> _Grain:
        g = self._grains.get(grain_id)
        if g is None:
            if not grain_id or not all(c.isalnum() or c in "-_" for c in grain_id):
                raise ValueError(f"Grain ID {grain_id!r} is not valid.")
            log = GrainLog(self.config.log_dir / grain_id, self.config.log_bytes)
            g = self._grains[grain_id] = _Grain(id=grain_id, log=log)
        return g

    async def _start(self, g: _Grain) -> None:
        if self._host is None or self._cgroups is None:
            g.start_task = None
            raise SandboxError("The supervisor is not started.")
        previous = g.state
        g.state = GrainState.STARTING
        try:
            spec = self.spec_for(g.id)
            if inspect.isawaitable(spec):
                spec = await spec
        except GrainStartFailed as exc:
            # The grain's own setup failed (its storage would not open…): a start
            # failure like any other, with the reason for its owner and a backoff.
            g.last_exit = ExitInfo(None, str(exc).splitlines()[0][:300], time.time())
            await self._release(g.id)
            self._counts["start_failures"] += 1
            self._crashed(g)
            g.start_task = None
            raise
        except BaseException:
            g.state = previous
            g.start_task = None
            await self._release(g.id)
            raise
        process: GrainProcess | None = None
        try:
            process = await GrainProcess.spawn(
                g.id, spec, self._host, self._cgroups, self._filter, g.log
            )
            await process.wait_ready(self.config.start_timeout)
        except BaseException as exc:
            if process is not None and process.exited is not None:
                if not process.exited.done():
                    await process.stop(1.0)
                g.last_exit = process.exited.result()
            await self._release(g.id)
            self._counts["start_failures"] += 1
            self._crashed(g)
            g.start_task = None
            if isinstance(exc, GrainStartFailed | asyncio.CancelledError):
                raise
            raise GrainStartFailed(f"Grain {g.id} could not start: {exc}") from None
        self._counts["starts"] += 1
        g.process = process
        g.state = GrainState.RUNNING
        g.last_activity = time.monotonic()
        g.start_task = None
        watcher = asyncio.create_task(self._watch(g, process))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch(self, g: _Grain, process: GrainProcess) -> None:
        assert process.exited is not None
        info = await process.exited
        if process.stopping:
            return
        if g.process is process:
            g.process = None
        g.last_exit = info
        self._counts["crashes"] += 1
        self._crashed(g)
        async with g.stop_lock:  # a start waits for this, as for a stop
            await self._release(g.id)

    async def _release(self, grain_id: str) -> None:
        if self.release is None:
            return
        try:
            await self.release(grain_id)
        except Exception as exc:  # logged in the grain's log; the next start retries
            self._grain(grain_id).log.note(f"storage not released: {exc}")

    def _crashed(self, g: _Grain) -> None:
        g.state = GrainState.CRASHED
        g.crashes_in_row += 1
        backoff = min(
            self.config.restart_backoff_max,
            self.config.restart_backoff * 2 ** (g.crashes_in_row - 1),
        )
        g.retry_at = time.monotonic() + backoff

    async def _idle_loop(self) -> None:
        interval = self.config.idle_check_interval or min(5.0, self.config.idle_timeout / 10)
        while True:
            await asyncio.sleep(interval)  # a timer, not a readiness wait
            now = time.monotonic()
            for g in list(self._grains.values()):
                if (
                    g.state is GrainState.RUNNING
                    and g.active == 0
                    and now - g.last_activity >= self.config.idle_timeout
                    and not g.stop_lock.locked()
                ):
                    task = asyncio.create_task(self.stop(g.id, reason="idle"))
                    self._watchers.add(task)
                    task.add_done_callback(self._watchers.discard)

    def _clean_runtime_dir(self, recreate: bool = True) -> None:
        """Whatever a killed server left: mounts, sockets, socket directories."""
        runtime = self.config.runtime_dir
        unmount_under(runtime)
        for sub in ("grains", "stage", "etc"):
            shutil.rmtree(runtime / sub, ignore_errors=True)
        # Grain volumes' mount points: rmdir only, never a recursive delete, which
        # would reach into a plaintext view that failed to unmount.
        volumes = runtime / "volumes"
        with contextlib.suppress(OSError):
            for point in volumes.iterdir():
                with contextlib.suppress(OSError):
                    point.rmdir()
            volumes.rmdir()
        if recreate:
            runtime.mkdir(mode=0o755, parents=True, exist_ok=True)
            os.chmod(runtime, 0o755)
        else:
            with contextlib.suppress(OSError):
                runtime.rmdir()


def _raise_open_file_limit() -> None:
    """Each running grain holds ~4 descriptors in the server (its log pipe, pidfd,
    API socket, API connections): lift the soft limit to the hard one so that a
    few hundred grains fit. Grains get their own limits from the spawn helper."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _check_reachable(path: Path, uid: int) -> None:
    """Every ancestor of ``path`` must be searchable by ``uid`` (the grain's
    bubblewrap walks it to reach the stage)."""
    for p in [path, *path.parents]:
        st = p.stat()
        ok = (
            st.st_mode & stat.S_IXOTH
            or (st.st_uid == uid and st.st_mode & stat.S_IXUSR)
            or (st.st_gid == uid and st.st_mode & stat.S_IXGRP)
        )
        if not ok:
            raise SandboxUnavailable(
                f"Runtime dir {path} is not reachable by grain uid {uid}: "
                f"{p} has mode {stat.S_IMODE(st.st_mode):04o}."
            )
