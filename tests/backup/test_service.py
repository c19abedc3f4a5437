"""Backups through the server: download as the owner, restore as a new grain that
opens and serves its content, and every refusal leaving nothing behind."""

from __future__ import annotations

import io
import json
import time
import zipfile

import pytest

from sandhaven.store.models import Grain
from tests.conftest import GrainServer, bearer
from tests.grains.test_grains import grain_http


def grain_with_note(server: GrainServer, text: str) -> str:
    made = server.client.post("/api/v1/grains", json={
        "app_id": server.app_id, "action": 0, "title": "Été \"notes\"\nline two"})
    gid = made.json()["id"]
    with grain_http(server.run(gid)) as app:
        assert app.post("/", content=text.encode(),
                        headers={"X-Sandstorm-Permissions": "write"}).status_code == 200
    return gid


def grain_dirs(server: GrainServer) -> set[str]:
    return {p.name for p in server.services.grains.grains_dir.iterdir()}


def grain_count(server: GrainServer) -> int:
    with server.services.store.read() as s:
        return s.query(Grain).count()


def test_backup_and_restore_through_the_api(grain_server: GrainServer):
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    gid = grain_with_note(grain_server, "remember the milk")
    got = grain_server.client.get(f"/api/v1/grains/{gid}/backup")
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/zip"
    assert int(got.headers["content-length"]) == len(got.content)
    disposition = got.headers["content-disposition"]
    assert "\n" not in disposition and 'filename="Ete _notes_ line two.zip"' in disposition
    assert "filename*=UTF-8''%C3%89t%C3%A9%20_notes_%20line%20two.zip" in disposition
    meta = json.loads(zipfile.ZipFile(io.BytesIO(got.content)).read("metadata.json"))
    assert meta["app_id"] == grain_server.app_id and meta["title"].startswith("Été")

    restored = grain_server.client.post("/api/v1/grains/restore", content=got.content,
                                        headers={"Content-Type": "application/zip"})
    assert restored.status_code == 201, restored.text
    new_id = restored.json()["id"]
    assert new_id != gid and restored.json()["title"] == "Été \"notes\" line two"
    with grain_http(grain_server.run(new_id)) as app:
        assert "remember the milk" in app.get("/").text
        # The restored files belong to the grain's user: the app can change them.
        assert app.post("/", content=b"and eggs",
                        headers={"X-Sandstorm-Permissions": "write"}).status_code == 200
        assert "and eggs" in app.get("/").text
    # The original grain is untouched and still opens.
    with grain_http(grain_server.run(gid)) as app:
        assert "remember the milk" in app.get("/").text


def test_only_the_owner_may_back_up(grain_server: GrainServer):
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    gid = grain_with_note(grain_server, "private")
    other = grain_server.browser()
    bearer(other, grain_server.services, "b@example.org", "Bob")
    assert other.get(f"/api/v1/grains/{gid}/backup").status_code == 404  # not visible
    grain_server.client.post(f"/api/v1/grains/{gid}/shares", json={
        "email": "b@example.org", "role": 0})
    refused = other.get(f"/api/v1/grains/{gid}/backup")
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "Only the owner of a grain can back it up."


