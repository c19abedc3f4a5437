"""The DokuWiki recipe (apps/dokuwiki): built from Debian's dokuwiki with a fresh
key, installed into an in-process server, run in a real sandbox with Debian's
php8.2."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sandhaven.packages.keys import SigningKey, write_key_file
from sandhaven.packages.spk import open_spk, verify, verify_file
from tests.apps.forms import form_fields
from tests.conftest import GrainServer, bearer
from tests.grains.test_grains import grain_http

RECIPE = Path(__file__).parents[2] / "apps" / "dokuwiki"
SANDHAVEN = Path(sys.executable).parent / "sandhaven"
SESSION = {"Host": "ui-0123abcd.localhost:6080", "X-Forwarded-Proto": "http",
           "X-Sandstorm-Base-Path": "http://ui-0123abcd.localhost:6080"}
EDITOR = {**SESSION, "X-Sandstorm-User-Id": "a1b2c3", "X-Sandstorm-Permissions": "edit",
          "X-Sandstorm-Username": "Ren%C3%A9e%20D."}
VIEWER = {**SESSION, "X-Sandstorm-User-Id": "d4e5f6", "X-Sandstorm-Permissions": "",
          "X-Sandstorm-Username": "Bob"}
ANONYMOUS = SESSION


@pytest.fixture
def dokuwiki_build_dir(app_build_root: Path) -> Path:
    return app_build_root / "dokuwiki"


def build(build_dir: Path, out_dir: Path) -> tuple[Path, SigningKey]:
    key = SigningKey.generate()
    write_key_file(key, out_dir / "dokuwiki.key")
    spk = out_dir / "dokuwiki.spk"
    subprocess.run([str(RECIPE / "build.sh"), str(out_dir / "dokuwiki.key"), str(spk),
                    str(build_dir)], check=True, timeout=120,
                   env={"PATH": "/usr/bin:/bin", "SANDHAVEN": str(SANDHAVEN)})
    return spk, key


def save_page(wiki: httpx.Client, page: str, text: str, headers: dict[str, str]
              ) -> httpx.Response:
    """Open the page's editor as ``headers``' user and submit it with ``text``, as
    DokuWiki's edit form does (its security token is bound to the session cookie)."""
    editor = wiki.get("/doku.php", params={"id": page, "do": "edit"}, headers=headers)
    fields = form_fields(editor.text, "dw__editform")
    fields.update({"wikitext": text, "summary": "test", "do[save]": "1"})
    return wiki.post(f"/doku.php?id={page}", data=fields, headers=headers)


def raw_status(sock: Path, path: str) -> int:
    """The status of ``GET path`` sent byte for byte to the grain's socket."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock))
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: sandbox\r\n\r\n".encode())
        head = s.makefile("rb").readline()
    return int(head.split()[1])


def raw(wiki: httpx.Client, page: str) -> str:
    return wiki.get("/doku.php", params={"id": page, "do": "export_raw"}, headers=ANONYMOUS).text


def test_the_package_is_signed_with_the_given_key_and_names_the_manifest(
        dokuwiki_build_dir, tmp_path):
    spk, key = build(dokuwiki_build_dir, tmp_path)
    assert verify_file(spk)["app_id"] == key.app_id
    with open_spk(spk) as f:
        manifest = verify(f).manifest
    assert manifest.app.title == "DokuWiki" and manifest.app.port == 8000
    assert [r.permissions for r in manifest.roles] == [["edit"], []]
    assert manifest.metadata.license.spdx == "GPL-2.0-only"


def test_editors_pages_survive_a_restart_and_viewers_edits_are_refused(
        grain_server: GrainServer, dokuwiki_build_dir, tmp_path):
    spk, _ = build(dokuwiki_build_dir, tmp_path)
    app_id = grain_server.services.packages.install(spk).app_id
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    made = grain_server.client.post("/api/v1/grains", json={
        "app_id": app_id, "action": 0, "title": "Team wiki"})
    assert made.status_code == 201
    gid = made.json()["id"]
    with grain_http(grain_server.run(gid)) as wiki:
        start = wiki.get("/", headers=EDITOR)
        assert start.status_code == 200 and "Welcome" in start.text
        # Logged in from the headers, by the decoded name; links use the session host.
        assert "Logged in as: <bdi>Renée D.</bdi>" in start.text
        assert 'href="/lib/exe/css.php' in start.text
        assert save_page(wiki, "groceries", "milk, bread", EDITOR).status_code in (200, 302, 303)
        assert raw(wiki, "groceries") == "milk, bread"
        # A viewer is logged in too, but only reads: no editor, and DokuWiki refuses a save.
        viewed = wiki.get("/doku.php", params={"id": "groceries"}, headers=VIEWER)
        assert "Logged in as: <bdi>Bob</bdi>" in viewed.text
        assert "Edit this page" not in viewed.text and "Show pagesource" in viewed.text
        # Its "source" view is the same form, read-only; submitting it changes nothing.
        save_page(wiki, "groceries", "nothing", VIEWER)
        wiki.post("/doku.php?id=newpage", headers=ANONYMOUS, data={
            "id": "newpage", "wikitext": "spam", "do[save]": "1"})
        assert raw(wiki, "groceries") == "milk, bread"
        assert wiki.get("/doku.php", params={"id": "newpage"}).text.count("spam") == 0
        history = wiki.get("/doku.php", params={"id": "groceries", "do": "revisions"},
                           headers=VIEWER)
        assert "Renée D." in history.text
    stopped = grain_server.client.post(f"/api/v1/grains/{gid}/stop")
    assert stopped.json()["state"] == "stopped"
    sock = grain_server.run(gid)
    with grain_http(sock) as wiki:
        assert raw(wiki, "groceries") == "milk, bread"
        assert save_page(wiki, "groceries", "milk, eggs", EDITOR).status_code in (200, 302, 303)
        assert raw(wiki, "groceries") == "milk, eggs"
    # DokuWiki's internals are not served (its .htaccess files do not apply here);
    # sent as raw request lines, since an HTTP client would tidy these paths.
    for path in ("/inc/init.php", "/lib/../inc/init.php", "//vendor/autoload.php",
                 "/lib/%2e%2e/vendor/autoload.php", "/conf/local.php", "/install.php",
                 "/data/pages/start.txt", "/lib/plugins/authsandstorm/conf/x.php",
                 "/.htaccess"):
        assert raw_status(sock, path) in (403, 404), path
    assert raw_status(sock, "/lib/exe/css.php") == 200
