"""The An Otter Wiki recipe (apps/otterwiki): built from PyPI with a fresh key,
installed into an in-process server, run in a real sandbox with Debian's Python."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.apps.conftest import AppServer, RecipeCache, build_recipe, verified_manifest
from tests.conftest import GrainServer, bearer
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

RENEE = {"X-Sandstorm-Username": "Ren%C3%A9e%20D.",
         "X-Sandstorm-User-Id": "0123456789abcdef0123456789abcdef"}
EDITOR = {**RENEE, "X-Sandstorm-Permissions": "edit"}
VIEWER = {"X-Sandstorm-Username": "Vic", "X-Sandstorm-User-Id": "f" * 32,
          "X-Sandstorm-Permissions": ""}


@pytest.fixture
def otterwiki_build_dir(app_build_root: Path) -> Path:
    return app_build_root / "otterwiki"



def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


def save(wiki: httpx.Client, path: str, text: str, headers: dict[str, str]) -> httpx.Response:
    """Save a page the way the editor's form does: its CSRF token, then the POST."""
    token = csrf(wiki.get(f"/{path}/edit", headers=EDITOR))
    return wiki.post(f"/{path}/save", headers=headers, data={
        "csrf_token": token, "content": text, "commit": f"Update {path}"})


def test_the_package_is_signed_with_the_given_key_and_names_the_manifest(
        otterwiki_build_dir, tmp_path):
    spk, key = build_recipe("otterwiki", otterwiki_build_dir, tmp_path)
    manifest = verified_manifest(spk, key)
    assert manifest.app.title == "An Otter Wiki" and manifest.app.port == 8000
    assert [r.permissions for r in manifest.roles] == [["edit"], []]
    assert manifest.metadata.license.spdx == "MIT"


def test_editors_save_pages_with_their_name_viewers_cannot_and_pages_survive_a_restart(
        grain_server: GrainServer, otterwiki_build_dir, tmp_path):
    spk, key = build_recipe("otterwiki", otterwiki_build_dir, tmp_path)
    app_id = grain_server.services.packages.install(spk).app_id
    assert app_id == key.app_id
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    made = grain_server.client.post("/api/v1/grains", json={
        "app_id": app_id, "action": 0, "title": "Team wiki"})
    assert made.status_code == 201
    gid = made.json()["id"]
    with grain_http(grain_server.run(gid)) as wiki:
        home = wiki.get("/Home", headers=VIEWER)
        assert home.status_code == 200 and "An Otter Wiki" in home.text
        # Malformed identity headers still give a readable page, not an error.
        odd = wiki.get("/Home", headers={"X-Sandstorm-Username": "%ZZ%E9",
                                         "X-Sandstorm-User-Id": "../../etc"})
        assert odd.status_code == 200
        saved = save(wiki, "Groceries", "# Groceries\n\nmilk, bread", EDITOR)
        assert saved.status_code in (200, 302), saved.text[:500]
        assert "milk, bread" in wiki.get("/Groceries", headers=VIEWER).text
        # The commit's author is the platform's (decoded) user name.
        history = wiki.get("/Groceries/history", headers=VIEWER)
        assert "Renée D." in history.text
        # A viewer cannot open the editor or save, even claiming Otter Wiki's own
        # role header: the glue drops what the client sent.
        assert wiki.get("/Groceries/edit", headers=VIEWER).status_code == 403
        forged = {**VIEWER, "X-Otterwiki-Roles": "READ,WRITE,ADMIN"}
        assert save(wiki, "Groceries", "nothing", forged).status_code == 403
        # The wiki's settings need the owner's `administer` permission.
        sidebar = "/-/admin/sidebar_preferences"
        assert wiki.get(sidebar, headers=EDITOR).status_code == 403
        assert wiki.get(sidebar, headers={**EDITOR, "X-Sandstorm-Permissions": "edit,administer"}
                        ).status_code == 200
        assert "nothing" not in wiki.get("/Groceries", headers=VIEWER).text
        # Inside the shell's frame (a *.localhost host) the wiki's session cookie,
        # which carries the form's CSRF token, is one a cross-site frame can use.
        wiki.cookies.clear()
        framed = wiki.get("/Groceries/edit", headers={
            **EDITOR, "Host": "ui-0123.localhost:6080"})
        cookie = framed.headers["set-cookie"]
        assert "SameSite=None" in cookie and "Secure" in cookie and "Partitioned" in cookie
    stopped = grain_server.client.post(f"/api/v1/grains/{gid}/stop")
    assert stopped.json()["state"] == "stopped"
    with grain_http(grain_server.run(gid)) as wiki:
        assert "milk, bread" in wiki.get("/Groceries", headers=VIEWER).text


@pytest.mark.all_apps
def test_a_page_written_in_the_browser_survives_reload_and_restart_and_viewers_cannot_edit(
        app_server: AppServer, recipes: RecipeCache, browser):
    """Through An Otter Wiki's own editor in the shell's iframe on the session host."""
    app_server.install(recipes.get("otterwiki"))
    page = dev_login(browser, app_server.url)
    wiki = new_grain(page, "New wiki")
    wiki.get_by_role("link", name="Create page").first.click()
    wiki.locator("#pagename").fill("Groceries")
    wiki.get_by_role("button", name="Create and open in editor").click()
    editor = wiki.locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("# Groceries\n\nmilk, bread and Renée's cheese\n")
    wiki.locator("#save-page-btn").click()
    wiki.locator("#commit-message").fill("A list for the week")
    wiki.get_by_role("button", name="Save", exact=True).click()
    expect(wiki.get_by_text("milk, bread and Renée's cheese")).to_be_visible()
    page.reload()
    wiki = grain_frame(page)
    wiki.goto(wiki.url.rstrip("/") + "/Groceries/history", wait_until="domcontentloaded")
    # The commit's author is the name from the identity headers.
    expect(wiki.get_by_text("Alice Dev").first).to_be_visible()
    expect(wiki.get_by_text("A list for the week")).to_be_visible()
    wiki = stop_and_reopen(page)
    wiki.goto(wiki.url.rstrip("/") + "/Groceries", wait_until="domcontentloaded")
    expect(wiki.get_by_text("milk, bread and Renée's cheese")).to_be_visible()
    screenshot(page, "apps/otterwiki")
    link = share_link(page, "can view", "for Bob")
    bob = dev_login(browser, app_server.url, "Bob Dev")
    seen = open_link(bob, link, as_name="Bob Dev")
    seen.goto(seen.url.rstrip("/") + "/Groceries", wait_until="domcontentloaded")
    expect(seen.get_by_text("milk, bread and Renée's cheese")).to_be_visible()
    # The wiki refuses a viewer's editor and save (with a valid CSRF token of the
    # viewer's own session), whatever the page shows.
    refused = seen.evaluate("""async () => {
        const edit = await fetch('Groceries/edit');
        const form = new FormData();
        form.append('content', 'nothing');
        form.append('commit', 'vandalism');
        form.append('csrf_token', document.querySelector('meta[name=csrf-token]').content);
        const save = await fetch('Groceries/save', {method: 'POST', body: form});
        return [edit.status, save.status];
    }""")
    assert refused == [403, 403]
    seen.goto(seen.url, wait_until="domcontentloaded")
    expect(seen.get_by_text("milk, bread and Renée's cheese")).to_be_visible()
