"""Grains through the API and shell of an in-process server whose supervisor runs
real bubblewrap sandboxes (the lifespan starts it), with the Hello example app."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from sandhaven.store import utcnow
from sandhaven.store.models import Grain
from tests.conftest import GrainServer, bearer, login_as


def _new(grain_server: GrainServer, title: str = "My note", action: int | str = 0):  # type: ignore[no-untyped-def]
    return grain_server.client.post("/api/v1/grains", json={"app_id": grain_server.app_id,
                                                      "action": action, "title": title})


def grain_http(sock: Path) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://sandbox")


def test_create_run_stop_and_continue_keep_the_grains_storage(grain_server):
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    made = _new(grain_server, "Shopping list", "note")
    assert made.status_code == 201
    grain = made.json()
    assert grain["state"] == "stopped" and grain["title"] == "Shopping list"
    gid = grain["id"]
    sock = grain_server.run(gid)
    assert grain_server.client.get(f"/api/v1/grains/{gid}").json()["state"] == "running"
    with grain_http(sock) as app:
        assert app.post("/", content="milk", headers={"X-Sandstorm-Permissions": "write"}
                        ).status_code == 200
        assert app.get("/").json()["note"] == "milk"
    stopped = grain_server.client.post(f"/api/v1/grains/{gid}/stop")
    assert stopped.json()["state"] == "stopped"
    with grain_server.services.store.read() as s:
        assert s.get(Grain, gid).initialized is True
    # The next start runs the continue command on the same storage.
    with grain_http(grain_server.run(gid)) as app:
        assert app.get("/").json()["note"] == "milk"
    listed = grain_server.client.get("/api/v1/grains").json()
    assert [g["id"] for g in listed] == [gid]
    assert listed[0]["size_bytes"] > 0 and listed[0]["last_used_at"]


def test_rename_trash_restore_and_purge(grain_server):
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    gid = _new(grain_server).json()["id"]
    grain_server.run(gid)
    renamed = grain_server.client.patch(f"/api/v1/grains/{gid}", json={"title": "Renée's notes"})
    assert renamed.json()["title"] == "Renée's notes"
    trashed = grain_server.client.delete(f"/api/v1/grains/{gid}")
    assert trashed.status_code == 200 and trashed.json()["trashed_at"]
    assert trashed.json()["state"] == "stopped"
    assert grain_server.client.get("/api/v1/grains").json() == []
    assert [g["id"] for g in grain_server.client.get("/api/v1/grains?trash=true").json()] == [gid]
    with pytest.raises(Exception, match="No grain"):
        grain_server.run(gid)  # nothing starts a grain in the trash
    assert grain_server.client.post(f"/api/v1/grains/{gid}/restore").status_code == 200
    assert grain_server.client.delete(f"/api/v1/grains/{gid}?forever=true").status_code == 409
    grain_server.client.delete(f"/api/v1/grains/{gid}")
    storage = grain_server.services.grains.grains_dir / gid  # its volume on disk
    assert storage.exists()
    assert grain_server.client.delete(f"/api/v1/grains/{gid}?forever=true").status_code == 204
    assert not storage.exists()
    assert grain_server.client.get(f"/api/v1/grains/{gid}").status_code == 404


def test_trash_is_purged_after_its_retention(grain_server):
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    old = _new(grain_server, "old").json()["id"]
    recent = _new(grain_server, "recent").json()["id"]
    grain_server.client.delete(f"/api/v1/grains/{old}")
    grain_server.client.delete(f"/api/v1/grains/{recent}")
    with grain_server.services.store.session() as s:
        s.execute(update(Grain).where(Grain.id == old)
                  .values(trashed_at=utcnow() - timedelta(days=31)))
    purged = grain_server.client.portal.call(grain_server.services.grains.purge_expired)
    assert purged == 1
    trash = grain_server.client.get("/api/v1/grains?trash=true").json()
    assert [g["id"] for g in trash] == [recent]
    assert not (grain_server.services.grains.grains_dir / old).exists()


def test_grains_of_others_do_not_exist(grain_server):
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    gid = _new(grain_server).json()["id"]
    other = grain_server.browser()
    bearer(other, grain_server.services, "b@example.org", "Bob")
    for method, path in [("GET", f"/api/v1/grains/{gid}"), ("PATCH", f"/api/v1/grains/{gid}"),
                         ("DELETE", f"/api/v1/grains/{gid}"),
                         ("POST", f"/api/v1/grains/{gid}/stop"),
                         ("GET", f"/api/v1/grains/{gid}/log")]:
        answer = other.request(method, path, json={"title": "x"})
        assert answer.status_code in (403, 404), (method, path)
    assert other.get("/api/v1/grains").json() == []
    assert grain_server.client.get(f"/api/v1/grains/{gid}").json()["title"] == "My note"


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"app_id": "nope", "action": 0, "title": "x"}, 404, "No app"),
    ({"action": 7, "title": "x"}, 400, "is not one of them"),
    ({"action": "spreadsheet", "title": "x"}, 400, "no action 'spreadsheet'"),
    ({"action": 0, "title": "  "}, 400, "Title is empty"),
    ({"action": 0, "title": "a\x00b"}, 400, "control characters"),
    ({"action": 0, "title": "x" * 501}, 422, "title"),
    ({"action": True, "title": "x"}, 400, "action"),
])
def test_bad_grain_requests_create_nothing(grain_server, body, status, needle):
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    body = {"app_id": grain_server.app_id, **body}
    answer = grain_server.client.post("/api/v1/grains", json=body)
    assert answer.status_code == status
    assert needle in answer.json()["error"]["message"]
    assert grain_server.client.get("/api/v1/grains").json() == []
    grains_dir = grain_server.services.grains.grains_dir
    assert not grains_dir.exists() or list(grains_dir.iterdir()) == []


def test_shell_pages_create_and_list_grains(grain_server):
    login_as(grain_server.client, grain_server.services, "a@example.org", "Ann")
    from sandhaven.testing import csrf_from  # noqa: I001

    apps = grain_server.client.get("/apps")
    assert "New note" in apps.text
    made = grain_server.client.post("/grains/new", data={
        "csrf_token": csrf_from(apps.text), "app_id": grain_server.app_id, "action": "0",
        "title": "Untitled note"})
    assert made.status_code == 303
    gid = made.headers["location"].rsplit("/", 1)[1]
    page = grain_server.client.get(f"/grains/{gid}")
    assert page.status_code == 200 and "Untitled note" in page.text
    listing = grain_server.client.get("/grains").text
    assert "Untitled note" in listing and "/apps/" in listing
    token = csrf_from(listing)
    grain_server.client.post(f"/grains/{gid}/trash", data={"csrf_token": token})
    assert "Untitled note" in grain_server.client.get("/grains/trash").text
    grain_server.client.post(f"/grains/{gid}/restore", data={"csrf_token": token})
    assert "Untitled note" in grain_server.client.get("/grains").text


def test_a_crashing_grain_is_shown_crashed_with_its_log(grain_server):
    """An app whose command dies at once: the start fails, the grain is marked
    crashed, and its page says so with the log the app wrote."""
    from sandhaven.packages.keys import SigningKey
    from sandhaven.packages.testing import build_raw, hello_entries, hello_manifest
    from sandhaven.testing import csrf_from

    gs = grain_server
    base = hello_manifest(title="Crasher")
    command = {"argv": ["/usr/bin/python3", "-c",
                        "import sys; print('disk full: cannot open /var/db'); sys.exit(3)"],
               "env": {}}
    raw = base.model_dump(mode="json")
    raw["actions"][0]["command"] = command
    raw["continue_command"] = command
    from sandhaven.packages.manifest import validate_manifest

    spk = build_raw(gs.services.grains.grains_dir.parent / "crasher.spk", SigningKey.generate(),
                    validate_manifest(raw), hello_entries)
    app_id = gs.services.packages.install(spk).app_id
    login_as(gs.client, gs.services, "a@example.org", "Ann")
    page = gs.client.get("/apps")
    made = gs.client.post("/grains/new", data={"csrf_token": csrf_from(page.text),
                                               "app_id": app_id, "action": "0", "title": "C"})
    gid = made.headers["location"].rsplit("/", 1)[1]
    with pytest.raises(Exception):  # noqa: B017 - the supervisor's own start failure
        gs.run(gid)
    state = gs.client.get(f"/api/v1/grains/{gid}",
                          headers={"X-CSRF-Token": csrf_from(page.text)}).json()
    assert state["state"] == "crashed" and state["crash_reason"]
    shown = gs.client.get(f"/grains/{gid}")
    assert "This grain crashed" in shown.text
    assert "disk full: cannot open /var/db" in shown.text
    log = gs.client.get(f"/grains/{gid}/log")
    assert log.status_code == 200 and "disk full" in log.text
    assert log.headers["content-type"].startswith("text/plain")
    other = gs.browser()
    login_as(other, gs.services, "b@example.org", "Bob")
    assert other.get(f"/grains/{gid}/log").status_code == 404


def test_a_grain_moves_to_the_newest_version_at_its_next_start(grain_server):
    from sandhaven.packages.keys import SigningKey
    from sandhaven.packages.testing import build_hello

    gs = grain_server
    bearer(gs.client, gs.services, "a@example.org", "Ann")
    key = SigningKey.generate()
    v1 = gs.services.packages.install(build_hello(gs.services.grains.grains_dir.parent / "v1",
                                                  key, version=1))
    gid = _new_of(gs, v1.app_id)
    gs.run(gid)
    with grain_http(gs.run(gid)) as app:
        app.post("/", content="kept", headers={"X-Sandstorm-Permissions": "write"})
    v2 = gs.services.packages.install(build_hello(gs.services.grains.grains_dir.parent / "v2",
                                                  key, version=2, marketing_version="2.0"))
    assert v2.app_id == v1.app_id and v2.package_id != v1.package_id
    # Running grains keep their version until they stop.
    assert gs.client.get(f"/api/v1/grains/{gid}").json()["package_id"] == v1.package_id
    gs.client.post(f"/api/v1/grains/{gid}/stop")
    with grain_http(gs.run(gid)) as app:
        assert app.get("/").json()["note"] == "kept"
    assert gs.client.get(f"/api/v1/grains/{gid}").json()["package_id"] == v2.package_id


def _new_of(gs: GrainServer, app_id: str) -> str:
    answer = gs.client.post("/api/v1/grains", json={"app_id": app_id, "title": "v"})
    assert answer.status_code == 201
    return answer.json()["id"]
