"""Grain volumes on real gocryptfs: create, mount, unmount, crypto-shredding, and the
one-line errors when the host cannot run them."""

from __future__ import annotations

import os
import secrets
import signal
from pathlib import Path

import pytest

from sandhaven.encryption import gocryptfs, wrapped
from sandhaven.encryption.kek import Kek
from sandhaven.encryption.volumes import GrainVolumes
from sandhaven.errors import EncryptionError


def grep_tree(root: Path, marker: bytes) -> list[Path]:
    """Every regular file under ``root`` whose bytes contain ``marker``."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if marker in path.read_bytes():
                    hits.append(path)
            except OSError:
                continue
    return hits


@pytest.fixture
def volumes(tmp_path) -> GrainVolumes:  # type: ignore[misc]
    vols = GrainVolumes(Kek.generate(), tmp_path / "grains", tmp_path / "run" / "volumes",
                        "gocryptfs", allow_other=True)
    yield vols
    vols.unmount_all()


def test_a_volume_holds_plaintext_only_while_mounted(volumes, tmp_path):
    marker = secrets.token_hex(12).encode()
    volumes.create("g1")
    point = volumes.mount("g1")
    assert gocryptfs.is_mounted(point)
    assert volumes.mount_root.stat().st_mode & 0o777 == 0o700
    (point / "notes.txt").write_bytes(b"note " + marker)
    (point / f"name-{marker.decode()}").mkdir()
    volumes.unmount("g1")
    assert not point.exists() and not gocryptfs.is_mounted(point)
    assert grep_tree(tmp_path, marker) == []
    point = volumes.mount("g1")
    assert (point / "notes.txt").read_bytes() == b"note " + marker


def gocryptfs_pids(cipher_dir: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if proc.name.isdigit() and str(cipher_dir).encode() in argv and \
                argv[0].endswith(b"gocryptfs"):
            found.append(int(proc.name))
    return found


def test_a_killed_gocryptfs_is_remounted_never_used_as_a_plain_directory(volumes):
    volumes.create("g1")
    point = volumes.mount("g1")
    (point / "f").write_text("kept")
    pids = gocryptfs_pids(volumes.cipher_dir("g1"))
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)
    with pytest.raises(OSError):  # ENOTCONN: the mount is dead, not an empty directory
        os.listdir(point)
    assert not gocryptfs.is_mounted(point)
    again = volumes.mount("g1")
    assert gocryptfs.is_mounted(again) and (again / "f").read_text() == "kept"


def test_two_volumes_have_their_own_keys(volumes):
    volumes.create("a")
    volumes.create("b")
    a = wrapped.unwrap(volumes.key_path("a"), "grain:a", volumes.kek)
    b = wrapped.unwrap(volumes.key_path("b"), "grain:b", volumes.kek)
    assert a != b
    # b's password does not open a's volume
    with pytest.raises(EncryptionError, match="does not open with its key"):
        gocryptfs.mount("gocryptfs", volumes.cipher_dir("a"), volumes.mount_root / "x", b,
                        allow_other=False)


def test_a_shredded_volume_opens_with_no_key_the_server_holds(volumes, tmp_path):
    volumes.create("gone")
    volumes.create("kept")
    point = volumes.mount("gone")
    (point / "secret").write_text("x" * 1000)
    volumes.shred("gone")
    # What survives on disk (the ciphertext) is left for this test to try.
    assert not volumes.key_path("gone").exists()
    assert not (volumes.cipher_dir("gone") / "gocryptfs.conf").exists()
    assert any(volumes.cipher_dir("gone").iterdir())
    held = [wrapped.unwrap(volumes.key_path(g), f"grain:{g}", volumes.kek)
            for g in ("kept",)]
    for password in held:
        with pytest.raises(EncryptionError):
            gocryptfs.mount("gocryptfs", volumes.cipher_dir("gone"), tmp_path / "try", password,
                            allow_other=False)
    assert not gocryptfs.is_mounted(tmp_path / "try")


def test_legacy_plain_storage_never_starts_encrypted(volumes):
    (volumes.grains_dir / "old" / "var").mkdir(parents=True)
    with pytest.raises(EncryptionError, match="unencrypted storage"):
        volumes.mount("old")


def test_host_checks_name_what_is_missing(tmp_path):
    with pytest.raises(EncryptionError, match="gocryptfs is not installed") as err:
        gocryptfs.check_host(str(tmp_path / "no-gocryptfs"))
    assert "apt-get install gocryptfs" in str(err.value)
    with pytest.raises(EncryptionError, match="FUSE is not available") as err:
        gocryptfs.check_host("gocryptfs", str(tmp_path / "fuse"))
    assert "modprobe fuse" in str(err.value)
    assert gocryptfs.check_host("gocryptfs") == "/usr/bin/gocryptfs"


def test_unmounting_a_busy_volume_ends_its_daemon_without_waiting(volumes):
    """A file still open on the volume (a grain process not yet gone) makes the
    unmount lazy; the daemon would then serve the detached tree on. It is told to
    stop at once: unmount returns quickly and no daemon holds the key."""
    import time

    volumes.create("g1")
    point = volumes.mount("g1")
    (point / "f").write_text("kept")
    held = os.open(point / "f", os.O_RDONLY)
    try:
        pids = gocryptfs_pids(volumes.cipher_dir("g1"))
        assert len(pids) == 1
        t0 = time.monotonic()
        volumes.unmount("g1")
        assert time.monotonic() - t0 < 10
        assert not gocryptfs.is_mounted(point)
        assert gocryptfs_pids(volumes.cipher_dir("g1")) == []
        with pytest.raises(OSError):  # the detached tree is dead, not readable
            os.pread(held, 4, 0)
    finally:
        try:
            os.close(held)
        except OSError:  # closing on a dead FUSE connection fails too; the fd is gone
            pass
    assert (volumes.mount("g1") / "f").read_text() == "kept"
