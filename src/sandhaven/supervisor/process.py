"""One grain's sandbox as a host process: spawn, readiness, stop, exit.

Lifecycle, explicit (STYLE.md): :meth:`GrainProcess.spawn` prepares the bridge
directory, the platform API socket and the cgroup, then runs the command built by
:mod:`sandhaven.sandbox.argv`. :meth:`wait_ready` polls the app socket until the
app answers HTTP. :meth:`stop` sends SIGTERM to the grain's init (which forwards
it to every process and reaps), waits a bounded time, then SIGKILLs the sandbox
and everything in its cgroup. :attr:`exited` completes once the sandbox is gone
and everything it used on the host is removed, whatever ended it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from sandhaven.errors import GrainStartFailed
from sandhaven.sandbox import bridge, seccomp
from sandhaven.sandbox.argv import Host, build_argv
from sandhaven.sandbox.cgroups import Cgroups, GrainCgroup
from sandhaven.sandbox.layout import APP_SOCKET_NAME
from sandhaven.sandbox.spec import GrainSpec, MiB
from sandhaven.supervisor.log import GrainLog

# Readiness polling: first poll after 1 ms, doubling up to 4 ms during the first
# 2 s (a probe costs ~0.1 ms; coarse steps would add up to half a step to every
# cold start), then up to 50 ms for slow starters.
_POLL_FIRST = 0.001
_POLL_FAST_MAX = 0.004
_POLL_FAST_FOR = 2.0
_POLL_MAX = 0.05
# After the sandbox exits, how long its cgroup may take to empty.
_CGROUP_DRAIN = 5.0


@dataclass(frozen=True)
class ExitInfo:
    """How a sandbox ended: ``status`` as bubblewrap reports it (the app's exit
    status; 128+N for signal N; negative: bubblewrap itself was killed by -N),
    ``reason`` one line for the owner, ``at`` a UNIX time."""

    status: int | None
    reason: str
    at: float
    limit_hit: str | None = None  # "memory" or "processes"


async def _read_info(fd: int, limit: int = 4096) -> bytes:
    """bubblewrap's info JSON: read until the object is complete or EOF (the
    descriptor stays open in the sandbox until the init runs)."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        try:
            data = os.read(fd, limit)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data and sum(map(len, chunks)) < limit:
            chunks.append(data)
            if not data.rstrip().endswith(b"}"):
                return
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return b"".join(chunks)


