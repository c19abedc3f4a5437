"""Grains through the API and shell of an in-process server whose supervisor runs
real bubblewrap sandboxes (the lifespan starts it), with the Hello example app."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from sandhaven.config import load_settings
from sandhaven.packages.keys import SigningKey
from sandhaven.packages.testing import build_hello
from sandhaven.sandbox.testing import make_runtime_root, remove_tree
from sandhaven.server import build_app
from sandhaven.services import Services
from sandhaven.store import utcnow
from sandhaven.store.models import Grain
from tests.conftest import login_as


class Server:
    def __init__(self, services: Services, client: TestClient, app_id: str) -> None:
        self.services, self.client, self.app_id = services, client, app_id

    def run(self, grain_id: str) -> Path:
        """Start the grain on the server's own loop; returns its app socket."""
        return self.client.portal.call(self.services.grains.ensure_running, grain_id)


@pytest.fixture
def server() -> Iterator[Server]:
    root = make_runtime_root()  # reachable by the grain user, unlike pytest's tmp_path
    settings = load_settings(environ={}, overrides={
        "data_dir": str(root / "data"), "sandbox.runtime_dir": str(root / "run")})
    services = Services.build(settings)
    spk = build_hello(root, SigningKey.generate())
    app_id = services.packages.install(spk).app_id
    try:
        with TestClient(build_app(services), base_url="http://localhost:6080",
                        follow_redirects=False) as client:
            yield Server(services, client, app_id)
    finally:
        services.store.close()
        remove_tree(root)


def bearer(client: TestClient, services: Services, email: str, name: str) -> None:
    """Authenticate ``client`` with a personal API token of a (new) user."""
    user = services.identity.users.find_by_email(email) or services.identity.users.create(
        email, name)
    _, token = services.identity.tokens.create(user.id, "test")
    client.headers["Authorization"] = f"Bearer {token}"


def _new(server: Server, title: str = "My note", action: int | str = 0):  # type: ignore[no-untyped-def]
    return server.client.post("/api/v1/grains", json={"app_id": server.app_id,
                                                      "action": action, "title": title})


def grain_http(sock: Path) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://sandbox")


def test_create_run_stop_and_continue_keep_the_grains_storage(server):
    bearer(server.client, server.services, "a@example.org", "Ann")
    made = _new(server, "Shopping list", "note")
    assert made.status_code == 201
    grain = made.json()
    assert grain["state"] == "stopped" and grain["title"] == "Shopping list"
    gid = grain["id"]
    sock = server.run(gid)
    assert server.client.get(f"/api/v1/grains/{gid}").json()["state"] == "running"
    with grain_http(sock) as app:
        assert app.post("/", content="milk", headers={"X-Sandstorm-Permissions": "write"}
                        ).status_code == 200
        assert app.get("/").json()["note"] == "milk"
    stopped = server.client.post(f"/api/v1/grains/{gid}/stop")
    assert stopped.json()["state"] == "stopped"
    with server.services.store.read() as s:
        assert s.get(Grain, gid).initialized is True
    # The next start runs the continue command on the same storage.
    with grain_http(server.run(gid)) as app:
        assert app.get("/").json()["note"] == "milk"
    listed = server.client.get("/api/v1/grains").json()
    assert [g["id"] for g in listed] == [gid]
    assert listed[0]["size_bytes"] > 0 and listed[0]["last_used_at"]


def test_rename_trash_restore_and_purge(server):
    bearer(server.client, server.services, "a@example.org", "Ann")
    gid = _new(server).json()["id"]
    server.run(gid)
    renamed = server.client.patch(f"/api/v1/grains/{gid}", json={"title": "Renée's notes"})
    assert renamed.json()["title"] == "Renée's notes"
    trashed = server.client.delete(f"/api/v1/grains/{gid}")
    assert trashed.status_code == 200 and trashed.json()["trashed_at"]
    assert trashed.json()["state"] == "stopped"
    assert server.client.get("/api/v1/grains").json() == []
    assert [g["id"] for g in server.client.get("/api/v1/grains?trash=true").json()] == [gid]
    with pytest.raises(Exception, match="No grain"):
        server.run(gid)  # nothing starts a grain in the trash
    assert server.client.post(f"/api/v1/grains/{gid}/restore").status_code == 200
    assert server.client.delete(f"/api/v1/grains/{gid}?forever=true").status_code == 409
    server.client.delete(f"/api/v1/grains/{gid}")
    storage = server.services.grains.storage_dir(gid)
    assert storage.exists()
    assert server.client.delete(f"/api/v1/grains/{gid}?forever=true").status_code == 204
    assert not storage.parent.exists()
    assert server.client.get(f"/api/v1/grains/{gid}").status_code == 404


