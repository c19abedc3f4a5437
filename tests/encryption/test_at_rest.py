"""Nothing a user stores is readable on disk while the server is stopped: a marker
written into a grain's files, its title, a share label and a user's name is
nowhere under the data dir, the runtime dir or the temporary directory once the
server stops, and all of it is back after the next start."""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from starlette.testclient import TestClient

from sandhaven.config import load_settings
from sandhaven.encryption import open_storage
from sandhaven.encryption.private import kek_path
from sandhaven.errors import EncryptionError
from sandhaven.packages.keys import SigningKey
from sandhaven.packages.testing import build_hello
from sandhaven.sandbox.testing import make_runtime_root, remove_tree
from sandhaven.server import build_app
from sandhaven.services import Services
from sandhaven.supervisor.mounts import mounts_under
from tests.conftest import BASE, bearer

WRITE = {"X-Sandstorm-Permissions": "write"}


@contextmanager
def running(settings) -> Iterator[tuple[Services, TestClient]]:  # type: ignore[no-untyped-def]
    """The server as ``serve`` composes it (storage, services, app with lifespan)."""
    with open_storage(settings) as storage:
        services = Services.build(settings, storage=storage)
        try:
            with TestClient(build_app(services), base_url=BASE,
                            follow_redirects=False) as client:
                yield services, client
        finally:
            services.store.close()


def files_with(marker: bytes, roots: list[Path], since: float = 0.0) -> list[str]:
    """Files under ``roots`` (not crossing into other mounts) changed after ``since``
    whose bytes contain ``marker``."""
    hits = []
    for root in roots:
        for top, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(top, d))]
            for name in files:
                path = os.path.join(top, name)
                try:
                    st = os.lstat(path)
                    if st.st_mtime < since or not os.path.isfile(path) or \
                            os.path.islink(path) or st.st_size > 256 << 20:
                        continue
                    with open(path, "rb") as f:
                        if marker in f.read():
                            hits.append(path)
                except OSError:
                    continue
    return hits


def test_a_marker_is_nowhere_on_disk_while_stopped_and_back_after_start():
    started = time.time() - 1
    marker = f"MARK{secrets.token_hex(10)}"
    root = make_runtime_root()
    settings = load_settings(environ={}, overrides={
        "data_dir": str(root / "data"), "sandbox.runtime_dir": str(root / "run")})
    try:
        with running(settings) as (services, client):
            app_id = services.packages.install(build_hello(root, SigningKey.generate())).app_id
            bearer(client, services, "m@example.org", f"Name {marker}")
            gid = client.post("/api/v1/grains", json={"app_id": app_id, "action": "note",
                                                      "title": f"Title {marker}"}).json()["id"]
            sock = client.portal.call(services.grains.ensure_running, gid)
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)),
                              base_url="http://sandbox") as app:
                assert app.post("/", content=f"note {marker}", headers=WRITE).status_code == 200
            share = client.post(f"/api/v1/grains/{gid}/shares",
                                json={"role": 1, "label": f"Label {marker}"})
            assert share.status_code == 201, share.text
            # While running, the plaintext is where the grain and the server see it.
            assert (services.grains.storage_dir(gid)).is_dir()
            # The grain's log (its output may hold user data) is in the private area.
            assert services.supervisor.config.log_dir == root / "data" / "private" / "grain-logs"
            services.supervisor._grain(gid).log.note(f"output {marker}")  # noqa: SLF001
            assert marker in client.get(f"/api/v1/grains/{gid}/log").text
        assert mounts_under(root) == []
        needle = marker.encode()
        assert files_with(needle, [root]) == []
        assert files_with(needle, [Path(tempfile.gettempdir())], since=started) == []

        with running(settings) as (services, client):
            bearer(client, services, "m@example.org", "ignored")
            assert client.get("/api/v1/me").json()["name"] == f"Name {marker}"
            grain = client.get(f"/api/v1/grains/{gid}").json()
            assert grain["title"] == f"Title {marker}"
            labels = [a["label"] for a in client.get(f"/api/v1/grains/{gid}/access").json()]
            assert labels == [f"Label {marker}"]
            assert f"output {marker}" in client.get(f"/api/v1/grains/{gid}/log").text
            sock = client.portal.call(services.grains.ensure_running, gid)
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)),
                              base_url="http://sandbox") as app:
                assert app.get("/").json()["note"] == f"note {marker}"
    finally:
        remove_tree(root)


def test_without_the_key_file_nothing_opens_and_the_server_says_why():
    root = make_runtime_root()
    settings = load_settings(environ={}, overrides={
        "data_dir": str(root / "data"), "sandbox.runtime_dir": str(root / "run")})
    try:
        with running(settings):
            pass
        kek = kek_path(root / "data")
        saved = kek.read_bytes()
        kek.unlink()
        try:
            with running(settings):
                raise AssertionError("started without its key")
        except EncryptionError as exc:
            assert "kek is missing" in str(exc) and "backup" in str(exc)
        assert mounts_under(root) == [] and not kek.exists()  # no new key was made
        kek.write_bytes(saved)
        kek.chmod(0o600)
        with running(settings):
            pass
    finally:
        remove_tree(root)
