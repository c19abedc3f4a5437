"""The WordPress recipe (apps/wordpress): built from Debian's wordpress and the SQLite
integration from npm with a fresh key, installed into an in-process server, run in a
real sandbox with Debian's php8.2."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from sandhaven.packages.keys import SigningKey
from sandhaven.packages.spk import open_spk, verify, verify_file
from tests.apps.conftest import build_recipe
from tests.apps.test_dokuwiki import raw_status
from tests.conftest import GrainServer, bearer
from tests.grains.test_grains import grain_http

# A session host on a shared domain over plain HTTP (see test_dokuwiki.py).
ORIGIN = "http://ui-0123abcd.grains.example:6080"
SESSION = {"Host": "ui-0123abcd.grains.example:6080", "X-Forwarded-Proto": "http",
           "X-Sandstorm-Base-Path": ORIGIN}
EDITOR = {**SESSION, "X-Sandstorm-User-Id": "a1b2c3", "X-Sandstorm-Permissions": "edit",
          "X-Sandstorm-Username": "Ren%C3%A9e%20D."}
VIEWER = {**SESSION, "X-Sandstorm-User-Id": "d4e5f6", "X-Sandstorm-Permissions": "",
          "X-Sandstorm-Username": "Bob"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def wordpress_build_dir(app_build_root: Path) -> Path:
    return app_build_root / "wordpress"


def build(build_dir: Path, out_dir: Path) -> tuple[Path, SigningKey]:
    built = build_recipe("wordpress", build_dir, out_dir)
    return built.spk, built.key


def publish(site: httpx.Client, headers: dict[str, str], title: str, text: str
            ) -> httpx.Response:
    """Publish a post through WordPress's REST API as ``headers``' user."""
    return site.post("/", params={"rest_route": "/wp/v2/posts"}, headers={**headers, **JSON},
                     content=json.dumps({"title": title, "content": text, "status": "publish"}))


def test_the_package_is_signed_with_the_given_key_and_names_the_manifest(
        wordpress_build_dir, tmp_path):
    spk, key = build(wordpress_build_dir, tmp_path)
    assert verify_file(spk)["app_id"] == key.app_id
    with open_spk(spk) as f:
        manifest = verify(f).manifest
    assert manifest.app.title == "WordPress" and manifest.app.port == 8000
    assert [r.permissions for r in manifest.roles] == [["edit"], []]


def test_editors_posts_survive_a_restart_and_viewers_posts_are_refused(
        grain_server: GrainServer, wordpress_build_dir, tmp_path):
    spk, _ = build(wordpress_build_dir, tmp_path)
    app_id = grain_server.services.packages.install(spk).app_id
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    made = grain_server.client.post("/api/v1/grains", json={
        "app_id": app_id, "action": 0, "title": "Blog"})
    assert made.status_code == 201
    gid = made.json()["id"]
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
                 "/wp-admin/setup-config.php", "/install.php"):
        assert raw_status(sock, path) in (403, 404), path
    assert raw_status(sock, "/wp-login.php") == 403
