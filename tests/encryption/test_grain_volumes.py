"""Grains on encrypted volumes in a server: the plaintext exists only while a grain
runs, in a place only root reaches; a volume that does not open keeps its grain
stopped; purging destroys the key before the ciphertext."""

from __future__ import annotations

import os
import shutil
import stat
import time

import pytest

from sandhaven.encryption import gocryptfs, wrapped
from sandhaven.errors import EncryptionError, GrainCrashed, GrainStartFailed
from tests.conftest import GrainServer, bearer


def _new(gs: GrainServer) -> str:
    bearer(gs.client, gs.services, "a@example.org", "Ann")
    made = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"})
    assert made.status_code == 201, made.text
    return made.json()["id"]


def test_the_plaintext_is_mounted_only_while_the_grain_runs(grain_server):
    gs = grain_server
    gid = _new(gs)
    volumes = gs.services.grains.volumes
    assert volumes is not None
    point = volumes.mountpoint(gid)
    assert not point.exists()
    gs.run(gid)
    assert gocryptfs.is_mounted(point)
    assert stat.S_IMODE(os.stat(volumes.mount_root).st_mode) == 0o700
    assert os.stat(volumes.mount_root).st_uid == 0
    gs.client.post(f"/api/v1/grains/{gid}/stop")
    assert not gocryptfs.is_mounted(point) and not point.exists()


def test_a_grain_whose_volume_does_not_open_does_not_start(grain_server):
    gs = grain_server
    gid = _new(gs)
    volumes = gs.services.grains.volumes
    key = volumes.key_path(gid)
    doc = key.read_bytes()
    key.write_bytes(doc.replace(b'"grain:', b'"grain:x'))  # damaged record
    with pytest.raises(GrainStartFailed, match="encrypted storage cannot be opened"):
        gs.run(gid)
    assert not gocryptfs.is_mounted(volumes.mountpoint(gid))
    # The owner sees what it means (no server paths); requests get a clean 503.
    view = gs.client.get(f"/api/v1/grains/{gid}").json()
    assert view["state"] == "crashed"
    assert view["crash_reason"].startswith("Its encrypted storage cannot be opened")
    assert str(gs.services.settings.data_dir) not in view["crash_reason"]
    key.write_bytes(doc)
    deadline = time.monotonic() + 30
    while True:  # a failed start backs off like a crash (1 s here), then starts
        try:
            gs.run(gid)
            break
        except GrainCrashed as exc:
            assert time.monotonic() < deadline
            time.sleep(exc.retry_after or 0.1)
    assert gocryptfs.is_mounted(volumes.mountpoint(gid))


def test_purge_destroys_the_key_before_the_ciphertext(grain_server):
    gs = grain_server
    gid = _new(gs)
    volumes = gs.services.grains.volumes
    gs.run(gid)
    held_before = {g.name for g in volumes.grains_dir.iterdir()}
    gs.client.delete(f"/api/v1/grains/{gid}")
    # Keep a copy of the ciphertext, as blocks surviving on disk would.
    survivor = volumes.grains_dir.parent / "survivor"
    shutil.copytree(volumes.cipher_dir(gid), survivor)
    assert gs.client.delete(f"/api/v1/grains/{gid}?forever=true").status_code == 204
    assert not (volumes.grains_dir / gid).exists()
    assert gid in held_before
    # Even with gocryptfs.conf surviving too (worst case), no password the server
    # still holds opens it: its own was wrapped only in the destroyed record.
    held = [wrapped.unwrap(top / "key", f"grain:{top.name}", volumes.kek)
            for top in volumes.grains_dir.iterdir()]
    held.append(wrapped.unwrap(volumes.grains_dir.parent / "keys" / "private.key", "private",
                               volumes.kek))
    for password in held:
        with pytest.raises(EncryptionError):
            gocryptfs.mount("gocryptfs", survivor, volumes.grains_dir.parent / "try", password,
                            allow_other=False)
