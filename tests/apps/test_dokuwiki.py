"""The DokuWiki recipe (apps/dokuwiki): built from Debian's dokuwiki with a fresh
key, installed into an in-process server, run in a real sandbox with Debian's
php8.2."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Frame, expect

from tests.apps.conftest import AppServer, RecipeCache, build_recipe, verified_manifest
from tests.apps.forms import form_fields
from tests.conftest import GrainServer
from tests.grains.test_grains import grain_http
from tests.ui import (
    SESSION_HOST,
    dev_login,
    grain_frame,
    new_grain,
    open_link,
    screenshot,
    share_link,
    stop_and_reopen,
)

# A session host on a shared domain over plain HTTP, where the app's cookies stay as
# it makes them (on *.localhost and HTTPS they become Secure, which an HTTP client
# would not send back over plain HTTP; see the cookie check below).
ORIGIN = "http://ui-0123abcd.grains.example:6080"
SESSION = {"Host": "ui-0123abcd.grains.example:6080", "X-Forwarded-Proto": "http",
           "X-Sandstorm-Base-Path": ORIGIN}
FRAMED = {"Host": "ui-0123abcd.localhost:6080", "X-Forwarded-Proto": "http",
          "X-Sandstorm-Base-Path": "http://ui-0123abcd.localhost:6080"}
EDITOR = {**SESSION, "X-Sandstorm-User-Id": "a1b2c3", "X-Sandstorm-Permissions": "edit",
          "X-Sandstorm-Username": "Ren%C3%A9e%20D."}
VIEWER = {**SESSION, "X-Sandstorm-User-Id": "d4e5f6", "X-Sandstorm-Permissions": "",
          "X-Sandstorm-Username": "Bob"}
ANONYMOUS = SESSION


@pytest.fixture
def dokuwiki_build_dir(app_build_root: Path) -> Path:
    return app_build_root / "dokuwiki"



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
    spk, key = build_recipe("dokuwiki", dokuwiki_build_dir, tmp_path)
    manifest = verified_manifest(spk, key)
    assert manifest.app.title == "DokuWiki" and manifest.app.port == 8000
    assert [r.permissions for r in manifest.roles] == [["edit"], []]
    assert manifest.metadata.license.spdx == "GPL-2.0-only"


def test_editors_pages_survive_a_restart_and_viewers_edits_are_refused(
        grain_server: GrainServer, dokuwiki_build_dir, tmp_path):
    spk, _ = build_recipe("dokuwiki", dokuwiki_build_dir, tmp_path)
    gid = grain_server.new_grain(spk, "Team wiki")
    first = grain_server.run(gid)
    with grain_http(first) as wiki, grain_http(first) as fresh:
        start = wiki.get("/", headers=EDITOR)
        assert start.status_code == 200 and "Welcome" in start.text
        # Logged in from the headers, by the decoded name; links use the session host.
        assert "Logged in as: <bdi>Renée D.</bdi>" in start.text
        assert 'href="/lib/exe/css.php' in start.text
        # Its session cookie survives in the shell's cross-site frame (cookies.php).
        assert "SameSite" not in start.headers["set-cookie"]
        framed = fresh.get("/", headers={**EDITOR, **FRAMED})
        assert "Secure; SameSite=None; Partitioned" in framed.headers["set-cookie"]
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


def session_origin(frame: Frame) -> str:
    """``http://ui-….localhost:port/`` of the app frame's session host."""
    found = SESSION_HOST.match(frame.url)
    assert found, frame.url
    return found.group(0)


@pytest.mark.all_apps
def test_a_page_written_in_the_browser_survives_reload_and_restart_and_viewers_cannot_edit(
        app_server: AppServer, recipes: RecipeCache, browser):
    """Through DokuWiki's own editor in the shell's iframe on the session host; then
    a second user with a viewer share reads the page and DokuWiki refuses their save."""
    app_server.install(recipes.get("dokuwiki"))
    page = dev_login(browser, app_server.url)
    wiki = new_grain(page, "New wiki")
    expect(wiki.get_by_role("heading", name="Welcome")).to_be_visible()
    expect(wiki.get_by_text("Logged in as: Alice Dev")).to_be_visible()
    wiki.goto(session_origin(wiki) + "doku.php?id=groceries")
    wiki.get_by_role("link", name="Create this page").first.click()
    wiki.locator("#wiki__text").fill("====== Groceries ======\nmilk, bread and Renée's cheese")
    wiki.locator("#edbtn__save").click()
    expect(wiki.locator(".page").get_by_text("milk, bread and Renée's cheese")).to_be_visible()
    page.reload()
    wiki = grain_frame(page)
    wiki.goto(session_origin(wiki) + "doku.php?id=groceries")
    expect(wiki.locator(".page").get_by_text("milk, bread and Renée's cheese")).to_be_visible()
    wiki = stop_and_reopen(page)
    wiki.goto(session_origin(wiki) + "doku.php?id=groceries")
    expect(wiki.locator(".page").get_by_text("milk, bread and Renée's cheese")).to_be_visible()
    expect(wiki.get_by_text("Last modified:")).to_contain_text("Alice Dev")
    screenshot(page, "apps/dokuwiki")

    link = share_link(page, "can view", "for Bob")
    bob = dev_login(browser, app_server.url, "Bob Dev")
    viewer = open_link(bob, link, "Bob Dev")
    origin = session_origin(viewer)
    viewer.goto(origin + "doku.php?id=groceries&do=edit")
    # DokuWiki shows Bob the source, read-only; submitting it anyway is refused.
    expect(viewer.locator("#wiki__text")).to_have_attribute("readonly", "readonly")
    viewer.evaluate("""async () => {
        const form = document.getElementById('dw__editform');
        const data = new FormData(form);
        data.set('wikitext', 'vandalised');
        data.set('do[save]', '1');
        await fetch(form.action, {method: 'POST', body: data});
    }""")
    stored = viewer.evaluate(
        "fetch('doku.php?id=groceries&do=export_raw').then(r => r.text())")
    assert stored == "====== Groceries ======\nmilk, bread and Renée's cheese"
