"""``keys rotate`` killed by SIGKILL at several points: every volume still opens
afterwards, with the old KEK (cut before the commit) or the new one (after)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sandhaven.config import load_settings
from sandhaven.encryption import open_storage
from sandhaven.encryption.private import kek_path
from sandhaven.encryption.rotate import records
from sandhaven.sandbox.testing import make_runtime_root, remove_tree
from sandhaven.store import Store
from sandhaven.supervisor.mounts import mounts_under

GRAINS = ("g1", "g2", "g3")


def settings_of(root: Path):  # type: ignore[no-untyped-def]
    return load_settings(environ={}, overrides={
        "data_dir": str(root / "data"), "sandbox.runtime_dir": str(root / "run")})


def kek_id(root: Path) -> str:
    return json.loads(kek_path(root / "data").read_text())["id"]


def check_everything_opens(root: Path) -> None:
    with open_storage(settings_of(root)) as storage:
        Store.open(storage.database_url, wal=False).close()
        assert storage.volumes is not None
        for gid in GRAINS:
            point = storage.volumes.mount(gid)
            assert (point / "note").read_text() == f"note of {gid}"
            storage.volumes.unmount(gid)
    assert mounts_under(root) == []


@pytest.fixture(scope="module")
def template():  # type: ignore[no-untyped-def]
    root = make_runtime_root()
    with open_storage(settings_of(root)) as storage:
        Store.open(storage.database_url, wal=False).close()
        assert storage.volumes is not None
        for gid in GRAINS:
            storage.volumes.create(gid)
            (storage.volumes.mount(gid) / "note").write_text(f"note of {gid}")
            storage.volumes.unmount(gid)
    yield root
    remove_tree(root)


def rotate_cmd(root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sandhaven", "--data-dir", str(root / "data"), "keys",
            "rotate", *extra]


# Steps (sandhaven.encryption.rotate): 1 kek.new written, 2 first record re-wrapped,
# 3 all re-wrapped, 4 committed (renamed), 5 first old wrap dropped.
@pytest.mark.parametrize("step, committed", [(1, False), (2, False), (3, False), (4, True),
                                             (5, True)])
def test_a_rotation_killed_at_any_step_leaves_every_volume_openable(
        template, tmp_path, step, committed):
    root = make_runtime_root()
    try:
        shutil.copytree(template / "data", root / "data", symlinks=True, dirs_exist_ok=True)
        before = kek_id(root)
        env = {"PATH": os.environ["PATH"]}
        proc = subprocess.Popen(rotate_cmd(root, "--pause-after", str(step)),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                env=env)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == f"rotate: paused after step {step}"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
        proc.stdout.close()
        proc.stdin.close()  # type: ignore[union-attr]
        assert (kek_id(root) != before) is committed
        check_everything_opens(root)
        assert not (root / "data" / "keys" / "kek.new").exists()  # the start cleaned it
        # A full rotation afterwards leaves one wrap per record, by the new KEK.
        done = subprocess.run(rotate_cmd(root), capture_output=True, text=True, env=env,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        after = kek_id(root)
        assert after not in (before,)
        for path, label in records(root / "data"):
            assert list(json.loads(path.read_text())["wraps"]) == [after], label
        check_everything_opens(root)
    finally:
        remove_tree(root)


def test_rotate_refuses_while_the_server_runs(template):
    from sandhaven.server import data_dir_lock

    with data_dir_lock(template / "data"):
        done = subprocess.run(rotate_cmd(template), capture_output=True, text=True,
                              env={"PATH": os.environ["PATH"]}, timeout=60)
    assert done.returncode == 4 and "already using the data directory" in done.stderr


def snapshot(data: Path) -> dict[str, bytes]:
    """Every file of the keys directory and every grain's key record, by path."""
    files = [*sorted((data / "keys").iterdir()), *(p for p, _ in records(data))]
    return {str(p): p.read_bytes() for p in files if p.is_file()}


def test_a_damaged_record_stops_the_rotation_before_anything_is_written(template):
    root = make_runtime_root()
    try:
        shutil.copytree(template / "data", root / "data", symlinks=True, dirs_exist_ok=True)
        data = root / "data"
        damaged = data / "grains" / GRAINS[-1] / "key"  # the last one: others come first
        doc = json.loads(damaged.read_text())
        doc["wraps"] = {k: "AAAA" + v[4:] for k, v in doc["wraps"].items()}
        damaged.write_text(json.dumps(doc))
        before = snapshot(data)
        done = subprocess.run(rotate_cmd(root), capture_output=True, text=True,
                              env={"PATH": os.environ["PATH"]}, timeout=60)
        assert done.returncode == 5
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Nothing was changed" in lines[0]
        assert str(damaged) in lines[0] and "Traceback" not in done.stderr
        assert snapshot(data) == before  # no kek.new, no extra wrap anywhere
    finally:
        remove_tree(root)


def test_a_write_failing_midway_takes_back_what_the_rotation_wrote(template):
    """A record that cannot be rewritten (its directory made immutable) fails the
    rotation in step 2: the wraps already added are taken back, kek.new removed."""
    root = make_runtime_root()
    stuck = root / "data" / "grains" / GRAINS[1]
    try:
        shutil.copytree(template / "data", root / "data", symlinks=True, dirs_exist_ok=True)
        data = root / "data"
        before = snapshot(data)
        subprocess.run(["chattr", "+i", str(stuck)], check=True)
        done = subprocess.run(rotate_cmd(root), capture_output=True, text=True,
                              env={"PATH": os.environ["PATH"]}, timeout=60)
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
        assert done.returncode == 5 and "Traceback" not in done.stderr
        assert done.stderr.strip() == (f"sandhaven: Nothing was changed: {stuck / 'key'} "
                                       "could not be rewritten (Operation not permitted).")
        assert snapshot(data) == before
        check_everything_opens(root)
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=False)
        remove_tree(root)


def test_a_volume_without_a_key_record_is_named_not_passed_over(template):
    root = make_runtime_root()
    try:
        shutil.copytree(template / "data", root / "data", symlinks=True, dirs_exist_ok=True)
        lost = root / "data" / "grains" / GRAINS[0] / "key"
        lost.unlink()
        done = subprocess.run(rotate_cmd(root), capture_output=True, text=True,
                              env={"PATH": os.environ["PATH"]}, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "3 volume keys re-wrapped" in done.stdout  # the private area, g2 and g3
        warning = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
        assert warning == [
            f"warning: grain {GRAINS[0]} has an encrypted volume but no key record ({lost}): "
            "no key opens it. Restore that file from a backup of the data directory, or "
            "purge the grain."]
    finally:
        remove_tree(root)
