"""The MediaWiki recipe (apps/mediawiki): built with a fresh key, installed into an
in-process server, run in a real sandbox with Debian's mediawiki and php8.2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sandhaven.packages.keys import SigningKey, write_key_file
from sandhaven.packages.spk import open_spk, verify, verify_file
from tests.apps.forms import form_fields
from tests.apps.test_dokuwiki import raw_status
from tests.conftest import GrainServer, bearer
from tests.grains.test_grains import grain_http

RECIPE = Path(__file__).parents[2] / "apps" / "mediawiki"
SANDHAVEN = Path(sys.executable).parent / "sandhaven"
ORIGIN = "http://ui-0123abcd.localhost:6080"
SESSION = {"Host": "ui-0123abcd.localhost:6080", "X-Forwarded-Proto": "http",
           "X-Sandstorm-Base-Path": ORIGIN}
EDITOR = {**SESSION, "X-Sandstorm-User-Id": "a1b2c3", "X-Sandstorm-Permissions": "edit",
          "X-Sandstorm-Username": "Ren%C3%A9e%20D."}
VIEWER = {**SESSION, "X-Sandstorm-User-Id": "d4e5f6", "X-Sandstorm-Permissions": "",
          "X-Sandstorm-Username": "Bob"}


@pytest.fixture
def mediawiki_build_dir(app_build_root: Path) -> Path:
    return app_build_root / "mediawiki"


def build(build_dir: Path, out_dir: Path) -> tuple[Path, SigningKey]:
    key = SigningKey.generate()
    write_key_file(key, out_dir / "mediawiki.key")
    spk = out_dir / "mediawiki.spk"
    subprocess.run([str(RECIPE / "build.sh"), str(out_dir / "mediawiki.key"), str(spk),
                    str(build_dir)], check=True, timeout=120,
                   env={"PATH": "/usr/bin:/bin", "SANDHAVEN": str(SANDHAVEN)})
    return spk, key


def api(wiki: httpx.Client, headers: dict[str, str], **params: str) -> dict:
    return wiki.get("/api.php", params={"format": "json", **params}, headers=headers).json()


def edit(wiki: httpx.Client, headers: dict[str, str], title: str, text: str) -> dict:
    """Save ``text`` as page ``title`` through MediaWiki's API as ``headers``' user."""
    token = api(wiki, headers, action="query", meta="tokens")["query"]["tokens"]["csrftoken"]
    return wiki.post("/api.php", headers=headers, data={
        "action": "edit", "format": "json", "title": title, "text": text, "token": token,
    }).json()


def wikitext(wiki: httpx.Client, title: str) -> str | None:
    got = wiki.get("/index.php", params={"title": title, "action": "raw"}, headers=SESSION)
    return got.text if got.status_code == 200 else None


def test_the_package_is_signed_with_the_given_key_and_names_the_manifest(
        mediawiki_build_dir, tmp_path):
    spk, key = build(mediawiki_build_dir, tmp_path)
    assert verify_file(spk)["app_id"] == key.app_id
    with open_spk(spk) as f:
        manifest = verify(f).manifest
    assert manifest.app.title == "MediaWiki" and manifest.app.port == 8000
    assert [r.permissions for r in manifest.roles] == [["edit"], []]


def test_editors_pages_survive_a_restart_and_viewers_edits_are_refused(
        grain_server: GrainServer, mediawiki_build_dir, tmp_path):
    spk, _ = build(mediawiki_build_dir, tmp_path)
    app_id = grain_server.services.packages.install(spk).app_id
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    made = grain_server.client.post("/api/v1/grains", json={
        "app_id": app_id, "action": 0, "title": "Team wiki"})
    assert made.status_code == 201
    gid = made.json()["id"]
    with grain_http(grain_server.run(gid)) as wiki:
        main = wiki.get("/index.php", params={"title": "Main_Page"}, headers=EDITOR)
        assert main.status_code == 200 and "MediaWiki has been installed" in main.text
        # The session's address, not the one given at install.
        assert f'href="{ORIGIN}/index.php?title=Main_Page' in main.text or ORIGIN in main.text
        me = api(wiki, EDITOR, action="query", meta="userinfo", uiprop="rights")["query"]
        assert me["userinfo"]["name"] == "Renée D." and "edit" in me["userinfo"]["rights"]
        saved = edit(wiki, EDITOR, "Groceries", "milk, bread")
        assert saved["edit"]["result"] == "Success", saved
        assert wikitext(wiki, "Groceries") == "milk, bread"
        # A viewer is logged in as themself, but MediaWiki refuses their edit.
        viewer = api(wiki, VIEWER, action="query", meta="userinfo", uiprop="rights")["query"]
        assert viewer["userinfo"]["name"] == "Bob"
        assert "edit" not in viewer["userinfo"]["rights"]
        refused = edit(wiki, VIEWER, "Groceries", "nothing")
        assert refused["error"]["code"] in ("writeapidenied", "permissiondenied"), refused
        form = wiki.get("/index.php", params={"title": "Groceries", "action": "edit"},
                        headers=VIEWER)
        assert "View source for Groceries" in form.text
        token = api(wiki, VIEWER, action="query", meta="tokens")["query"]["tokens"]["csrftoken"]
        wiki.post("/index.php?title=Groceries&action=submit", headers=VIEWER, data={
            "wpTextbox1": "nothing", "wpSave": "Save", "wpEditToken": token,
            "wpUltimateParam": "1"})
        anonymous = edit(wiki, SESSION, "Spam", "spam")
        assert "error" in anonymous, anonymous
        assert wikitext(wiki, "Groceries") == "milk, bread" and wikitext(wiki, "Spam") is None
        history = api(wiki, VIEWER, action="query", prop="revisions", titles="Groceries",
                      rvprop="user")
        page = next(iter(history["query"]["pages"].values()))
        assert page["revisions"][0]["user"] == "Renée D."
    stopped = grain_server.client.post(f"/api/v1/grains/{gid}/stop")
    assert stopped.json()["state"] == "stopped"
    sock = grain_server.run(gid)
    with grain_http(sock) as wiki:
        assert wikitext(wiki, "Groceries") == "milk, bread"
        # The browser's way: the edit form, its token bound to the session cookie.
        form = wiki.get("/index.php", params={"title": "Groceries", "action": "edit"},
                        headers=EDITOR)
        fields = form_fields(form.text, "editform")
        fields.update({"wpTextbox1": "milk, eggs", "wpSave": "Save changes"})
        saved = wiki.post("/index.php?title=Groceries&action=submit", data=fields,
                          headers=EDITOR)
        assert saved.status_code in (200, 302, 303)
        assert wikitext(wiki, "Groceries") == "milk, eggs"
    # MediaWiki's internals and its web installer are not served.
    for path in ("/includes/WebStart.php", "/mw-config/index.php", "//maintenance/install.php",
                 "/skins/../vendor/autoload.php", "/LocalSettings.php"):
        assert raw_status(sock, path) in (403, 404), path
    assert raw_status(sock, "/load.php?modules=startup&only=scripts") == 200