class GrainProcess:
    """A started sandbox. Create with :meth:`spawn`."""

    def __init__(
        self,
        grain_id: str,
        host: Host,
        cgroups: Cgroups,
        cgroup: GrainCgroup,
        api: bridge.PlatformApi,
        log: GrainLog,
    ) -> None:
        self.grain_id = grain_id
        self.host = host
        self.cgroups = cgroups
        self.cgroup = cgroup
        self.api = api
        self.log = log
        self.socket = host.paths.app_socket(grain_id)
        self.proc: asyncio.subprocess.Process | None = None
        self.init_pidfd: int | None = None
        self.stopping = False
        self.killed = False
        self.started_at = time.time()
        self.exited: asyncio.Task[ExitInfo] | None = None
        self._log_task: asyncio.Task[None] | None = None

    @classmethod
    async def spawn(
        cls,
        grain_id: str,
        spec: GrainSpec,
        host: Host,
        cgroups: Cgroups,
        filter_program: bytes,
        log: GrainLog,
    ) -> GrainProcess:
        """Start the sandbox; returns once bubblewrap reported the init's PID.

        Raises GrainStartFailed (with the log's last line) if it cannot start.
        """
        bridge_dir = host.paths.bridge_dir(grain_id)
        shutil.rmtree(bridge_dir, ignore_errors=True)
        bridge_dir.mkdir(mode=0o700, parents=True)  # the platform's only
        if host.grain_uid is not None:
            _own_storage(spec.storage_dir, host.grain_uid)
        api = bridge.PlatformApi(grain_id, host.paths.api_socket(grain_id))
        await api.start()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _bind_in(listener, bridge_dir, APP_SOCKET_NAME)
            listener.listen(512)
            cgroup = cgroups.create(grain_id, spec.limits.memory_bytes, spec.limits.max_processes)
        except BaseException:
            listener.close()
            await api.close()
            shutil.rmtree(bridge_dir, ignore_errors=True)
            raise
        self = cls(grain_id, host, cgroups, cgroup, api, log)
        seccomp_fd = seccomp.filter_fd(filter_program)
        info_r, info_w = os.pipe2(os.O_CLOEXEC)
        try:
            argv = build_argv(
                spec,
                grain_id,
                host,
                cgroup_procs=cgroup.procs_files,
                seccomp_fd=seccomp_fd,
                info_fd=info_w,
                app_listen_fd=listener.fileno(),
            )
            log.note(
                f"starting (memory {spec.limits.memory_bytes // MiB} MiB, "
                f"{spec.limits.max_processes} processes)"
            )
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                pass_fds=(seccomp_fd, info_w, listener.fileno()),
                env={},
                start_new_session=True,
            )
        except BaseException:
            os.close(info_r)
            await self._cleanup()
            raise
        finally:
            os.close(seccomp_fd)
            os.close(info_w)
            listener.close()  # the grain's init holds it now
        self._log_task = asyncio.create_task(self._pump_log())
        self.exited = asyncio.create_task(self._watch())
        info = await _read_info(info_r)
        try:
            child = int(json.loads(info)["child-pid"])
            self.init_pidfd = os.pidfd_open(child)
        except (ValueError, KeyError, TypeError, ProcessLookupError):
            await self.exited
            raise GrainStartFailed(
                f"Grain {grain_id} sandbox did not start: {log.tail() or 'no output'}"
            ) from None
        return self

    async def wait_ready(self, timeout: float) -> None:
        """Return once the app answers HTTP on its socket.

        Raises GrainStartFailed if the sandbox exits first or ``timeout`` (s) passes;
        the sandbox is then stopped.
        """
        assert self.exited is not None
        started = time.monotonic()
        deadline = started + timeout
        delay = _POLL_FIRST
        while not self.exited.done():
            if await bridge.probe_http(self.socket, max(0.001, deadline - time.monotonic())):
                return
            if time.monotonic() >= deadline:
                await self.stop(1.0)
                raise GrainStartFailed(
                    f"Grain {self.grain_id} did not answer HTTP within {timeout:g} s."
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.exited), delay)
            fast = time.monotonic() - started < _POLL_FAST_FOR
            delay = min(delay * 2, _POLL_FAST_MAX if fast else _POLL_MAX)
        info = self.exited.result()
        raise GrainStartFailed(f"Grain {self.grain_id} exited while starting: {info.reason}")

    def signal_init(self, sig: int) -> bool:
        """Send ``sig`` to the grain's PID 1; False if it is already gone."""
        if self.init_pidfd is None:
            return False
        try:
            signal.pidfd_send_signal(self.init_pidfd, sig)
            return True
        except ProcessLookupError:
            return False

    async def stop(self, timeout: float) -> ExitInfo:
        """SIGTERM through the init, up to ``timeout`` seconds, then SIGKILL.

        Returns once every process is gone and the host side is cleaned.
        """
        assert self.exited is not None
        self.stopping = True
        if not self.exited.done():
            self.signal_init(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self.exited), timeout)
            except TimeoutError:
                self.killed = True
                self.log.note(f"did not stop within {timeout:g} s; killed")
                self._kill()
        return await self.exited

    def _kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        self.signal_init(signal.SIGKILL)
        self.cgroup.kill_all()

    async def _pump_log(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while data := await self.proc.stdout.read(65536):
            self.log.write(data)

    async def _watch(self) -> ExitInfo:
        assert self.proc is not None
        try:
            status = await self.proc.wait()
        except asyncio.CancelledError:
            self._kill()
            raise
        finally:
            # bubblewrap is gone; anything left in the cgroup dies now.
            self.cgroup.kill_all()
        if self._log_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._log_task, 5)
        events = self.cgroup.limit_events()
        await self._cleanup()
        limit = "memory" if events["oom_kill"] else "processes" if events["pids_max"] else None
        info = ExitInfo(
            status=status, reason=_describe(status, limit, self), at=time.time(), limit_hit=limit
        )
        self.log.note(info.reason)
        return info

    async def _cleanup(self) -> None:
        deadline = time.monotonic() + _CGROUP_DRAIN
        while not self.cgroups.discard(self.cgroup) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)  # processes are exiting; the cgroup empties shortly
        await self.api.close()
        if self.init_pidfd is not None:
            os.close(self.init_pidfd)
            self.init_pidfd = None
        shutil.rmtree(self.host.paths.bridge_dir(self.grain_id), ignore_errors=True)


def _describe(status: int, limit: str | None, p: GrainProcess) -> str:
    """One line for the owner: why the sandbox ended."""
    if p.stopping:
        return "killed after the stop timeout" if p.killed else "stopped"
    if limit == "memory" and status == 128 + signal.SIGKILL:
        return "killed: memory limit exceeded"
    if status >= 128:
        try:
            name = signal.Signals(status - 128).name
        except ValueError:
            name = f"signal {status - 128}"
        text = f"exited: killed by {name}"
    elif status < 0:
        text = f"exited: sandbox killed by signal {-status}"
    else:
        text = f"exited with status {status}"
    if limit == "memory":
        text += " (after hitting the memory limit)"
    elif limit == "processes":
        text += " (after reaching the process limit)"
    return text


def _bind_in(sock: socket.socket, directory: Path, name: str) -> None:
    """Bind ``sock`` to ``directory/name`` through ``/proc/self/fd/N/name``, so that
    the 108-byte limit of socket paths does not apply to the runtime dir."""
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.bind(f"/proc/self/fd/{fd}/{name}")
    finally:
        os.close(fd)


def _own_storage(storage: Path, uid: int) -> None:
    """The grain's /var must belong to the grain uid (its top directory; a
    restore is responsible for what it unpacks)."""
    storage.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = storage.stat()
    if st.st_uid != uid or st.st_gid != uid:
        os.chown(storage, uid, uid)
