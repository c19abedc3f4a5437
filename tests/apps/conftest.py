"""Fixtures of the app recipes' tests: packages built once per test session (the real
``sandhaven serve`` to drive in Chromium, ``app_server``, lives in tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandhaven.packages.keys import SigningKey, write_key_file
from sandhaven.packages.manifest import Manifest
from sandhaven.packages.spk import open_spk, verify, verify_file
from tests.conftest import AppServer  # noqa: F401 (app tests import it from here)

APPS = Path(__file__).parents[2] / "apps"
SANDHAVEN = Path(sys.executable).parent / "sandhaven"


@dataclass(frozen=True)
class BuiltApp:
    """A recipe built into a signed package: ``spk`` signed with ``key``."""

    spk: Path
    key: SigningKey

    @property
    def app_id(self) -> str:
        return self.key.app_id

    def __iter__(self):  # type: ignore[no-untyped-def]
        """``spk, key = build_recipe(...)``."""
        return iter((self.spk, self.key))


def build_recipe(name: str, build_dir: Path, out_dir: Path, timeout: float = 600) -> BuiltApp:
    """Run ``apps/<name>/build.sh`` with a fresh signing key, assembling the tree in
    ``build_dir`` (a tree holding the pinned upstream is reused); the package and key
    go to ``out_dir``. Raises CalledProcessError when the recipe fails."""
    out_dir.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    key_file = out_dir / f"{name}.key"
    write_key_file(key, key_file)
    spk = out_dir / f"{name}.spk"
    subprocess.run(["bash", str(APPS / name / "build.sh"), str(key_file), str(spk),
                    str(build_dir)], check=True, timeout=timeout,
                   env={"PATH": "/usr/bin:/bin", "SANDHAVEN": str(SANDHAVEN),
                        "HOME": str(build_dir)})
    return BuiltApp(spk, key)


class RecipeCache:
    """Builds each recipe at most once per test session (``get(name)``)."""

    def __init__(self, build_root: Path, out_root: Path) -> None:
        self.build_root, self.out_root = build_root, out_root
        self.built: dict[str, BuiltApp] = {}

    def get(self, name: str) -> BuiltApp:
        if name not in self.built:
            self.built[name] = build_recipe(name, self.build_root / name, self.out_root)
        return self.built[name]


@pytest.fixture(scope="session")
def recipes(app_build_root: Path, tmp_path_factory: pytest.TempPathFactory) -> RecipeCache:
    """``recipes.get("tiddlywiki")`` → a BuiltApp, built once per test session."""
    return RecipeCache(app_build_root, tmp_path_factory.mktemp("app-packages"))


def verified_manifest(spk: Path, key: SigningKey) -> Manifest:
    """Verify every entry of ``spk``, check it is signed with ``key``, and return its
    manifest."""
    assert verify_file(spk)["app_id"] == key.app_id  # every entry checks out
    with open_spk(spk) as f:
        return verify(f).manifest
