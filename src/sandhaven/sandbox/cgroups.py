"""Memory and process limits for one grain, through cgroups v1 or v2.

Which one is used is decided once per host (:func:`detect`): v2 when
``/sys/fs/cgroup`` is a unified hierarchy with the memory and pids controllers,
else v1 when the ``memory`` and ``pids`` hierarchies are mounted. Every grain
gets ``<parent>/<grain-id>`` in each; the spawn helper writes its own PID into
:attr:`GrainCgroup.procs_files` before bubblewrap forks, so every process of the
grain is counted. When a limit is hit the kernel kills inside that cgroup only
(the OOM killer) or refuses the fork (pids); :meth:`GrainCgroup.limit_events`
tells the owner which.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from sandhaven.errors import SandboxUnavailable

ROOT = Path("/sys/fs/cgroup")


def _write(path: Path, value: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(value)


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _read_keyed(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                out[key] = int(value)
    except OSError:
        pass
    return out


@dataclass(frozen=True)
class GrainCgroup:
    """The cgroup directories of one grain (one per v1 hierarchy, one for v2)."""

    version: int
    dirs: tuple[Path, ...]

    @property
    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs]

    def _file(self, v1_hierarchy: str, name: str) -> Path:
        if self.version == 2:
            return self.dirs[0] / name
        return next(d for d in self.dirs if d.parent.parent.name == v1_hierarchy) / name

    def memory_bytes(self) -> int:
        """Memory charged to the grain now, in bytes (page cache included)."""
        if self.version == 2:
            return _read_int(self._file("", "memory.current"))
        return _read_int(self._file("memory", "memory.usage_in_bytes"))

    def limit_events(self) -> dict[str, int]:
        """Counters of limits hit: ``{"oom_kill": n, "pids_max": n}``."""
        if self.version == 2:
            oom = _read_keyed(self._file("", "memory.events")).get("oom_kill", 0)
            pids = _read_keyed(self._file("", "pids.events")).get("max", 0)
        else:
            oom = _read_keyed(self._file("memory", "memory.oom_control")).get("oom_kill", 0)
            pids = _read_keyed(self._file("pids", "pids.events")).get("max", 0)
        return {"oom_kill": oom, "pids_max": pids}

    def pids(self) -> list[int]:
        """PIDs (host view) of every process in the grain's cgroup."""
        found: set[int] = set()
        for f in self.procs_files:
            with contextlib.suppress(OSError):
                found.update(int(p) for p in f.read_text().split())
        return sorted(found)

    def kill_all(self) -> None:
        """SIGKILL every process in the cgroup (v2: at once through cgroup.kill)."""
        if self.version == 2:
            with contextlib.suppress(OSError):
                _write(self.dirs[0] / "cgroup.kill", "1")
                return
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def remove(self) -> bool:
        """Remove the directories; False while a process is still inside."""
        done = True
        for d in self.dirs:
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise
                done = False
        return done


class Cgroups:
    """Creates and finds grain cgroups under ``parent`` (a name, e.g. ``sandhaven``)."""

    def __init__(self, version: int, parent_dirs: tuple[Path, ...]) -> None:
        self.version = version
        self.parent_dirs = parent_dirs

    def grain(self, grain_id: str) -> GrainCgroup:
        return GrainCgroup(self.version, tuple(p / grain_id for p in self.parent_dirs))

    def create(self, grain_id: str, memory_bytes: int, max_processes: int) -> GrainCgroup:
        """A fresh cgroup for ``grain_id`` with its limits set.

        A leftover one (server killed) is emptied and replaced. Raises
        SandboxUnavailable when the hierarchy refuses.
        """
        cg = self.grain(grain_id)
        self.discard(cg)
        try:
            for d in cg.dirs:
                d.mkdir(mode=0o755)
            if self.version == 2:
                _write(cg.dirs[0] / "memory.max", str(memory_bytes))
                with contextlib.suppress(OSError):
                    _write(cg.dirs[0] / "memory.swap.max", "0")
                _write(cg.dirs[0] / "pids.max", str(max_processes))
            else:
                mem = cg._file("memory", "")
                _write(mem / "memory.limit_in_bytes", str(memory_bytes))
                with contextlib.suppress(OSError):
                    _write(mem / "memory.memsw.limit_in_bytes", str(memory_bytes))
                _write(cg._file("pids", "") / "pids.max", str(max_processes))
        except OSError as exc:
            raise SandboxUnavailable(
                f"Cgroup for grain {grain_id} cannot be set up: {exc.strerror} ({exc.filename})."
            ) from None
        return cg

    def discard(self, cg: GrainCgroup) -> bool:
        """Kill whatever is left in ``cg`` and remove it; False if it is not gone yet."""
        if not any(d.exists() for d in cg.dirs):
            return True
        cg.kill_all()
        return cg.remove()

    def remove_parent(self) -> None:
        """Remove the parent directories if no grain cgroup is left in them."""
        for p in self.parent_dirs:
            with contextlib.suppress(OSError):
                p.rmdir()

    def leftovers(self) -> list[str]:
        """Grain IDs that have a cgroup under the parent (from an earlier run)."""
        names: set[str] = set()
        for p in self.parent_dirs:
            with contextlib.suppress(OSError):
                names.update(c.name for c in p.iterdir() if c.is_dir())
        return sorted(names)


def detect(parent: str = "sandhaven", root: Path = ROOT) -> Cgroups:
    """The host's cgroup backend with ``parent`` created in it.

    ``root`` is where the hierarchies are mounted. Raises SandboxUnavailable
    naming what is missing (no writable memory and pids controllers).
    """
    if (root / "cgroup.controllers").exists():
        controllers = (root / "cgroup.controllers").read_text().split()
        if {"memory", "pids"} <= set(controllers):
            base = root / parent
            try:
                base.mkdir(mode=0o755, exist_ok=True)
                _write(root / "cgroup.subtree_control", "+memory +pids")
                _write(base / "cgroup.subtree_control", "+memory +pids")
            except OSError as exc:
                raise SandboxUnavailable(
                    f"Cgroup v2 parent {base} cannot be set up: {exc.strerror}."
                ) from None
            return Cgroups(2, (base,))
    v1 = (root / "memory", root / "pids")
    if all((d / "cgroup.procs").exists() for d in v1):
        dirs = tuple(d / parent for d in v1)
        try:
            for d in dirs:
                d.mkdir(mode=0o755, exist_ok=True)
        except OSError as exc:
            raise SandboxUnavailable(
                f"Cgroup parent {exc.filename} cannot be created: {exc.strerror}."
            ) from None
        return Cgroups(1, dirs)
    raise SandboxUnavailable(
        f"No writable cgroup hierarchy with the memory and pids controllers under {root}."
    )
