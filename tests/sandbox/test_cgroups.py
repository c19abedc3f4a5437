"""Cgroup backends. v1 runs for real on this project's machines (see the
supervisor tests); v2 is checked here against a directory laid out like
/sys/fs/cgroup on a unified host, for the files and values it writes and reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandhaven.errors import SandboxUnavailable
from sandhaven.sandbox import cgroups


def test_v2_writes_limits_and_reads_events(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    cg = cgroups.detect("sandhaven", root=tmp_path)
    assert cg.version == 2
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory +pids"
    grain = cg.create("g1", memory_bytes=64 << 20, max_processes=32)
    d = tmp_path / "sandhaven" / "g1"
    assert grain.procs_files == [d / "cgroup.procs"]
    assert (d / "memory.max").read_text() == str(64 << 20)
    assert (d / "memory.swap.max").read_text() == "0"
    assert (d / "pids.max").read_text() == "32"
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    (d / "pids.events").write_text("max 0\n")
    (d / "memory.current").write_text("1234\n")
    assert grain.limit_events() == {"oom_kill": 1, "pids_max": 0}
    assert grain.memory_bytes() == 1234
    grain.kill_all()
    assert (d / "cgroup.kill").read_text() == "1"
    assert cg.leftovers() == ["g1"]


def test_no_usable_hierarchy_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="memory and pids"):
        cgroups.detect("sandhaven", root=tmp_path)
