"""Build a static catalog from app recipes: each ``apps/<name>/`` holding a
``build.sh`` and a ``sandhaven-pkgdef.toml`` is built into ``packages/<name>.spk``,
verified, and listed in ``index.json`` with its market icon copied to
``icons/<name>.<ext>`` (docs/reference/catalog-format.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from sandhaven.errors import InvalidInput, RecipeFailed
from sandhaven.packages import archive
from sandhaven.packages.keys import SigningKey, write_key_file
from sandhaven.packages.spk import extract_verified, open_spk, verify

INDEX_FORMAT = 1
BUILD_TIMEOUT = 600.0  # seconds per recipe: npm downloads included


def find_recipes(apps_dir: Path) -> list[Path]:
    """The recipe directories under ``apps_dir``, by name. Raises InvalidInput when
    there are none."""
    recipes = sorted(d for d in apps_dir.iterdir()
                     if (d / "build.sh").is_file() and (d / "sandhaven-pkgdef.toml").is_file())
    if not recipes:
        raise InvalidInput(f"No app recipes (build.sh and sandhaven-pkgdef.toml) in {apps_dir}.")
    return recipes


def build_catalog(apps_dir: Path, out_dir: Path, keys_dir: Path, build_root: Path,
                  sandhaven: str | None = None) -> dict[str, Any]:
    """Build every recipe of ``apps_dir`` into ``out_dir`` and write its index; returns
    the index. Each app is signed with ``keys_dir/<name>.key``, created (mode 0600)
    when missing; recipe build trees go to ``build_root/<name>``. Raises RecipeFailed
    when a build script fails, and what verification raises for a bad package."""
    recipes = find_recipes(apps_dir)
    packages = out_dir / "packages"
    packages.mkdir(parents=True, exist_ok=True)
    (out_dir / "icons").mkdir(exist_ok=True)
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    apps = [_build_one(recipe, packages, keys_dir, build_root, sandhaven) for recipe in recipes]
    index = {"format": INDEX_FORMAT, "apps": apps}
    (out_dir / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return index


def _build_one(recipe: Path, packages: Path, keys_dir: Path, build_root: Path,
               sandhaven: str | None) -> dict[str, Any]:
    key_path = keys_dir / f"{recipe.name}.key"
    if not key_path.exists():
        write_key_file(SigningKey.generate(), key_path)
    spk = packages / f"{recipe.name}.spk"
    env = {**os.environ, "SANDHAVEN": sandhaven or str(Path(sys.executable).parent / "sandhaven")}
    done = subprocess.run(
        ["bash", str(recipe / "build.sh"), str(key_path), str(spk), str(build_root / recipe.name)],
        env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RecipeFailed(f"Recipe '{recipe.name}' build failed (exit {done.returncode}): "
                           + " / ".join(tail))
    return _entry(spk, packages.parent / "icons")


class _KeepOne(archive.CheckOnly):
    """Checks every entry and keeps the bytes of one file (an icon: at most 256 KiB,
    which the manifest's checks guarantee)."""

    def __init__(self, wanted: str) -> None:
        super().__init__()
        self.wanted, self.data = wanted, b""

    def file(self, path: str, mode: int, size: int, chunks: Iterator[bytes]) -> None:
        if path != self.wanted:
            return super().file(path, mode, size, chunks)
        self.data = b"".join(chunks)
        self.files[path] = size


def _entry(spk: Path, icons: Path) -> dict[str, Any]:
    """The index entry of a package, read from the package after verifying all of it;
    its market icon (else app grid icon) is written to ``icons/``."""
    with open_spk(spk) as f:
        pkg = verify(f)
        meta = pkg.manifest.metadata
        wanted = meta.icons.market or meta.icons.app_grid or ""
        sink = _KeepOne(wanted)
        extract_verified(pkg, sink)
    icon = ""
    if wanted and wanted in sink.files:
        icon = f"icons/{spk.stem}{PurePosixPath(wanted).suffix.lower()}"
        (icons.parent / icon).write_bytes(sink.data)
    app = pkg.manifest.app
    return {
        "app_id": pkg.app_id,
        "title": app.title,
        "short_description": meta.short_description,
        "categories": list(meta.categories),
        "license": meta.license.model_dump(exclude_none=True) if meta.license else None,
        "author": meta.author.upstream_author,
        "marketing_version": app.marketing_version,
        "version": app.version,
        "package_id": pkg.package_id,
        "package": f"packages/{spk.name}",
        "size": spk.stat().st_size,
        "icon": icon,
    }