@pytest.mark.parametrize("damage,status,message", [
    (lambda b: b[: len(b) // 2], 400, "not a complete zip"),
    (lambda b: b"PK" + b"\0" * 100, 400, "not a complete zip"),
])
def test_a_bad_backup_leaves_nothing(grain_server: GrainServer, damage, status, message):
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    gid = grain_with_note(grain_server, "x")
    good = grain_server.client.get(f"/api/v1/grains/{gid}/backup").content
    before_dirs, before_rows = grain_dirs(grain_server), grain_count(grain_server)
    bad = grain_server.client.post("/api/v1/grains/restore", content=damage(good))
    assert bad.status_code == status and message in bad.json()["error"]["message"]
    assert grain_dirs(grain_server) == before_dirs
    assert grain_count(grain_server) == before_rows


def rewrite_metadata(data: bytes, change) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for info in src.infolist():
            content = src.read(info)
            if info.filename == "metadata.json":
                meta = json.loads(content)
                change(meta)
                content = json.dumps(meta).encode()
            zf.writestr(info, content)
    return out.getvalue()


def test_a_backup_of_an_app_not_installed_names_it(grain_server: GrainServer):
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    gid = grain_with_note(grain_server, "x")
    good = grain_server.client.get(f"/api/v1/grains/{gid}/backup").content
    before = grain_dirs(grain_server)
    other_app = rewrite_metadata(good, lambda m: m.update(app_id="b" * 52, app_title="Pads"))
    got = grain_server.client.post("/api/v1/grains/restore", content=other_app)
    assert got.status_code == 409
    assert got.json()["error"]["message"] == (
        f"This backup needs 'Pads' 1.0.0 or newer (app ID {'b' * 52}); install it first.")
    newer = rewrite_metadata(good, lambda m: m.update(app_version=99, marketing_version="9.9"))
    got = grain_server.client.post("/api/v1/grains/restore", content=newer)
    assert got.status_code == 409
    assert "9.9 or newer; version 1.0.0 is installed. Update the app first." in (
        got.json()["error"]["message"])
    assert grain_dirs(grain_server) == before


def test_a_backup_past_the_quota_is_refused(grain_server: GrainServer):
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    gid = grain_with_note(grain_server, "x" * 4096)
    good = grain_server.client.get(f"/api/v1/grains/{gid}/backup").content
    before = grain_dirs(grain_server)
    grain_server.services.backups.quota_bytes = lambda: 1  # one byte: already past it
    got = grain_server.client.post("/api/v1/grains/restore", content=good)
    assert got.status_code == 507 and "of your 1 MiB" in got.json()["error"]["message"]
    assert grain_dirs(grain_server) == before


def test_staging_left_by_a_killed_restore_is_removed_at_start(grain_server: GrainServer):
    stale = grain_server.services.grains.grains_dir / ".restore-0123456789abcdef" / "var"
    stale.mkdir(parents=True)
    (stale / "half").write_text("half a grain")
    assert grain_server.services.backups.clean_staging() == 1
    assert not stale.parent.exists()


def test_a_half_made_volume_of_a_killed_restore_is_destroyed_at_start(
        grain_server: GrainServer):
    """A restore killed while it filled a new grain volume: the volume it named is
    unmounted and destroyed, key first; grains that exist are never touched."""
    grains = grain_server.services.grains
    assert grains.volumes is not None
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    kept = grain_with_note(grain_server, "keep me")
    half = "HalfMadeGrain0123456789"
    staging = grains.grains_dir / ".restore-fedcba9876543210"
    staging.mkdir()
    (staging / "target").write_text(half)
    grains.volumes.create(half)
    grains.volumes.mount_at(half, staging / "var")
    (staging / "var" / "partial").write_text("half a grain")
    other = grains.grains_dir / ".restore-0000000000000000"
    other.mkdir()
    (other / "target").write_text(kept)  # names an existing grain: left alone
    assert grain_server.services.backups.clean_staging() == 2
    assert not staging.exists() and not other.exists()
    assert not (grains.grains_dir / half).exists()
    with grain_http(grain_server.run(kept)) as app:
        assert "keep me" in app.get("/").text


def test_restore_needs_a_logged_in_user(grain_server: GrainServer):
    got = grain_server.client.post("/api/v1/grains/restore", content=b"PK")
    assert got.status_code == 401



@pytest.fixture
def small_disk():
    """A data directory on a tmpfs of 64 MiB and 1,500 inodes."""
    import subprocess

    from sandhaven.sandbox.testing import make_runtime_root, remove_tree

    root = make_runtime_root()
    disk = root / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,nr_inodes=1500,mode=0700",
                    "tmpfs", str(disk)], check=True)
    try:
        yield root, disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)
        remove_tree(root)


