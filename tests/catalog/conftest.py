"""A small real catalog built by ``sandhaven catalog build`` from a one-recipe apps
directory (the Hello example packed by a tiny build.sh), and a real static web
server for catalogs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandhaven.catalog.build import build_catalog
from sandhaven.packages.testing import HELLO_SOURCE
from sandhaven.testing import free_port

BUILD_SH = """#!/usr/bin/env bash
# Test recipe: the Hello example with one screenshot, packed as is.
set -euo pipefail
key="$1"; out="$2"; build="$3"
rm -rf "$build/tree"; mkdir -p "$build"
echo built >> "$(dirname "$build")/builds.log"
cp -r "{hello}" "$build/tree"
rm -rf "$build/tree/__pycache__"
cp "$(dirname "$0")/sandhaven-pkgdef.toml" "$build/tree/"
sed -i 's|^change_log = .*|&\\nscreenshots = ["icons/hello.svg"]|' \\
  "$build/tree/sandhaven-pkgdef.toml"
"$SANDHAVEN" pack "$build/tree" -k "$key" -o "$out" >/dev/null
"""


def hello_recipe(apps_dir: Path, name: str = "hello") -> Path:
    """``apps_dir/name/``: a recipe (build.sh, package definition) of Hello."""
    recipe = apps_dir / name
    recipe.mkdir(parents=True)
    shutil.copy(HELLO_SOURCE / "sandhaven-pkgdef.toml", recipe)
    (recipe / "build.sh").write_text(BUILD_SH.replace("{hello}", str(HELLO_SOURCE)))
    return recipe


@pytest.fixture(scope="session")
def built_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pristine catalog of Hello (session-wide; copy it before changing it).
    Beside it: ``keys/`` and ``apps/``."""
    root = tmp_path_factory.mktemp("hello-catalog")
    hello_recipe(root / "apps")
    build_catalog(root / "apps", root / "catalog", root / "keys", root / "build")
    return root / "catalog"


@pytest.fixture
def catalog_dir(built_catalog: Path, tmp_path: Path) -> Path:
    """A private copy of the Hello catalog, free to tamper with."""
    return Path(shutil.copytree(built_catalog, tmp_path / "catalog"))


def edit_index(catalog: Path, **changes: object) -> dict:
    """Change fields of the first app of ``catalog``'s index; returns the new index."""
    index = json.loads((catalog / "index.json").read_text())
    index["apps"][0].update(changes)
    (catalog / "index.json").write_text(json.dumps(index))
    return index


@pytest.fixture
def static_server() -> Iterator:
    """Start ``python -m http.server`` on a directory: ``serve(dir) -> base URL``.
    Ready when it prints that it serves; stopped at the end of the test."""
    procs: list[subprocess.Popen] = []

    def serve(directory: Path) -> str:
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-u", "-m", "http.server", str(port),
                                 "--bind", "127.0.0.1", "--directory", str(directory)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(proc)
        line = proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N ..."
        assert line.startswith("Serving HTTP"), line
        return f"http://127.0.0.1:{port}"

    yield serve
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
