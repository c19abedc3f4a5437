"""The App market page and the ``/api/v1/catalog`` routes, over a real catalog
built from a Hello recipe and the real installer."""

from __future__ import annotations

import json

from tests.catalog.conftest import edit_index
from tests.conftest import bearer, form_post, login_as


def market_shell(make_shell, source, *, admin=True):  # type: ignore[no-untyped-def]
    services, client = make_shell(**{"catalog.source": str(source)})
    login_as(client, services, "ada@example.org", "Ada", admin=admin)
    return services, client


def app_id_of(catalog) -> str:  # type: ignore[no-untyped-def]
    return json.loads((catalog / "index.json").read_text())["apps"][0]["app_id"]


def test_the_market_lists_searches_and_filters(make_shell, catalog_dir):
    services, client = market_shell(make_shell, catalog_dir)
    app_id = app_id_of(catalog_dir)
    page = client.get("/market")
    assert page.status_code == 200
    assert 'href="/market" aria-current="page">App market</a>' in page.text
    assert f'<img src="/market/{app_id}/icon"' in page.text
    assert "Tiny note" in page.text and 'aria-label="Install Hello"' in page.text
    assert "Hello" in client.get("/market", params={"q": "TINY"}).text
    assert "No app in the catalog matches." in client.get("/market", params={"q": "wiki"}).text
    assert "Hello" in client.get("/market", params={"category": "developerTools"}).text
    none = client.get("/market", params={"category": "games"})
    assert "No app in the catalog matches." in none.text


def test_icons_and_screenshots_cannot_run_script(make_shell, catalog_dir):
    services, client = market_shell(make_shell, catalog_dir)
    app_id = app_id_of(catalog_dir)
    for url in (f"/market/{app_id}/icon", f"/market/{app_id}/screenshots/0"):
        r = client.get(url)
        assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
        assert "sandbox" in r.headers["content-security-policy"]
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
    assert client.get(f"/market/{app_id}/screenshots/1").status_code == 404
    assert client.get(f"/market/{'0' * 52}/icon").status_code == 404


def test_the_detail_page_escapes_hostile_catalog_text(make_shell, catalog_dir):
    app_id = app_id_of(catalog_dir)
    edit_index(catalog_dir, title="<script>alert(1)</script>")
    detail = catalog_dir / "apps" / "hello.json"
    data = json.loads(detail.read_text())
    data["description"] = "**Bold** <img src=x onerror=alert(1)> [x](javascript:alert(1))"
    detail.write_text(json.dumps(data))
    services, client = market_shell(make_shell, catalog_dir)
    page = client.get(f"/market/{app_id}")
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;" in page.text
    assert "<strong>Bold</strong>" in page.text
    assert "<img src=x" not in page.text and 'href="javascript:' not in page.text
    assert f'src="/market/{app_id}/screenshots/0"' in page.text
    assert "1.0.0: first version." in page.text


def test_one_click_install_sends_the_admin_to_the_apps_page(make_shell, catalog_dir):
    services, client = market_shell(make_shell, catalog_dir)
    app_id = app_id_of(catalog_dir)
    r = form_post(client, "/market", f"/market/{app_id}/install", {})
    assert r.status_code == 303 and r.headers["location"] == "/apps?done=installed"
    apps = client.get(r.headers["location"]).text
    assert "New note" in apps and "App package installed." in apps
    assert "Installed" in client.get("/market").text


def test_only_admins_install(make_shell, catalog_dir):
    services, client = market_shell(make_shell, catalog_dir, admin=False)
    app_id = app_id_of(catalog_dir)
    page = client.get("/market")
    assert "An admin can install this app." in page.text and "Install Hello" not in page.text
    assert form_post(client, "/market", f"/market/{app_id}/install", {}).status_code == 403
    assert services.packages.apps() == []


def test_a_package_that_does_not_match_is_refused_on_the_page(make_shell, catalog_dir):
    edit_index(catalog_dir, package_id="0" * 32)
    services, client = market_shell(make_shell, catalog_dir)
    r = form_post(client, "/market", f"/market/{app_id_of(catalog_dir)}/install", {})
    assert r.status_code == 502
    assert "does not match the index" in r.text and "nothing was installed" in r.text
    assert services.packages.apps() == []


def test_an_unreadable_catalog_gives_its_message_not_a_500(make_shell, catalog_dir, tmp_path):
    services, client = market_shell(make_shell, tmp_path / "nowhere")
    page = client.get("/market")
    assert page.status_code == 502 and "does not exist" in page.text
    assert "App market" in page.text
    (catalog_dir / "index.json").write_text('{"format": 2, "apps": [{"title": 1}]}')
    services, client = market_shell(make_shell, catalog_dir)
    page = client.get("/market")
    assert page.status_code == 502 and "The catalog&#39;s index is malformed: apps[0]" in page.text


def test_the_api_lists_installs_and_reports_updates(make_shell, catalog_dir):
    services, client = make_shell(**{"catalog.source": str(catalog_dir)})
    admin = services.identity.users.create("root@example.org", "Root", is_admin=True)
    app_id = app_id_of(catalog_dir)
    bearer(client, services, "bob@example.org", "Bob")
    listing = client.get("/api/v1/catalog").json()
    assert listing["source"] == ""  # where the catalog lives is for admins
    assert [(a["title"], a["state"], a["installed_version"]) for a in listing["apps"]] == [
        ("Hello", "available", None)]
    detail = client.get(f"/api/v1/catalog/{app_id}").json()
    assert detail["screenshots"] == 1 and detail["description"].startswith("**Hello**")
    assert client.get(f"/api/v1/catalog/{'0' * 52}").status_code == 404
    refused = client.post(f"/api/v1/catalog/{app_id}/install")
    assert refused.status_code == 403

    _, token = services.identity.tokens.create(admin.id, "t")
    client.headers["Authorization"] = f"Bearer {token}"
    installed = client.post(f"/api/v1/catalog/{app_id}/install")
    assert installed.status_code == 201 and installed.json()["app_id"] == app_id
    assert client.post(f"/api/v1/catalog/{app_id}/install").status_code == 200
    assert client.get("/api/v1/catalog").json()["source"] == str(catalog_dir)

    # The catalog gets version 2 of the same app: listed as an update.
    edit_index(catalog_dir, version=2)
    services.catalog.max_age = 0
    [app] = client.get("/api/v1/catalog").json()["apps"]
    assert (app["state"], app["installed_version"], app["version"]) == ("update", 1, 2)
    # …but its package is still version 1: the install is refused, nothing changes.
    refused = client.post(f"/api/v1/catalog/{app_id}/install")
    assert refused.status_code == 502 and refused.json()["error"]["code"] == "catalog"
    assert "has version 1, not the 2" in refused.json()["error"]["message"]
    assert [a.version for a in services.packages.apps()] == [1]
    services.catalog.check()  # what the server's maintenance runs daily
    assert "Updates available in the" in client.get("/apps").text
    market = client.get("/market").text
    assert "Updates available" in market and 'aria-label="Update Hello"' in market
