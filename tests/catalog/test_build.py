"""``sandhaven catalog build`` over the real recipes in apps/, and its failures."""

from __future__ import annotations

import json
from pathlib import Path

from sandhaven.cli.main import main
from sandhaven.packages.keys import read_key_file
from sandhaven.packages.spk import verify_file

APPS = Path(__file__).parents[2] / "apps"


def test_builds_a_real_recipe_into_an_index_of_verified_packages(app_build_root, tmp_path,
                                                                 capsys):
    """The TiddlyWiki recipe alone (every recipe is built by scripts/serve.sh and by
    the apps' own tests): the index, the key, the detail file and the icon."""
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "tiddlywiki").symlink_to(APPS / "tiddlywiki")
    out, keys = tmp_path / "catalog", tmp_path / "keys"
    assert main(["catalog", "build", str(apps), "-o", str(out), "--keys", str(keys),
                 "--build-dir", str(app_build_root)]) == 0
    index = json.loads((out / "index.json").read_text())
    assert index["format"] == 2
    by_title = {app["title"]: app for app in index["apps"]}
    wiki = by_title["TiddlyWiki"]
    spk = out / wiki["package"]
    summary = verify_file(spk)
    assert wiki["package_id"] == summary["package_id"]
    assert wiki["app_id"] == summary["app_id"] == read_key_file(keys / "tiddlywiki.key").app_id
    assert wiki["size"] == spk.stat().st_size
    assert wiki["license"] == {"spdx": "BSD-3-Clause"} and wiki["version"] == 1
    assert (keys / "tiddlywiki.key").stat().st_mode & 0o077 == 0
    assert wiki["package_id"] in capsys.readouterr().out
    assert wiki["icon"] == "icons/tiddlywiki.svg"
    assert wiki["detail"] == "apps/tiddlywiki.json"
    detail = json.loads((out / wiki["detail"]).read_text())
    assert "non-linear personal notebook" in detail["description"]
    assert detail["change_log"].startswith("5.3.8")
    assert (out / wiki["icon"]).read_bytes() == (APPS / "tiddlywiki/icons/tiddlywiki.svg"
                                                 ).read_bytes()


def test_a_failing_recipe_is_named_and_exits_19(tmp_path, capsys):
    recipe = tmp_path / "apps" / "broken"
    recipe.mkdir(parents=True)
    (recipe / "sandhaven-pkgdef.toml").write_text("")
    (recipe / "build.sh").write_text("echo 'npm: no such package' >&2\nexit 3\n")
    assert main(["catalog", "build", str(tmp_path / "apps"), "-o", str(tmp_path / "out"),
                 "--keys", str(tmp_path / "keys"), "--build-dir", str(tmp_path / "b")]) == 19
    err = capsys.readouterr().err
    assert "'broken'" in err and "exit 3" in err and "no such package" in err


def test_a_directory_without_recipes_is_refused(tmp_path, capsys):
    assert main(["catalog", "build", str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    assert "No app recipes" in capsys.readouterr().err


def test_without_paths_everything_goes_under_the_data_dir(tmp_path, capsys):
    from tests.catalog.conftest import hello_recipe

    hello_recipe(tmp_path / "apps")
    data = tmp_path / "data"
    assert main(["catalog", "build", str(tmp_path / "apps"), "--data-dir", str(data)]) == 0
    index = json.loads((data / "catalog" / "index.json").read_text())
    assert index["apps"][0]["title"] == "Hello"
    catalog_key = read_key_file(data / "app-keys" / "catalog.key").app_id
    assert f"catalog key (setting catalog.key): {catalog_key}" in capsys.readouterr().out
    assert (data / "app-keys" / "hello.key").is_file()
    assert (data / "build" / "apps" / "hello" / ".catalog-stamp").is_file()


def test_a_recipe_that_writes_no_package_is_named(tmp_path, capsys):
    recipe = tmp_path / "apps" / "silent"
    recipe.mkdir(parents=True)
    (recipe / "sandhaven-pkgdef.toml").write_text("")
    (recipe / "build.sh").write_text("exit 0\n")
    assert main(["catalog", "build", str(tmp_path / "apps"), "-o", str(tmp_path / "out"),
                 "--keys", str(tmp_path / "keys"), "--build-dir", str(tmp_path / "b")]) == 19
    assert "'silent' build.sh exited 0 but wrote no package" in capsys.readouterr().err


def test_keep_going_lists_the_recipes_that_built(tmp_path, capsys):
    from tests.catalog.conftest import hello_recipe

    hello_recipe(tmp_path / "apps")
    broken = tmp_path / "apps" / "broken"
    broken.mkdir()
    (broken / "sandhaven-pkgdef.toml").write_text("")
    (broken / "build.sh").write_text("echo 'npm: network unreachable' >&2\nexit 1\n")
    args = ["catalog", "build", str(tmp_path / "apps"), "-o", str(tmp_path / "out"),
            "--keys", str(tmp_path / "keys"), "--build-dir", str(tmp_path / "b")]
    assert main(args) == 19
    assert not (tmp_path / "out" / "index.json").exists()  # without it: nothing written
    assert main([*args, "--keep-going"]) == 19
    err = capsys.readouterr().err
    assert "1 of 2 recipes failed" in err and "'broken'" in err and "network unreachable" in err
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert [a["title"] for a in index["apps"]] == ["Hello"]