def test_trash_is_purged_after_its_retention(server):
    bearer(server.client, server.services, "a@example.org", "Ann")
    old = _new(server, "old").json()["id"]
    recent = _new(server, "recent").json()["id"]
    server.client.delete(f"/api/v1/grains/{old}")
    server.client.delete(f"/api/v1/grains/{recent}")
    with server.services.store.session() as s:
        s.execute(update(Grain).where(Grain.id == old)
                  .values(trashed_at=utcnow() - timedelta(days=31)))
    purged = server.client.portal.call(server.services.grains.purge_expired)
    assert purged == 1
    trash = server.client.get("/api/v1/grains?trash=true").json()
    assert [g["id"] for g in trash] == [recent]
    assert not server.services.grains.storage_dir(old).exists()


def test_grains_of_others_do_not_exist(server):
    bearer(server.client, server.services, "a@example.org", "Ann")
    gid = _new(server).json()["id"]
    other = TestClient(server.client.app, base_url="http://localhost:6080")
    bearer(other, server.services, "b@example.org", "Bob")
    for method, path in [("GET", f"/api/v1/grains/{gid}"), ("PATCH", f"/api/v1/grains/{gid}"),
                         ("DELETE", f"/api/v1/grains/{gid}"),
                         ("POST", f"/api/v1/grains/{gid}/stop"),
                         ("GET", f"/api/v1/grains/{gid}/log")]:
        answer = other.request(method, path, json={"title": "x"})
        assert answer.status_code in (403, 404), (method, path)
    assert other.get("/api/v1/grains").json() == []
    assert server.client.get(f"/api/v1/grains/{gid}").json()["title"] == "My note"


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"app_id": "nope", "action": 0, "title": "x"}, 404, "No app"),
    ({"action": 7, "title": "x"}, 400, "is not one of them"),
    ({"action": "spreadsheet", "title": "x"}, 400, "no action 'spreadsheet'"),
    ({"action": 0, "title": "  "}, 400, "Title is empty"),
    ({"action": 0, "title": "a\x00b"}, 400, "control characters"),
    ({"action": 0, "title": "x" * 501}, 422, "title"),
    ({"action": True, "title": "x"}, 400, "action"),
])
def test_bad_grain_requests_create_nothing(server, body, status, needle):
    bearer(server.client, server.services, "a@example.org", "Ann")
    body = {"app_id": server.app_id, **body}
    answer = server.client.post("/api/v1/grains", json=body)
    assert answer.status_code == status
    assert needle in answer.json()["error"]["message"]
    assert server.client.get("/api/v1/grains").json() == []
    grains_dir = server.services.grains.grains_dir
    assert not grains_dir.exists() or list(grains_dir.iterdir()) == []


def test_shell_pages_create_and_list_grains(server):
    login_as(server.client, server.services, "a@example.org", "Ann")
    from sandhaven.testing import csrf_from  # noqa: I001

    apps = server.client.get("/apps")
    assert "New note" in apps.text
    made = server.client.post("/grains/new", data={
        "csrf_token": csrf_from(apps.text), "app_id": server.app_id, "action": "0",
        "title": "Untitled note"})
    assert made.status_code == 303
    gid = made.headers["location"].rsplit("/", 1)[1]
    page = server.client.get(f"/grains/{gid}")
    assert page.status_code == 200 and "Untitled note" in page.text
    listing = server.client.get("/grains").text
    assert "Untitled note" in listing and "/apps/" in listing
    token = csrf_from(listing)
    server.client.post(f"/grains/{gid}/trash", data={"csrf_token": token})
    assert "Untitled note" in server.client.get("/grains/trash").text
    server.client.post(f"/grains/{gid}/restore", data={"csrf_token": token})
    assert "Untitled note" in server.client.get("/grains").text
