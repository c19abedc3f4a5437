"""The Etherpad recipe (apps/etherpad): built from npm with a fresh key, installed
into an in-process server, run in a real sandbox with Debian's node, and driven
over Etherpad's own socket.io protocol as the pad page (or a crafted request) does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sandhaven.packages.keys import SigningKey, write_key_file
from sandhaven.packages.spk import open_spk, verify, verify_file
from tests.apps.etherpad_client import PadSocket
from tests.conftest import GrainServer, bearer
from tests.grains.test_grains import grain_http

RECIPE = Path(__file__).parents[2] / "apps" / "etherpad"
SANDHAVEN = Path(sys.executable).parent / "sandhaven"
RENEE = {"X-Sandstorm-Permissions": "edit", "X-Sandstorm-User-Id": "a" * 32,
         "X-Sandstorm-Username": "Ren%C3%A9e%20D."}
BOB = {"X-Sandstorm-Permissions": "", "X-Sandstorm-User-Id": "b" * 32,
       "X-Sandstorm-Username": "Bob"}


@pytest.fixture
def etherpad_build_dir(app_build_root: Path) -> Path:
    return app_build_root / "etherpad"


def build(build_dir: Path, out_dir: Path) -> tuple[Path, SigningKey]:
    key = SigningKey.generate()
    write_key_file(key, out_dir / "etherpad.key")
    spk = out_dir / "etherpad.spk"
    subprocess.run([str(RECIPE / "build.sh"), str(out_dir / "etherpad.key"), str(spk),
                    str(build_dir)], check=True, timeout=300,
                   env={"PATH": "/usr/bin:/bin", "SANDHAVEN": str(SANDHAVEN),
                        "HOME": str(build_dir)})
    return spk, key


def open_page(app: httpx.Client, who: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Follows ``/`` to the user's pad page; returns the pad ID and the cookies the
    grain set (its session cookie for the role and the author token). Cookies are
    sent explicitly, as each test user's browser would: the client keeps none."""
    app.cookies.clear()
    first = app.get("/", headers=who)
    assert first.status_code == 302
    page = app.get(first.headers["location"], headers=who)
    assert page.status_code == 200 and "<title>Etherpad</title>" in page.text
    cookies = dict(c.split(";", 1)[0].split("=", 1) for c in page.headers.get_list("set-cookie"))
    app.cookies.clear()
    pad_id = first.headers["location"].split("?")[0].removeprefix("/p/")
    return pad_id, cookies