def test_a_disk_that_fills_during_restore_leaves_nothing(small_disk, tmp_path):
    import asyncio
    from datetime import UTC, datetime

    from sandhaven.backup.writer import write_backup
    from sandhaven.config import load_settings
    from sandhaven.errors import StorageFull
    from sandhaven.packages.keys import SigningKey
    from sandhaven.packages.testing import build_hello
    from sandhaven.services import Services

    root, disk = small_disk
    services = Services.build(load_settings(environ={}, overrides={"data_dir": str(disk)}))
    try:
        installed = services.packages.install(build_hello(root, SigningKey.generate()))
        ann = services.identity.users.create("ann@example.org", "Ann")
        # 2,000 empty files: no data to count, but more inodes than the disk has left.
        tree = tmp_path / "var"
        tree.mkdir()
        for i in range(2000):
            (tree / f"f{i}").touch()
        backup = tmp_path / "many.zip"
        with open(backup, "wb") as out:
            write_backup(tree, b"", {
                "app_id": installed.app_id, "app_version": 1, "package_id": installed.package_id,
                "title": "Many files", "created_at": datetime.now(UTC),
                "backed_up_at": datetime.now(UTC)}, out)
        before = sorted(p.name for p in services.grains.grains_dir.iterdir()) \
            if services.grains.grains_dir.exists() else []
        with open(backup, "rb") as f, pytest.raises(StorageFull, match="disk filled up"):
            asyncio.run(services.backups.restore(ann.id, f))
        after = sorted(p.name for p in services.grains.grains_dir.iterdir())
        assert after == before
        assert services.grains.list(ann.id) == []
    finally:
        services.store.close()


