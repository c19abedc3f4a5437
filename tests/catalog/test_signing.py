"""The catalog key's signature over the index: metadata is authenticated when the
server knows the key, and the default catalog is checked with the key beside it."""

from __future__ import annotations

import json
import shutil

import pytest

from sandhaven.catalog.build import build_catalog
from sandhaven.config import load_settings
from sandhaven.errors import CatalogError, ConfigError
from sandhaven.packages.keys import read_key_file
from tests.catalog.conftest import edit_index, hello_recipe
from tests.conftest import login_as


def signed_shell(make_shell, catalog, key):  # type: ignore[no-untyped-def]
    services, _ = make_shell(**{"catalog.source": str(catalog), "catalog.key": key})
    return services


def test_a_signed_index_is_accepted_and_any_change_refused(make_shell, catalog_dir,
                                                           built_catalog):
    key = read_key_file(built_catalog.parent / "keys" / "catalog.key").app_id
    assert signed_shell(make_shell, catalog_dir, key).catalog.listing()[0].entry.title == "Hello"
    edit_index(catalog_dir, short_description="Now with malware")
    with pytest.raises(CatalogError, match="does not verify with the configured catalog key"):
        signed_shell(make_shell, catalog_dir, key).catalog.listing()
    other = read_key_file(built_catalog.parent / "keys" / "hello.key").app_id
    shutil.copy(built_catalog / "index.json", catalog_dir / "index.json")
    with pytest.raises(CatalogError, match="does not verify"):
        signed_shell(make_shell, catalog_dir, other).catalog.listing()
    (catalog_dir / "index.json.sig").write_text("not base32!\n")
    with pytest.raises(CatalogError, match="signature is malformed"):
        signed_shell(make_shell, catalog_dir, key).catalog.listing()
    (catalog_dir / "index.json.sig").unlink()
    with pytest.raises(CatalogError, match="'index.json.sig' is missing"):
        signed_shell(make_shell, catalog_dir, key).catalog.listing()


def test_admins_are_told_when_the_index_is_not_checked(make_shell, catalog_dir,
                                                     built_catalog):
    notice = "index is not checked against a catalog key"
    services, client = make_shell(**{"catalog.source": str(catalog_dir)})
    login_as(client, services, "ada@example.org", "Ada", admin=True)
    assert notice in client.get("/market").text
    login_as(client, services, "bob@example.org", "Bob", admin=False)
    page = client.get("/market")
    assert "Hello" in page.text and notice not in page.text  # nothing a user can act on
    key = read_key_file(built_catalog.parent / "keys" / "catalog.key").app_id
    services, client = make_shell(**{"catalog.source": str(catalog_dir), "catalog.key": key})
    login_as(client, services, "ada@example.org", "Ada", admin=True)
    page = client.get("/market")
    assert page.status_code == 200 and "Hello" in page.text and notice not in page.text


def test_the_default_catalog_is_checked_with_the_key_beside_it(make_shell, tmp_path):
    data = tmp_path / "data0"  # make_shell's first data directory
    hello_recipe(tmp_path / "apps")
    build_catalog(tmp_path / "apps", data / "catalog", data / "app-keys", tmp_path / "build")
    services, _ = make_shell()
    assert services.catalog.public_key == read_key_file(data / "app-keys" / "catalog.key").app_id
    assert services.catalog.listing()[0].entry.title == "Hello"
    index = json.loads((data / "catalog" / "index.json").read_text())
    index["apps"][0]["title"] = "Evil"
    (data / "catalog" / "index.json").write_text(json.dumps(index))
    services.catalog.max_age = 0
    with pytest.raises(CatalogError, match="does not verify"):
        services.catalog.listing()


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("catalog.source", "ftp://example.org/catalog", "an http:// or https:// URL or a directory"),
    ("catalog.source", "https://example.org/c?x=1", "not an http:// or https:// URL"),
    ("catalog.key", "abc", "not a catalog public key"),
])
def test_bad_catalog_settings_are_named(name, value, expected):
    with pytest.raises(ConfigError, match=expected) as caught:
        load_settings(environ={}, overrides={name: value})
    assert f"Setting '{name}'" in str(caught.value)


def test_good_catalog_settings(tmp_path):
    s = load_settings(environ={"SANDHAVEN_CATALOG_SOURCE": "https://apps.example.org/c/"})
    assert s.get("catalog.source") == "https://apps.example.org/c"
    assert load_settings(environ={}, overrides={"catalog.source": str(tmp_path)}).get(
        "catalog.source") == str(tmp_path)
