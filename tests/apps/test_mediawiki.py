"""The MediaWiki recipe (apps/mediawiki): built with a fresh key, installed into an
in-process server, run in a real sandbox with Debian's mediawiki and php8.2."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.apps.conftest import AppServer, RecipeCache, build_recipe, verified_manifest
from tests.apps.forms import form_fields
from tests.apps.test_dokuwiki import FRAMED, ORIGIN, SESSION, raw_status, session_origin
from tests.conftest import GrainServer
from tests.grains.test_grains import grain_http
from tests.ui import (
    dev_login,
    grain_frame,
    new_grain,
    open_link,
    screenshot,
    share_link,
    stop_and_reopen,
)

# SESSION (from test_dokuwiki.py) is a session host on a shared domain over plain
# HTTP, where MediaWiki's cookies stay as it makes them (on *.localhost and HTTPS
# they become Secure, which an HTTP client would not send back over plain HTTP;
# see the cookie check below).
EDITOR = {**SESSION, "X-Sandstorm-User-Id": "a1b2c3", "X-Sandstorm-Permissions": "edit",
          "X-Sandstorm-Username": "Ren%C3%A9e%20D."}
VIEWER = {**SESSION, "X-Sandstorm-User-Id": "d4e5f6", "X-Sandstorm-Permissions": "",
          "X-Sandstorm-Username": "Bob"}


@pytest.fixture
def mediawiki_build_dir(app_build_root: Path) -> Path:
    return app_build_root / "mediawiki"



def api(wiki: httpx.Client, headers: dict[str, str], **params: str) -> dict:
    got = wiki.get("/api.php", params={"format": "json", **params}, headers=headers)
    assert got.headers.get("content-type", "").startswith("application/json"), (
        got.status_code, got.text[:2000])
    return got.json()


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
    spk, key = build_recipe("mediawiki", mediawiki_build_dir, tmp_path)
    manifest = verified_manifest(spk, key)
    assert manifest.app.title == "MediaWiki" and manifest.app.port == 8000
    assert [r.permissions for r in manifest.roles] == [["edit"], []]


def test_editors_pages_survive_a_restart_and_viewers_edits_are_refused(
        grain_server: GrainServer, mediawiki_build_dir, tmp_path):
    spk, _ = build_recipe("mediawiki", mediawiki_build_dir, tmp_path)
    gid = grain_server.new_grain(spk, "Team wiki")
    first = grain_server.run(gid)
    with grain_http(first) as wiki, grain_http(first) as fresh:
        main = wiki.get("/index.php", params={"title": "Main_Page"}, headers=EDITOR)
        assert main.status_code == 200 and "MediaWiki has been installed" in main.text
        # The session's address, not the one given at install.
        assert f'href="{ORIGIN}/index.php?title=Main_Page' in main.text or ORIGIN in main.text
        # Its session cookie survives in the shell's cross-site frame.
        framed = fresh.get("/index.php", params={"title": "Main_Page"},
                           headers={**EDITOR, **FRAMED}).headers.get_list("set-cookie")
        assert framed and all("; secure;" in c and "; SameSite=None; Partitioned" in c
                              for c in framed), framed
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
                 "/skins/../vendor/autoload.php", "/LocalSettings.php", "/images/x.php"):
        assert raw_status(sock, path) in (403, 404), path
    assert raw_status(sock, "/load.php?modules=startup&only=scripts") == 200


@pytest.mark.all_apps
def test_a_page_written_in_the_browser_survives_reload_and_restart_and_viewers_cannot_edit(
        app_server: AppServer, recipes: RecipeCache, browser):
    """Through MediaWiki's own editor in the shell's iframe on the session host; then a
    second user with a viewer share reads the page and MediaWiki refuses their edit."""
    app_server.install(recipes.get("mediawiki"))
    page = dev_login(browser, app_server.url)
    wiki = new_grain(page, "New wiki")
    expect(wiki.get_by_role("heading", name="Main Page")).to_be_visible()
    wiki.goto(session_origin(wiki) + "index.php?title=Groceries&action=edit")
    wiki.locator("#wpTextbox1").fill("milk, bread and Renée's cheese")
    wiki.locator("#wpSave").click()
    # Saved: MediaWiki answers the form with a redirect to the page.
    wiki.wait_for_url(lambda url: url.endswith("/index.php?title=Groceries"))
    content = "#mw-content-text"
    expect(wiki.locator(content)).to_contain_text("milk, bread and Renée's cheese")
    page.reload()
    wiki = grain_frame(page)
    wiki.goto(session_origin(wiki) + "index.php?title=Groceries")
    expect(wiki.locator(content)).to_contain_text("milk, bread and Renée's cheese")
    wiki = stop_and_reopen(page)
    wiki.goto(session_origin(wiki) + "index.php?title=Groceries&action=history")
    expect(wiki.locator("#pagehistory")).to_contain_text("Alice Dev")
    wiki.goto(session_origin(wiki) + "index.php?title=Groceries")
    expect(wiki.locator(content)).to_contain_text("milk, bread and Renée's cheese")
    screenshot(page, "apps/mediawiki")

    link = share_link(page, "can view", "for Bob")
    bob = dev_login(browser, app_server.url, "Bob Dev")
    viewer = open_link(bob, link, "Bob Dev")
    viewer.goto(session_origin(viewer) + "index.php?title=Groceries&action=edit")
    # MediaWiki shows Bob the source only; an edit through its API is refused.
    expect(viewer.get_by_role("heading", name="View source for Groceries")).to_be_visible()
    answer = viewer.evaluate("""async () => {
        const tokens = await (await fetch('api.php?action=query&meta=tokens&format=json')).json();
        const data = new FormData();
        for (const [k, v] of Object.entries({action: 'edit', title: 'Groceries', format: 'json',
            text: 'vandalised', token: tokens.query.tokens.csrftoken})) data.set(k, v);
        return (await fetch('api.php', {method: 'POST', body: data})).json();
    }""")
    assert answer["error"]["code"] in ("writeapidenied", "permissiondenied"), answer
    stored = viewer.evaluate(
        "fetch('index.php?title=Groceries&action=raw').then(r => r.text())")
    assert stored == "milk, bread and Renée's cheese"
