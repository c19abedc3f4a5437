import pytest

from sandhaven.errors import InvalidManifest
from sandhaven.packages.manifest import (
    PKGDEF_NAME,
    Manifest,
    check_update_keeps_positions,
    load_package_definition,
    parse_package_definition,
    validate_manifest,
)
from sandhaven.packages.testing import HELLO_SOURCE, hello_manifest

HELLO = (HELLO_SOURCE / PKGDEF_NAME).read_text(encoding="utf-8")


def test_hello_definition_is_valid():
    definition = load_package_definition(HELLO_SOURCE)
    m = definition.manifest
    assert m.app.title == "Hello" and m.app.version == 1 and m.app.port == 8000
    assert [a.noun_phrase for a in m.actions] == ["note"]
    assert [p.name for p in m.permissions] == ["write"]
    assert [(r.title, r.permissions) for r in m.roles] == [("editor", ["write"]),
                                                            ("viewer", [])]
    assert m.default_role == 0
    assert definition.files.include == ["server.py", "icons"]


def test_json_round_trip_is_canonical():
    m = hello_manifest()
    data = m.to_json_bytes()
    assert Manifest.from_json_bytes(data) == m
    assert Manifest.from_json_bytes(data).to_json_bytes() == data
    assert b" " not in data.split(b'"description"')[0]  # no spaces between tokens


def _edit(old: str, new: str) -> str:
    assert old in HELLO, old
    return HELLO.replace(old, new, 1)


# (replace this, with this) -> the field the one-line error must name
BAD = [
    (("version = 1", 'version = "1"'), "app.version"),
    (("version = 1", "version = -1"), "app.version"),
    (('title = "Hello"', 'title = ""'), "app.title"),
    (('title = "Hello"', 'title = "Hel\\nlo"'), "app.title"),
    (("port = 8000", "port = 15239"), "app"),
    (("port = 8000", "port = 70000"), "app.port"),
    (('api_path = "/api/"', 'api_path = "api"'), "app"),
    (("min_upgradable_version = 0", "min_upgradable_version = 5"), "app"),
    (("[app]\n", "[app]\ncolour = \"red\"\n"), "app.colour"),
    (('argv = ["/usr/bin/python3", "/opt/app/server.py"], env',
      'argv = ["python3", "/opt/app/server.py"], env'), "actions[0].command"),
    (('argv = ["/usr/bin/python3", "/opt/app/server.py"], env',
      'argv = [], env'), "actions[0].command.argv"),
    (('env = { PORT = "8000" } }', 'env = { "BAD NAME" = "1" } }'),
     "actions[0].command.env.BAD NAME"),
    (('env = { PORT = "8000" } }', 'env = { PATH = "/tmp" } }'), "actions[0].command"),
    (('noun_phrase = "note"', 'noun_phrase = 5'), "actions[0].noun_phrase"),
    (('permissions = ["write"]', 'permissions = ["delete"]'), "(top level)"),
    (('name = "write"', 'name = "Write!"'), "permissions[0].name"),
    (('permissions = []', 'permissions = []\ndefault = true'), "(top level)"),
    (('categories = ["productivity", "developerTools"]', 'categories = ["cooking"]'),
     "metadata.categories[0]"),
    (('license = { spdx = "Apache-2.0" }', 'license = { spdx = "MIT", proprietary = "x" }'),
     "metadata.license"),
    (('short_description = "Tiny note"', 'short_description = "a very tiny note app"'),
     "metadata"),
    (('website = "https://example.org/hello"', 'website = "javascript:alert(1)"'),
     "metadata.website"),
    (('app_grid = "icons/hello.svg"', 'app_grid = "../hello.svg"'), "metadata.icons.app_grid"),
    (('app_grid = "icons/hello.svg"', 'app_grid = "/etc/passwd"'), "metadata.icons.app_grid"),
    (('include = ["server.py", "icons"]', 'include = ["../secret"]'), "files.include[0]"),
    (('include = ["server.py", "icons"]', 'include = []'), "files.include"),
]


@pytest.mark.parametrize(("change", "field"), BAD, ids=[b[1] + ":" + b[0][1][:20]
                                                         for b in BAD])
def test_each_invalid_field_is_named(change, field):
    with pytest.raises(InvalidManifest) as info:
        parse_package_definition(_edit(*change))
    message = str(info.value)
    assert "\n" not in message
    assert f"field '{field}'" in message, message


def test_missing_table_and_bad_toml():
    with pytest.raises(InvalidManifest, match=r"field 'continue_command': Field required"):
        parse_package_definition(_edit(
            '[continue_command]\nargv = ["/usr/bin/python3", "/opt/app/server.py"]\n'
            'env = { PORT = "8000" }\n', ""))
    with pytest.raises(InvalidManifest, match=r"field 'files'"):
        parse_package_definition(HELLO.split("[files]")[0])
    with pytest.raises(InvalidManifest, match="not valid TOML"):
        parse_package_definition("[app\n")


def test_missing_definition_file(tmp_path):
    with pytest.raises(InvalidManifest, match="is missing"):
        load_package_definition(tmp_path)


def test_embedded_manifest_errors():
    with pytest.raises(InvalidManifest, match="not valid UTF-8 JSON"):
        Manifest.from_json_bytes(b"{nope")
    with pytest.raises(InvalidManifest, match="not a JSON object"):
        Manifest.from_json_bytes(b"[]")
    with pytest.raises(InvalidManifest, match="'app': Field required"):
        validate_manifest({"actions": []})


def test_update_must_keep_permission_and_role_positions():
    old = hello_manifest()
    assert check_update_keeps_positions(old, old) is None
    raw = old.model_dump(mode="json")
    raw["permissions"][0]["obsolete"] = True
    raw["permissions"].append({"name": "comment"})
    assert check_update_keeps_positions(old, validate_manifest(raw)) is None
    raw = old.model_dump(mode="json")
    raw["permissions"] = []
    raw["roles"] = [{"title": "viewer"}]
    assert "permission 0 ('write')" in check_update_keeps_positions(old, validate_manifest(raw))
    raw = old.model_dump(mode="json")
    raw["roles"] = raw["roles"][:1]
    assert "role 1 ('viewer')" in check_update_keeps_positions(old, validate_manifest(raw))
