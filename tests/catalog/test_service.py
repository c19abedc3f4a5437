"""Installing from a catalog: every package that does not match its index is
refused with one line and nothing installed; updates are found and installed
through the same checks; the server's maintenance runs the update check."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from sandhaven.catalog.build import build_catalog
from sandhaven.errors import CatalogError, NotFound
from sandhaven.packages.ids import package_id_from_digest
from sandhaven.packages.keys import SigningKey
from sandhaven.packages.testing import build_hello
from sandhaven.server import Lifespan
from tests.catalog.conftest import edit_index, hello_recipe


def index_of(catalog: Path) -> dict:
    return json.loads((catalog / "index.json").read_text())


def catalog_services(make_shell, source, **settings):  # type: ignore[no-untyped-def]
    services, _ = make_shell(**{"catalog.source": str(source), **settings})
    return services


def nothing_installed(services) -> bool:  # type: ignore[no-untyped-def]
    leftovers = [p.name for p in services.packages.packages_dir.iterdir()
                 if p.name != ".lock"] if services.packages.packages_dir.exists() else []
    return services.packages.apps() == [] and leftovers == []


def refit(catalog: Path) -> None:
    """Make the index's size and package ID match whatever packages/hello.spk is now."""
    import hashlib

    data = (catalog / "packages" / "hello.spk").read_bytes()
    edit_index(catalog, size=len(data),
               package_id=package_id_from_digest(hashlib.sha256(data).digest()))


def test_one_click_install_from_a_directory_catalog(make_shell, catalog_dir):
    services = catalog_services(make_shell, catalog_dir)
    entry = index_of(catalog_dir)["apps"][0]
    [market] = services.catalog.listing()
    assert market.state == "available" and market.entry.title == "Hello"
    result = services.catalog.install(entry["app_id"], None)
    assert (result.app_id, result.package_id, result.created) == (
        entry["app_id"], entry["package_id"], True)
    assert [a.title for a in services.packages.apps()] == ["Hello"]
    assert services.catalog.listing()[0].state == "installed"
    assert not services.catalog.install(entry["app_id"]).created  # same package: no-op


def test_install_from_a_catalog_on_a_real_static_server(make_shell, catalog_dir,
                                                        static_server):
    services = catalog_services(make_shell, static_server(catalog_dir))
    app_id = index_of(catalog_dir)["apps"][0]["app_id"]
    assert services.catalog.detail(app_id).screenshots == ["screenshots/hello-0.svg"]
    data, media_type = services.catalog.icon(app_id)
    assert media_type == "image/svg+xml" and data.startswith(b"<svg")
    assert services.catalog.install(app_id).created
    assert [a.app_id for a in services.packages.apps()] == [app_id]


@pytest.mark.parametrize(("change", "expected"), [
    (lambda c, e: edit_index(c, size=e["size"] + 1), "bytes, not the"),
    (lambda c, e: edit_index(c, size=e["size"] - 1), "is larger than the"),
    (lambda c, e: edit_index(c, package_id="0" * 32), "does not match the index: its package ID"),
    (lambda c, e: edit_index(c, version=5), "has version 1, not the 5 the index says"),
])
def test_a_package_that_does_not_match_its_index_is_refused(make_shell, catalog_dir,
                                                            change, expected):
    entry = index_of(catalog_dir)["apps"][0]
    change(catalog_dir, entry)
    services = catalog_services(make_shell, catalog_dir)
    with pytest.raises(CatalogError, match=expected) as caught:
        services.catalog.install(entry["app_id"])
    assert "nothing was installed" in str(caught.value).lower()
    assert nothing_installed(services)


def test_a_bad_signature_is_refused(make_shell, catalog_dir):
    spk = catalog_dir / "packages" / "hello.spk"
    data = bytearray(spk.read_bytes())
    data[50] ^= 0xFF  # inside the Ed25519 signature (bytes 44..107)
    spk.write_bytes(bytes(data))
    refit(catalog_dir)  # size and package ID now match the tampered file
    services = catalog_services(make_shell, catalog_dir)
    with pytest.raises(CatalogError, match="signature") as caught:
        services.catalog.install(index_of(catalog_dir)["apps"][0]["app_id"])
    assert "Nothing was installed" in str(caught.value)
    assert nothing_installed(services)


