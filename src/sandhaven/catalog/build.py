"""Build a static catalog from app recipes: each ``apps/<name>/`` holding a
``build.sh`` and a ``sandhaven-pkgdef.toml`` is built into ``packages/<name>.spk``,
verified, and listed in ``index.json`` with its market icon copied to
``icons/<name>.<ext>``, its screenshots to ``screenshots/<name>-<n>.<ext>`` and
its description, links and change log written to ``apps/<name>.json``
(docs/reference/catalog-format.md).

A recipe is not built again when its files, its key and the previous package
are unchanged since the last build (a stamp in its build directory), so a
second ``catalog build`` of the same recipes takes seconds."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from sandhaven import __version__
from sandhaven.catalog.index import INDEX_FORMAT, MAX_SCREENSHOT_BYTES
from sandhaven.catalog.signing import SIGNATURE_FILE, catalog_key, sign_index
from sandhaven.errors import InvalidInput, RecipeFailed
from sandhaven.packages import archive
from sandhaven.packages.keys import SigningKey, read_key_file, write_key_file
from sandhaven.packages.spk import extract_verified, open_spk, verify

BUILD_TIMEOUT = 600.0  # seconds per recipe: npm downloads included
STAMP = ".catalog-stamp"


def find_recipes(apps_dir: Path) -> list[Path]:
    """The recipe directories under ``apps_dir``, by name. Raises InvalidInput when
    there are none."""
    recipes = sorted(d for d in apps_dir.iterdir()
                     if (d / "build.sh").is_file() and (d / "sandhaven-pkgdef.toml").is_file())
    if not recipes:
        raise InvalidInput(f"No app recipes (build.sh and sandhaven-pkgdef.toml) in {apps_dir}.")
    return recipes


def build_catalog(apps_dir: Path, out_dir: Path, keys_dir: Path, build_root: Path,
                  sandhaven: str | None = None, *, keep_going: bool = False
                  ) -> dict[str, Any]:
    """Build every recipe of ``apps_dir`` into ``out_dir`` and write its index, signed
    with ``keys_dir/catalog.key`` (``signing.py``); returns the index. Each app is
    signed with ``keys_dir/<name>.key``; keys are created (mode 0600) when missing;
    recipe build trees go to ``build_root/<name>``. Raises RecipeFailed
    when a build script fails, and what verification raises for a bad package;
    with ``keep_going`` the other recipes are still built and listed, and then
    RecipeFailed names every recipe that failed."""
    recipes = find_recipes(apps_dir)
    packages = out_dir / "packages"
    packages.mkdir(parents=True, exist_ok=True)
    for folder in ("icons", "apps", "screenshots"):
        (out_dir / folder).mkdir(exist_ok=True)
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    apps, failed = [], []
    for recipe in recipes:
        try:
            apps.append(_build_one(recipe, packages, keys_dir, build_root, sandhaven))
        except InvalidInput as exc:  # RecipeFailed and every package error
            if not keep_going:
                raise
            failed.append(str(exc))
    index = {"format": INDEX_FORMAT, "apps": apps}
    data = (json.dumps(index, indent=2, sort_keys=True) + "\n").encode()
    # Written whole, then renamed: a server reading the catalog never sees half an index.
    sig = out_dir / f".{SIGNATURE_FILE}.tmp"
    sig.write_text(sign_index(catalog_key(keys_dir), data))
    tmp = out_dir / ".index.json.tmp"
    tmp.write_bytes(data)
    sig.replace(out_dir / SIGNATURE_FILE)
    tmp.replace(out_dir / "index.json")
    if failed:
        raise RecipeFailed(f"{len(failed)} of {len(recipes)} recipes failed; the catalog "
                           f"lists the others. " + " | ".join(failed))
    return index


def recipe_stamp(recipe: Path, key_path: Path) -> str:
    """A digest of everything a recipe's package comes from: its files (not its
    ``build/`` directory), its signing key's app ID, and this Sandhaven's version."""
    h = hashlib.sha256(f"{__version__}\0{read_key_file(key_path).app_id}\0".encode())
    for path in sorted(recipe.rglob("*")):
        rel = path.relative_to(recipe)
        if rel.parts[0] in ("build", "node_modules") or not path.is_file():
            continue
        h.update(f"{rel}\0{path.stat().st_size}\0".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _build_one(recipe: Path, packages: Path, keys_dir: Path, build_root: Path,
               sandhaven: str | None) -> dict[str, Any]:
    key_path = keys_dir / f"{recipe.name}.key"
    if not key_path.exists():
        write_key_file(SigningKey.generate(), key_path)
    spk = packages / f"{recipe.name}.spk"
    stamp_file = build_root / recipe.name / STAMP
    stamp = recipe_stamp(recipe, key_path)
    if spk.is_file() and stamp_file.is_file() and stamp_file.read_text() == (
            f"{stamp} {_file_sha256(spk)}"):
        return _entry(spk, packages.parent)
    fresh = packages / f".{recipe.name}.new.spk"
    env = {**os.environ, "SANDHAVEN": sandhaven or str(Path(sys.executable).parent / "sandhaven")}
    done = subprocess.run(
        ["bash", str(recipe / "build.sh"), str(key_path), str(fresh),
         str(build_root / recipe.name)],
        env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    if done.returncode == 0 and not fresh.is_file():
        raise RecipeFailed(f"Recipe '{recipe.name}' build.sh exited 0 but wrote no package.")
    if done.returncode == 0:
        fresh.replace(spk)  # a server reading the catalog never sees half a package
    else:
        fresh.unlink(missing_ok=True)
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RecipeFailed(f"Recipe '{recipe.name}' build failed (exit {done.returncode}): "
                           + " / ".join(tail))
    entry = _entry(spk, packages.parent)
    stamp_file.parent.mkdir(parents=True, exist_ok=True)
    stamp_file.write_text(f"{stamp} {_file_sha256(spk)}")
    return entry


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class _Keep(archive.CheckOnly):
    """Checks every entry and keeps the bytes of a few files (icons: at most 256 KiB,
    which the manifest's checks guarantee; screenshots: refused past
    MAX_SCREENSHOT_BYTES)."""

    def __init__(self, wanted: set[str]) -> None:
        super().__init__()
        self.wanted = wanted
        self.data: dict[str, bytes] = {}

    def file(self, path: str, mode: int, size: int, chunks: Iterator[bytes]) -> None:
        if path not in self.wanted:
            return super().file(path, mode, size, chunks)
        if size > MAX_SCREENSHOT_BYTES:
            raise InvalidInput(f"Package file '{path}' is {size} bytes; a catalog image may "
                               f"have at most {MAX_SCREENSHOT_BYTES}.")
        self.data[path] = b"".join(chunks)
        self.files[path] = size


IMAGE_SUFFIXES = (".svg", ".png")


def _copy_out(data: dict[str, bytes], wanted: str, out_dir: Path, name: str) -> str:
    """Write a kept image to ``out_dir/name<suffix>``; its catalog path, or "" when the
    package lacks it or it is not SVG or PNG."""
    suffix = PurePosixPath(wanted).suffix.lower()
    if wanted not in data or suffix not in IMAGE_SUFFIXES:
        return ""
    rel = f"{name}{suffix}"
    (out_dir / rel).write_bytes(data[wanted])
    return rel


def _entry(spk: Path, out_dir: Path) -> dict[str, Any]:
    """The index entry of a package, read from the package after verifying all of it;
    its market icon (else app grid icon) is written to ``icons/``, its screenshots
    to ``screenshots/`` and its detail file to ``apps/``."""
    with open_spk(spk) as f:
        pkg = verify(f)
        meta = pkg.manifest.metadata
        wanted = meta.icons.market or meta.icons.app_grid or ""
        sink = _Keep({wanted, *meta.screenshots} - {""})
        extract_verified(pkg, sink)
    icon = _copy_out(sink.data, wanted, out_dir, f"icons/{spk.stem}") if wanted else ""
    shots = [_copy_out(sink.data, path, out_dir, f"screenshots/{spk.stem}-{n}")
             for n, path in enumerate(meta.screenshots)]
    detail = f"apps/{spk.stem}.json"
    (out_dir / detail).write_text(json.dumps({
        "app_id": pkg.app_id, "description": meta.description, "website": meta.website,
        "code_url": meta.code_url, "screenshots": [s for s in shots if s],
        "change_log": meta.change_log}, indent=2, sort_keys=True) + "\n")
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
        "detail": detail,
    }