def with_cookies(who: dict[str, str], cookies: dict[str, str]) -> dict[str, str]:
    return {**who, "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


def test_the_package_is_signed_with_the_given_key_and_names_the_manifest(
        etherpad_build_dir, tmp_path):
    spk, key = build(etherpad_build_dir, tmp_path)
    assert verify_file(spk)["app_id"] == key.app_id  # every entry checks out
    with open_spk(spk) as f:
        manifest = verify(f).manifest
    assert manifest.app.title == "Etherpad" and manifest.app.port == 8000
    assert [r.permissions for r in manifest.roles] == [["edit"], []]
    assert manifest.metadata.license.spdx == "Apache-2.0"
    # Etherpad sits in etherpad/src with its dependencies beside it; npm and the
    # drivers for database servers were pruned.
    tree = etherpad_build_dir / "tree" / "etherpad"
    assert (tree / "src" / "node" / "server.js").is_file()
    assert (tree / "node_modules" / "ep_etherpad-lite").resolve() == (tree / "src").resolve()
    assert (tree / "node_modules" / "dirty").is_dir()
    assert not (tree / "node_modules" / "npm").exists()
    assert not (tree / "node_modules" / "mssql").exists()


def test_editors_write_the_pad_viewers_cannot_even_by_crafted_requests_and_it_survives(
        grain_server: GrainServer, etherpad_build_dir, tmp_path):
    spk, key = build(etherpad_build_dir, tmp_path)
    app_id = grain_server.services.packages.install(spk).app_id
    assert app_id == key.app_id
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    made = grain_server.client.post("/api/v1/grains", json={
        "app_id": app_id, "action": 0, "title": "Minutes"})
    assert made.status_code == 201
    gid = made.json()["id"]
    with grain_http(grain_server.run(gid)) as app:
        # "/" leads each user to the grain's pad with their name: editors to the
        # pad, viewers to its read-only ID.
        to_pad = app.get("/", headers=RENEE)
        assert to_pad.headers["location"] == "/p/pad?userName=Ren%C3%A9e%20D."
        to_view = app.get("/", headers=BOB).headers["location"]
        assert to_view.startswith("/p/r.") and to_view.endswith("?userName=Bob")
        read_only = to_view.split("?")[0].removeprefix("/p/")
        assert app.get("/p/pad", headers=BOB).headers["location"] == f"/p/{read_only}"
        assert app.get("/p/another", headers=RENEE).status_code == 404
        assert app.get("/p/%E0%A4%A", headers=RENEE).status_code == 400
        assert app.get("/admin/plugins", headers=RENEE).status_code == 404
        assert app.get("/api/1/listAllPads", headers=RENEE).status_code == 404

        # The editor types through socket.io, as the pad page does.
        pad, renee_cookies = open_page(app, RENEE)
        assert pad == "pad" and "ep_sid_editor" in renee_cookies
        renee = PadSocket(app, with_cookies(RENEE, renee_cookies))
        renee.connect()
        start = renee.open_pad("pad", renee_cookies["token"])
        assert start["readonly"] is False
        rev = start["collab_client_vars"]["rev"]
        text = start["collab_client_vars"]["initialAttributedText"]["text"]
        renee.append("pad", rev, len(text), "Agenda: budget")
        assert renee.receive("ACCEPT_COMMIT")["data"]["newRev"] == rev + 1
        editor = with_cookies(RENEE, renee_cookies)
        assert app.get("/p/pad/export/txt", headers=editor).text.startswith("Agenda: budget")

        # The viewer reads it; crafting a connection to the writable pad ID, even
        # with the editor's session cookie, gives a read-only session whose change
        # Etherpad drops (the grain answers the next request, a history query).
        pad, bob_cookies = open_page(app, BOB)
        assert pad == read_only and "ep_sid_viewer" in bob_cookies
        assert app.get(f"/p/{read_only}/export/txt", headers=with_cookies(BOB, bob_cookies)
                       ).text.startswith("Agenda: budget")
        bob = PadSocket(app, with_cookies(BOB, {**renee_cookies, **bob_cookies}))
        bob.connect()
        crafted = bob.open_pad("pad", bob_cookies["token"])
        assert crafted["readonly"] is True
        assert crafted["userId"] != start["userId"]  # each person is their own author
        bob.append("pad", rev + 1, len("Agenda: budget") + len(text), "Bob was here")
        bob.history("pad")
        assert not [m for m in bob.inbox if m.get("data", {}).get("type") == "ACCEPT_COMMIT"]
        # Nor can a viewer import over the pad.
        assert app.post("/p/pad/import", headers=BOB, files={"file": ("a.txt", b"x")}
                        ).status_code == 403

        # The same person in a new session is the same author (same color, name).
        _, new_cookies = open_page(app, RENEE)
        again = PadSocket(app, with_cookies(RENEE, new_cookies))
        again.connect()
        assert again.open_pad("pad", new_cookies["token"])["userId"] == start["userId"]

    stopped = grain_server.client.post(f"/api/v1/grains/{gid}/stop")
    assert stopped.json()["state"] == "stopped"
    with grain_http(grain_server.run(gid)) as app:
        _, cookies = open_page(app, RENEE)
        saved = app.get("/p/pad/export/txt", headers=with_cookies(RENEE, cookies)).text
        assert saved.startswith("Agenda: budget") and "Bob was here" not in saved