def test_a_package_signed_by_another_key_is_refused(make_shell, catalog_dir, tmp_path):
    shutil.copy(build_hello(tmp_path, SigningKey.generate()), catalog_dir / "packages" /
                "hello.spk")
    refit(catalog_dir)
    services = catalog_services(make_shell, catalog_dir)
    app_id = index_of(catalog_dir)["apps"][0]["app_id"]
    with pytest.raises(CatalogError, match=f"is signed by app .*, not the {app_id}"):
        services.catalog.install(app_id)
    assert nothing_installed(services)


def test_a_package_past_the_size_limit_is_not_downloaded(make_shell, catalog_dir):
    services = catalog_services(make_shell, catalog_dir, **{"packages.max_spk_bytes": 2048})
    with pytest.raises(CatalogError, match="the limit is 2048"):
        services.catalog.install(index_of(catalog_dir)["apps"][0]["app_id"])
    assert nothing_installed(services)


def test_unknown_apps_and_unreadable_catalogs(make_shell, catalog_dir, tmp_path):
    services = catalog_services(make_shell, catalog_dir)
    with pytest.raises(NotFound):
        services.catalog.install("0" * 52)
    (catalog_dir / "index.json").write_text("{")
    services = catalog_services(make_shell, catalog_dir)
    with pytest.raises(CatalogError, match="The catalog's index is not JSON"):
        services.catalog.listing()
    missing = catalog_services(make_shell, tmp_path / "nowhere")
    with pytest.raises(CatalogError, match="does not exist"):
        missing.catalog.listing()
    assert missing.catalog.check() == []  # logged, not raised


def test_updates_are_found_at_the_check_and_installed_the_same_way(make_shell, tmp_path):
    apps, out, keys, build = (tmp_path / n for n in ("apps", "catalog", "keys", "build"))
    recipe = hello_recipe(apps)
    build_catalog(apps, out, keys, build)
    services = catalog_services(make_shell, out)
    app_id = index_of(out)["apps"][0]["app_id"]
    assert services.catalog.install(app_id).version == 1

    # A second build of unchanged recipes does not run them again.
    build_catalog(apps, out, keys, build)
    assert (build / "builds.log").read_text().count("built") == 1
    pkgdef = recipe / "sandhaven-pkgdef.toml"
    pkgdef.write_text(pkgdef.read_text().replace("version = 1\n", "version = 2\n", 1))
    build_catalog(apps, out, keys, build)
    assert (build / "builds.log").read_text().count("built") == 2
    assert index_of(out)["apps"][0]["version"] == 2

    # The server's maintenance runs the check (at start, then every 24 h).
    services.catalog.max_age = 0
    lifespan = Lifespan(None, services)  # type: ignore[arg-type]
    asyncio.run(lifespan.maintain_once())
    assert [(m.entry.title, m.installed_version, m.entry.version)
            for m in services.catalog.updates] == [("Hello", 1, 2)]
    assert services.catalog.check_if_due() is None  # not due again for 24 h
    assert services.catalog.install(app_id).version == 2
    assert services.catalog.listing()[0].state == "installed"
    assert [a.version for a in services.packages.apps()] == [2]


def test_the_build_writes_details_screenshots_and_format_2(built_catalog):
    index = index_of(built_catalog)
    entry = index["apps"][0]
    assert index["format"] == 2 and entry["detail"] == "apps/hello.json"
    detail = json.loads((built_catalog / entry["detail"]).read_text())
    assert detail["app_id"] == entry["app_id"]
    assert detail["description"].startswith("**Hello**")
    assert detail["change_log"] == "1.0.0: first version."
    assert detail["website"] == "https://example.org/hello"
    assert detail["screenshots"] == ["screenshots/hello-0.svg"]
    assert (built_catalog / "screenshots" / "hello-0.svg").read_bytes().startswith(b"<svg")
    assert not list((built_catalog / "packages").glob(".*"))  # no temporary left
