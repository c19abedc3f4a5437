"""Validation of a catalog's index and detail files: every bad input gets one line
naming the field, and nothing from the index can point outside the catalog."""

from __future__ import annotations

import json

import pytest

from sandhaven.catalog.index import parse_detail, parse_index
from sandhaven.errors import CatalogError

APP_ID = "ju4jjmsdtezwpmmdw87t4q5rcsunacuw80qhhvkq6jsz2qz4vq30"
GOOD = {"app_id": APP_ID, "title": "TiddlyWiki", "short_description": "Personal wiki",
        "categories": ["productivity"], "license": {"spdx": "BSD-3-Clause"},
        "author": "Jeremy Ruston", "marketing_version": "5.3.8", "version": 1,
        "package_id": "38f8d98bf28c4c6c1d5e5e4b92f25e14",
        "package": "packages/tiddlywiki.spk", "size": 1000, "icon": "icons/tiddlywiki.svg",
        "detail": "apps/tiddlywiki.json"}


def index_bytes(*, fmt: int = 2, **changes: object) -> bytes:
    entry = {**GOOD, **changes}
    return json.dumps({"format": fmt, "apps": [entry]}).encode()


def refused(data: bytes) -> str:
    with pytest.raises(CatalogError) as caught:
        parse_index(data)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_good_index_parses_and_format_1_is_still_read():
    index = parse_index(index_bytes())
    assert index.apps[0].title == "TiddlyWiki" and index.find(APP_ID).size == 1000
    old = {k: v for k, v in GOOD.items() if k != "detail"}
    assert parse_index(json.dumps({"format": 1, "apps": [old]}).encode()).apps[0].detail == ""


@pytest.mark.parametrize(("data", "expected"), [
    (b"<html>not json", "is not JSON"),
    (b"\xff\xfe", "is not JSON"),
    (b"[]", "top level"),
    (json.dumps({"format": 3, "apps": []}).encode(), "format 3 is not one this server reads"),
    (json.dumps({"format": 2}).encode(), "apps: Field required"),
])
def test_a_malformed_index_is_refused_in_one_line(data, expected):
    assert expected in refused(data)


@pytest.mark.parametrize(("field", "value"), [
    ("package_id", "38F8D98BF28C4C6C1D5E5E4B92F25E14"),
    ("package_id", "../../etc/passwd"),
    ("app_id", "not-an-app-id"),
    ("size", 0),
    ("size", "1000"),
    ("version", -1),
    ("title", ""),
    ("title", "x" * 101),
    ("title", "Wiki\nInjected: header"),
    ("short_description", "a\x1bb"),
    ("categories", ["notACategory"]),
    ("license", {"spdx": "MIT", "proprietary": "yes"}),
    ("unknown_field", 1),
])
def test_each_bad_field_is_named(field, value):
    message = refused(index_bytes(**{field: value}))
    assert f"apps[0].{field}" in message or "apps[0]" in message


@pytest.mark.parametrize(("field", "value"), [
    ("package", "../secret.spk"),
    ("package", "/etc/passwd.spk"),
    ("package", "packages/../../x.spk"),
    ("package", "http://evil.example/x.spk"),
    ("package", "icons/x.spk"),
    ("package", "packages/x.html"),
    ("icon", "icons/../index.json"),
    ("icon", "icons/x.html"),
    ("icon", "/icons/x.svg"),
    ("detail", "apps/../../x.json"),
    ("detail", "packages/x.json"),
])
def test_paths_outside_their_folder_are_refused(field, value):
    assert f"apps[0].{field}" in refused(index_bytes(**{field: value}))


def test_an_app_listed_twice_is_refused():
    data = json.dumps({"format": 2, "apps": [GOOD, GOOD]}).encode()
    assert "appears twice" in refused(data)


def test_detail_files_are_validated_and_bound_to_their_app():
    good = {"app_id": APP_ID, "description": "**Wiki**", "website": "https://tiddlywiki.com/",
            "code_url": "", "screenshots": ["screenshots/tiddlywiki-0.png"], "change_log": ""}
    assert parse_detail(json.dumps(good).encode(), APP_ID).description == "**Wiki**"
    for change, expected in [({"website": "javascript:alert(1)"}, "website"),
                             ({"screenshots": ["../x.png"]}, r"screenshots\[0\]"),
                             ({"description": "x" * 70000}, "description")]:
        with pytest.raises(CatalogError, match=expected):
            parse_detail(json.dumps({**good, **change}).encode(), APP_ID)
    other = "0" * 52
    with pytest.raises(CatalogError, match="describes another app"):
        parse_detail(json.dumps(good).encode(), other)
