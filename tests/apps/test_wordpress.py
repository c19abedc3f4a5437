"""The WordPress recipe (apps/wordpress): built from Debian's wordpress and the SQLite
integration from npm with a fresh key, installed into an in-process server, run in a
real sandbox with Debian's php8.2."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.apps.conftest import AppServer, RecipeCache, build_recipe, verified_manifest
from tests.apps.test_dokuwiki import ORIGIN, SESSION, raw_status, session_origin
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

# SESSION (from test_dokuwiki.py): a session host on a shared domain over plain HTTP.
EDITOR = {**SESSION, "X-Sandstorm-User-Id": "a1b2c3", "X-Sandstorm-Permissions": "edit",
          "X-Sandstorm-Username": "Ren%C3%A9e%20D."}
VIEWER = {**SESSION, "X-Sandstorm-User-Id": "d4e5f6", "X-Sandstorm-Permissions": "",
          "X-Sandstorm-Username": "Bob"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def wordpress_build_dir(app_build_root: Path) -> Path:
    return app_build_root / "wordpress"



def publish(site: httpx.Client, headers: dict[str, str], title: str, text: str
            ) -> httpx.Response:
    """Publish a post through WordPress's REST API as ``headers``' user."""
    return site.post("/", params={"rest_route": "/wp/v2/posts"}, headers={**headers, **JSON},
                     content=json.dumps({"title": title, "content": text, "status": "publish"}))


def test_the_package_is_signed_with_the_given_key_and_names_the_manifest(
        wordpress_build_dir, tmp_path):
    spk, key = build_recipe("wordpress", wordpress_build_dir, tmp_path)
    manifest = verified_manifest(spk, key)
    assert manifest.app.title == "WordPress" and manifest.app.port == 8000
    assert [r.permissions for r in manifest.roles] == [["edit"], []]


def test_editors_posts_survive_a_restart_and_viewers_posts_are_refused(
        grain_server: GrainServer, wordpress_build_dir, tmp_path):
    spk, _ = build_recipe("wordpress", wordpress_build_dir, tmp_path)
    gid = grain_server.new_grain(spk, "Blog")
    with grain_http(grain_server.run(gid)) as site:
        home = site.get("/", headers=SESSION)
        assert home.status_code == 200 and "My blog" in home.text
        assert f"{ORIGIN}/" in home.text  # links use the session's address
        me = site.get("/", params={"rest_route": "/wp/v2/users/me", "context": "edit"},
                      headers=EDITOR).json()
        assert me["name"] == "Renée D." and "administrator" in me["roles"]
        posted = publish(site, EDITOR, "Groceries", "milk, bread")
        assert posted.status_code == 201, posted.text
        post = posted.json()["id"]
        page = site.get("/", params={"p": post}, headers=SESSION)
        assert "milk, bread" in page.text and "Groceries" in page.text
        assert site.get("/wp-admin/", headers=EDITOR).status_code == 200
        # A viewer is logged in as a subscriber: WordPress refuses a post, a change
        # and a comment.
        viewer = site.get("/", params={"rest_route": "/wp/v2/users/me", "context": "edit"},
                          headers=VIEWER).json()
        assert viewer["name"] == "Bob" and viewer["roles"] == ["subscriber"]
        assert publish(site, VIEWER, "Spam", "spam").status_code == 403
        changed = site.post("/", params={"rest_route": f"/wp/v2/posts/{post}"},
                            headers={**VIEWER, **JSON}, content=json.dumps({"content": "x"}))
        assert changed.status_code == 403
        comment = site.post("/wp-comments-post.php", headers=VIEWER, data={
            "comment_post_ID": str(post), "comment": "spam", "author": "Bob",
            "email": "bob@example.org"})
        assert comment.status_code == 403
        assert site.get("/wp-admin/post-new.php", headers=VIEWER).status_code == 403
        assert publish(site, SESSION, "Spam", "spam").status_code == 401
    stopped = grain_server.client.post(f"/api/v1/grains/{gid}/stop")
    assert stopped.json()["state"] == "stopped"
    sock = grain_server.run(gid)
    with grain_http(sock) as site:
        posts = site.get("/", params={"rest_route": "/wp/v2/posts"}, headers=SESSION).json()
        assert [p["title"]["rendered"] for p in posts].count("Groceries") == 1
        assert all(p["title"]["rendered"] != "Spam" for p in posts)
        ours = next(p for p in posts if p["title"]["rendered"] == "Groceries")
        assert "milk, bread" in ours["content"]["rendered"]
        author = site.get("/", params={"rest_route": f"/wp/v2/users/{ours['author']}"},
                          headers=SESSION).json()
        assert author["name"] == "Renée D."
    # The settings, the database and the installer are not served; no login page.
    for path in ("/wp-config.php", "//wp-config.php", "/wp-admin/../wp-config.php",
                 "/wp-content/database/wordpress.sqlite", "/wp-admin/install.php",
                 "/wp-admin/setup-config.php", "/install.php", "/wp-includes/version.php"):
        assert raw_status(sock, path) in (403, 404), path
    assert raw_status(sock, "/wp-login.php") == 403
    assert raw_status(sock, "/wp-includes/js/jquery/jquery.min.js") == 200


@pytest.mark.all_apps
def test_a_post_published_in_the_browser_survives_reload_and_restart_and_viewers_cannot_post(
        app_server: AppServer, recipes: RecipeCache, browser):
    """Through WordPress's block editor in the shell's iframe on the session host; then
    a second user with a viewer share reads the post and WordPress refuses theirs."""
    app_server.install(recipes.get("wordpress"))
    page = dev_login(browser, app_server.url)
    site = new_grain(page, "New site")
    expect(site.get_by_text("My blog").first).to_be_visible()
    site.goto(session_origin(site) + "wp-admin/post-new.php")
    guide = site.get_by_role("dialog", name="Welcome to the block editor")
    guide.get_by_role("button", name="Close").click()
    site.get_by_role("textbox", name="Add title").fill("Groceries")
    page.keyboard.press("Enter")
    page.keyboard.type("milk, bread and cheese for Renée")
    site.get_by_role("region", name="Editor top bar").get_by_role(
        "button", name="Publish").click()
    site.get_by_role("region", name="Editor publish").get_by_role(
        "button", name="Publish", exact=True).click()
    expect(site.get_by_text("Groceries is now live.")).to_be_visible()
    page.reload()
    site = grain_frame(page)
    site.get_by_role("link", name="Groceries").first.click()
    expect(site.get_by_text("milk, bread and cheese for Renée")).to_be_visible()
    site = stop_and_reopen(page)
    expect(site.get_by_role("link", name="Groceries")).to_be_visible()
    site.get_by_role("link", name="Groceries").first.click()
    expect(site.get_by_text("milk, bread and cheese for Renée")).to_be_visible()
    screenshot(page, "apps/wordpress")

    link = share_link(page, "can view", "for Bob")
    bob = dev_login(browser, app_server.url, "Bob Dev")
    viewer = open_link(bob, link, "Bob Dev")
    viewer.get_by_role("link", name="Groceries").first.click()
    expect(viewer.get_by_text("milk, bread and cheese for Renée")).to_be_visible()
    # WordPress refuses Bob's editor and a post sent through its API from the frame.
    viewer.goto(session_origin(viewer) + "wp-admin/post-new.php")
    expect(viewer.get_by_text("Sorry, you are not allowed")).to_be_visible()
    status = viewer.evaluate("""() => fetch('/?rest_route=/wp/v2/posts', {method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({title: 'Spam', content: 'spam', status: 'publish'})})
        .then(r => r.status)""")
    assert status == 403
    titles = viewer.evaluate("""() => fetch('/?rest_route=/wp/v2/posts')
        .then(r => r.json()).then(posts => posts.map(p => p.title.rendered))""")
    assert "Groceries" in titles and "Spam" not in titles
