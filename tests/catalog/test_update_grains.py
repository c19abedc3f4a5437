"""An update from the catalog reaches existing grains: a grain of version 1 runs
version 2 after its next start, with its storage kept (real sandboxes)."""

from __future__ import annotations

from starlette.testclient import TestClient

from sandhaven.catalog.build import build_catalog
from sandhaven.config import load_settings
from sandhaven.sandbox.testing import make_runtime_root, remove_tree
from sandhaven.server import build_app
from sandhaven.services import Services
from tests.catalog.conftest import hello_recipe
from tests.conftest import BASE, bearer
from tests.grains.test_grains import grain_http


def test_a_grain_moves_to_the_updated_package_at_its_next_start(tmp_path):
    apps, out, keys, build = (tmp_path / n for n in ("apps", "catalog", "keys", "build"))
    recipe = hello_recipe(apps)
    build_catalog(apps, out, keys, build)
    root = make_runtime_root()  # reachable by the grain user
    settings = load_settings(environ={}, overrides={
        "data_dir": str(root / "data"), "sandbox.runtime_dir": str(root / "run"),
        "catalog.source": str(out)})
    services = Services.build(settings)
    try:
        with TestClient(build_app(services), base_url=BASE, follow_redirects=False) as client:
            catalog = services.catalog
            app_id = catalog.listing()[0].entry.app_id
            old = catalog.install(app_id)
            bearer(client, services, "a@example.org", "Ann")
            gid = client.post("/api/v1/grains", json={"app_id": app_id, "action": 0,
                                                      "title": "Note"}).json()["id"]
            run = lambda: client.portal.call(services.grains.ensure_running, gid)  # noqa: E731
            with grain_http(run()) as app:
                assert app.post("/", content="kept",
                                headers={"X-Sandstorm-Permissions": "write"}).status_code == 200

            pkgdef = recipe / "sandhaven-pkgdef.toml"
            pkgdef.write_text(pkgdef.read_text().replace("version = 1\n", "version = 2\n", 1)
                              .replace('marketing_version = "1.0.0"',
                                       'marketing_version = "1.1.0"'))
            build_catalog(apps, out, keys, build)
            catalog.max_age = 0
            [update] = catalog.check()
            assert (update.installed_version, update.entry.version) == (1, 2)
            new = catalog.install(app_id)
            assert new.version == 2 and new.package_id != old.package_id
            assert client.get(f"/api/v1/grains/{gid}").json()["package_id"] == old.package_id

            assert client.post(f"/api/v1/grains/{gid}/stop").status_code == 200
            with grain_http(run()) as app:
                assert "kept" in app.get("/").text
            assert client.get(f"/api/v1/grains/{gid}").json()["package_id"] == new.package_id
    finally:
        services.store.close()
        remove_tree(root)
