"""Backups in the shell: the grain bar's Back up button and the Grains page's
restore form."""

from __future__ import annotations

import io
import zipfile

from sandhaven.testing import csrf_from
from tests.conftest import GrainServer, login_as


def write_file(services, grain_id: str, name: str, text: str) -> None:  # type: ignore[no-untyped-def]
    """Into a stopped grain's files: its encrypted volume, mounted for the write."""
    volumes = services.grains.volumes
    (volumes.mount(grain_id) / name).write_text(text)
    volumes.unmount(grain_id)


def read_file(services, grain_id: str, name: str) -> str:  # type: ignore[no-untyped-def]
    volumes = services.grains.volumes
    try:
        return (volumes.mount(grain_id) / name).read_text()
    finally:
        volumes.unmount(grain_id)


def test_back_up_from_the_grain_bar_and_restore_from_the_grains_page(
        grain_server: GrainServer):
    client, services = grain_server.client, grain_server.services
    user_id = login_as(client, services, "ann@example.org", "Ann")
    grain = services.grains.create(user_id, grain_server.app_id, 0, "Recipes")
    write_file(services, grain.id, "soup.txt", "leek and potato")
    page = client.get(f"/grains/{grain.id}").text
    assert f'action="/grains/{grain.id}/backup"' in page
    got = client.post(f"/grains/{grain.id}/backup", data={"csrf_token": csrf_from(page)})
    assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    assert 'filename="Recipes.zip"' in got.headers["content-disposition"]
    assert zipfile.ZipFile(io.BytesIO(got.content)).read("data/soup.txt") == b"leek and potato"
    # Without the form's token, no backup (and no stopped grain).
    assert client.post(f"/grains/{grain.id}/backup").status_code == 403

    grains_page = client.get("/grains").text
    assert "Restore a backup" in grains_page
    token = csrf_from(grains_page)
    restored = client.post(f"/grains/restore-backup?csrf_token={token}",
                           files={"backup": ("Recipes.zip", got.content, "application/zip")})
    assert restored.status_code == 303
    location = restored.headers["location"]
    assert location.startswith("/grains/") and location.endswith("?done=restored-backup")
    new_id = location.split("/")[2].split("?")[0]
    assert new_id != grain.id
    assert read_file(services, new_id, "soup.txt") == "leek and potato"
    assert "Backup restored as a new grain." in client.get(location).text


def test_a_bad_upload_is_answered_on_the_grains_page(grain_server: GrainServer):
    client, services = grain_server.client, grain_server.services
    login_as(client, services, "ann@example.org", "Ann")
    before = {p.name for p in services.grains.grains_dir.iterdir()} \
        if services.grains.grains_dir.exists() else set()
    token = csrf_from(client.get("/grains").text)
    bad = client.post(f"/grains/restore-backup?csrf_token={token}",
                      files={"backup": ("holiday.zip", b"not a zip", "application/zip")})
    assert bad.status_code == 400
    assert "holiday.zip: Not a grain backup: the file is not a complete zip" in bad.text
    empty = client.post(f"/grains/restore-backup?csrf_token={token}",
                        files={"backup": ("", b"", "application/zip")})
    assert empty.status_code == 400 and "Choose a backup file (.zip) to restore." in empty.text
    after = {p.name for p in services.grains.grains_dir.iterdir()} \
        if services.grains.grains_dir.exists() else set()
    assert after == before


def test_an_encrypted_backup_from_the_grain_bar(grain_server: GrainServer):
    client, services = grain_server.client, grain_server.services
    user_id = login_as(client, services, "ann@example.org", "Ann")
    grain = services.grains.create(user_id, grain_server.app_id, 0, "Diary")
    write_file(services, grain.id, "day1.txt", "dear diary")
    token = csrf_from(client.get(f"/grains/{grain.id}").text)
    short = client.post(f"/grains/{grain.id}/backup", data={"csrf_token": token,
                                                             "passphrase": "short"})
    assert short.status_code == 400
    assert "The passphrase must have at least 8 characters." in short.text
    got = client.post(f"/grains/{grain.id}/backup", data={"csrf_token": token,
                                                           "passphrase": "open sesame!"})
    assert got.status_code == 200 and b"dear diary" not in got.content
    assert 'filename="Diary.zip.gpg"' in got.headers["content-disposition"]
    form = csrf_from(client.get("/grains").text)
    wrong = client.post(f"/grains/restore-backup?csrf_token={form}",
                        data={"passphrase": "not the one"},
                        files={"backup": ("Diary.zip.gpg", got.content, "application/pgp")})
    assert wrong.status_code == 400 and "passphrase does not open" in wrong.text
    right = client.post(f"/grains/restore-backup?csrf_token={form}",
                        data={"passphrase": "open sesame!"},
                        files={"backup": ("Diary.zip.gpg", got.content, "application/pgp")})
    assert right.status_code == 303
