"""The TiddlyWiki recipe (apps/tiddlywiki): built from npm with a fresh key, installed
into an in-process server, run in a real sandbox with Debian's node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.apps.conftest import AppServer, RecipeCache, build_recipe, verified_manifest
from tests.conftest import GrainServer, bearer
from tests.grains.test_grains import grain_http
from tests.ui import dev_login, grain_frame, new_grain, screenshot, stop_and_reopen, wait_until

WIKI = {"X-Requested-With": "TiddlyWiki", "Content-Type": "application/json"}
EDITOR = {**WIKI, "X-Sandstorm-Permissions": "edit"}


@pytest.fixture
def tiddlywiki_build_dir(app_build_root: Path) -> Path:
    return app_build_root / "tiddlywiki"



def test_the_package_is_signed_with_the_given_key_and_names_the_manifest(
        tiddlywiki_build_dir, tmp_path):
    spk, key = build_recipe("tiddlywiki", tiddlywiki_build_dir, tmp_path)
    manifest = verified_manifest(spk, key)
    assert manifest.app.title == "TiddlyWiki" and manifest.app.port == 8000
    assert [r.permissions for r in manifest.roles] == [["edit"], []]
    assert manifest.metadata.license.spdx == "BSD-3-Clause"


def test_editors_write_tiddlers_that_survive_a_restart_and_viewers_cannot(
        grain_server: GrainServer, tiddlywiki_build_dir, tmp_path):
    spk, key = build_recipe("tiddlywiki", tiddlywiki_build_dir, tmp_path)
    app_id = grain_server.services.packages.install(spk).app_id
    assert app_id == key.app_id
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    made = grain_server.client.post("/api/v1/grains", json={
        "app_id": app_id, "action": 0, "title": "Notebook"})
    assert made.status_code == 201
    gid = made.json()["id"]
    tiddler = {"title": "Grocery list", "text": "milk, bread", "tags": "shopping"}
    url = "/recipes/default/tiddlers/Grocery%20list"
    with grain_http(grain_server.run(gid)) as wiki:
        page = wiki.get("/")
        assert page.status_code == 200 and "TiddlyWiki" in page.text
        # The user's (percent-encoded) name is who TiddlyWiki's editor saves as.
        status = wiki.get("/status", headers={"X-Sandstorm-Username": "Ren%C3%A9e%20D."})
        assert status.json()["username"] == "Renée D."
        assert wiki.put(url, content=json.dumps(tiddler), headers=EDITOR).status_code == 204
        assert wiki.get(url).json()["text"] == "milk, bread"
        # A viewer (no permission) cannot change or delete it.
        changed = {**tiddler, "text": "nothing"}
        assert wiki.put(url, content=json.dumps(changed), headers=WIKI).status_code == 403
        assert wiki.delete("/bags/default/tiddlers/Grocery%20list", headers=WIKI
                           ).status_code == 403
        assert wiki.get(url).json()["text"] == "milk, bread"
    stopped = grain_server.client.post(f"/api/v1/grains/{gid}/stop")
    assert stopped.json()["state"] == "stopped"
    with grain_http(grain_server.run(gid)) as wiki:
        assert wiki.get(url).json()["text"] == "milk, bread"
        assert wiki.get("/").status_code == 200


def test_a_tiddler_written_in_the_browser_survives_reload_and_restart(
        app_server: AppServer, recipes: RecipeCache, browser):
    """Through TiddlyWiki's own editor in the shell's iframe on the session host."""
    app_server.install(recipes.get("tiddlywiki"))
    page = dev_login(browser, app_server.url)
    wiki = new_grain(page, "New wiki")
    wiki.get_by_role("button", name="new tiddler", exact=True).first.click()
    wiki.locator("input.tc-titlebar").fill("Grocery list")
    # The body editor is TiddlyWiki's framed editor: a textarea in an iframe of its own.
    wiki.frame_locator("iframe.tc-edit-texteditor").locator("textarea").fill(
        "milk, bread and Renée's cheese")
    wiki.get_by_role("button", name="Confirm changes to this tiddler").click()
    # Saved to the grain: the server has it.
    wait_until(wiki, "fetch('recipes/default/tiddlers/Grocery%20list').then(r => r.ok)")
    page.reload()
    wiki = grain_frame(page)
    wiki.get_by_role("switch", name="Recent").click()
    wiki.get_by_role("link", name="Grocery list").first.click()
    expect(wiki.get_by_text("milk, bread and Renée's cheese")).to_be_visible()
    wiki = stop_and_reopen(page)
    body = wiki.evaluate(
        "fetch('recipes/default/tiddlers/Grocery%20list').then(r => r.json())")
    assert body["text"] == "milk, bread and Renée's cheese"
    assert body["modifier"] == "Alice Dev"  # the name from the identity headers
    screenshot(page, "apps/tiddlywiki")