def test_an_encrypted_backup_opens_with_gpg_and_restores_with_its_passphrase(
        grain_server: GrainServer, tmp_path):
    import subprocess

    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    gid = grain_with_note(grain_server, "the secret recipe")
    got = grain_server.client.post(f"/api/v1/grains/{gid}/backup",
                                    json={"passphrase": "correct horse ☃"})
    assert got.status_code == 200 and got.headers["content-type"] == "application/pgp-encrypted"
    assert ".zip.gpg" in got.headers["content-disposition"]
    assert b"the secret recipe" not in got.content and not got.content.startswith(b"PK")
    # The standard tool opens it with the passphrase alone.
    (tmp_path / "b.zip.gpg").write_bytes(got.content)
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    opened = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback",
         "--passphrase", "correct horse ☃", "--decrypt", str(tmp_path / "b.zip.gpg")],
        capture_output=True, check=True)
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
    assert zipfile.ZipFile(io.BytesIO(opened.stdout)).testzip() is None
    assert b"the secret recipe" in opened.stdout  # stored, so readable in the zip

    before = grain_dirs(grain_server)
    missing = grain_server.client.post("/api/v1/grains/restore", content=got.content)
    assert missing.status_code == 400
    assert missing.json()["error"]["message"] == "This backup is encrypted: give its passphrase."
    wrong = grain_server.client.post("/api/v1/grains/restore", content=got.content,
                                     headers={"Sandhaven-Backup-Passphrase": "not it at all"})
    assert wrong.status_code == 400 and "passphrase does not open" in (
        wrong.json()["error"]["message"])
    # Cut short or damaged past the session key: what that means, not gpg's words.
    for damaged in (got.content[: len(got.content) // 2],
                    got.content[:-40] + bytes(b ^ 0x5A for b in got.content[-40:])):
        cut = grain_server.client.post("/api/v1/grains/restore", content=damaged,
                                       headers={"Sandhaven-Backup-Passphrase":
                                                "correct%20horse%20%E2%98%83"})
        assert cut.status_code == 400
        assert cut.json()["error"]["message"] == (
            "The encrypted backup is damaged or incomplete: it cannot be decrypted.")
    garbled = grain_server.client.post("/api/v1/grains/restore", content=got.content,
                                       headers={"Sandhaven-Backup-Passphrase": "%ff%fe%fd"})
    assert garbled.status_code == 400 and "percent-encoded" in (
        garbled.json()["error"]["message"])
    assert grain_dirs(grain_server) == before
    right = grain_server.client.post("/api/v1/grains/restore", content=got.content, headers={
        "Sandhaven-Backup-Passphrase": "correct%20horse%20%E2%98%83"})
    assert right.status_code == 201, right.text
    with grain_http(grain_server.run(right.json()["id"])) as app:
        assert "the secret recipe" in app.get("/").text
    short = grain_server.client.post(f"/api/v1/grains/{gid}/backup", json={"passphrase": "short"})
    assert short.status_code == 422


def test_only_an_admin_restores_other_peoples_identities(grain_server: GrainServer):
    """The file's uploader chooses the per-grain IDs in it: a user keeps the one
    listed for themselves; other people's are kept only when an admin restores."""
    from sqlalchemy import select

    from sandhaven.store.models import GrainIdentity

    services = grain_server.services
    bearer(grain_server.client, services, "a@example.org", "Ann")
    services.identity.users.create("b@example.org", "Bob")
    gid = grain_with_note(grain_server, "x")
    good = grain_server.client.get(f"/api/v1/grains/{gid}/backup").content
    ids = {"a@example.org": "a1" * 16, "b@example.org": "b2" * 16}

    def identities_of(grain_id: str) -> dict[str, str]:
        with services.store.read() as s:
            rows = s.execute(select(GrainIdentity.user_id, GrainIdentity.identity_id)
                             .where(GrainIdentity.grain_id == grain_id)).all()
        return {services.identity.users.get(u).email: i for u, i in rows}

    listed = rewrite_metadata(good, lambda m: m.update(identities=[
        {"email": e, "name": "", "identity_id": i} for e, i in ids.items()]))
    as_ann = grain_server.client.post("/api/v1/grains/restore", content=listed)
    assert as_ann.status_code == 201
    assert identities_of(as_ann.json()["id"]) == {"a@example.org": ids["a@example.org"]}

    admin = grain_server.browser()
    services.identity.users.create("root@example.org", "Root", is_admin=True)
    bearer(admin, services, "root@example.org", "Root")
    fresh = {"a@example.org": "c3" * 16, "b@example.org": "d4" * 16}
    listed = rewrite_metadata(good, lambda m: m.update(identities=[
        {"email": e, "name": "", "identity_id": i} for e, i in fresh.items()]))
    as_admin = admin.post("/api/v1/grains/restore", content=listed)
    assert as_admin.status_code == 201
    assert identities_of(as_admin.json()["id"]) == fresh


def test_a_backup_lets_requests_inside_the_grain_finish_first(grain_server: GrainServer):
    """New requests wait while a backup holds the grain; one already inside it is
    not cut off by the stop."""
    services = grain_server.services
    bearer(grain_server.client, services, "a@example.org", "Ann")
    gid = grain_with_note(grain_server, "busy")
    supervisor = services.supervisor
    supervisor.request_started(gid)  # as the gateway does for a request in flight
    portal = grain_server.client.portal

    async def back_up() -> int:
        import tempfile
        with tempfile.TemporaryFile() as f:
            await services.backups.backup(services.grains.view(gid).owner_id, gid, f)
            return f.tell()
    future = portal.start_task_soon(back_up)
    try:
        deadline = time.monotonic() + 30
        while gid not in services.grains._held:  # the backup holds the grain…
            assert time.monotonic() < deadline and not future.done()
            time.sleep(0.01)
        # …and waits for the request: the grain is still running meanwhile.
        assert portal.call(lambda: supervisor.status(gid).value) == "running"
        assert not future.done()
    finally:
        portal.call(supervisor.request_finished, gid)
    assert future.result(timeout=60) > 0
