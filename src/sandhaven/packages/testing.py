"""Build packages for tests: the Hello example, variants of it, and validly signed
packages with arbitrary (even hostile) archive entries.

    key = SigningKey.generate()
    spk = build_hello(tmp_path, key, version=2)          # -> Path of a .spk
    bad = build_raw(tmp_path / "x.spk", key, hello_manifest(),
                    lambda w: w.file("../escape", b"x"))   # signed, but refused on install
"""

from __future__ import annotations

import shutil
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandhaven.packages.archive import ArchiveWriter
from sandhaven.packages.keys import SigningKey
from sandhaven.packages.manifest import PKGDEF_NAME, Manifest, validate_manifest
from sandhaven.packages.pack import pack
from sandhaven.packages.spk import write_spk

HELLO_SOURCE = Path(__file__).resolve().parents[3] / "examples" / "hello"


def hello_source(dest: Path) -> Path:
    """A fresh copy of ``examples/hello`` at ``dest`` (created); returns ``dest``."""
    shutil.copytree(HELLO_SOURCE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def hello_manifest(**app_changes: Any) -> Manifest:
    """The Hello manifest, with ``[app]`` fields replaced by ``app_changes``."""
    raw = tomllib.loads((HELLO_SOURCE / PKGDEF_NAME).read_text(encoding="utf-8"))
    raw.pop("files")
    raw["app"].update(app_changes)
    return validate_manifest(raw)


def set_app_fields(src: Path, **changes: Any) -> None:
    """Rewrite ``[app]`` values in ``src``'s package definition (ints and strings)."""
    path = src / PKGDEF_NAME
    lines = path.read_text(encoding="utf-8").splitlines()
    in_app = False
    for i, line in enumerate(lines):
        if line.startswith("["):
            in_app = line.strip() == "[app]"
        key = line.split("=", 1)[0].strip()
        if in_app and key in changes:
            value = changes[key]
            lines[i] = f"{key} = {value!r}" if isinstance(value, int) else f'{key} = "{value}"'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def build_hello(workdir: Path, key: SigningKey, *, name: str = "hello", **app_changes: Any
                ) -> Path:
    """Pack a copy of Hello (``[app]`` fields changed as given) into
    ``workdir/<name>.spk`` and return that path."""
    src = hello_source(workdir / f"{name}-src")
    if app_changes:
        set_app_fields(src, **app_changes)
    out = workdir / f"{name}.spk"
    pack(src, key, out)
    return out


def build_raw(out: Path, key: SigningKey, manifest: Manifest | bytes,
              fill: Callable[[ArchiveWriter], None], *, end: bool = True) -> Path:
    """A validly signed ``.spk`` whose archive holds whatever ``fill`` writes (no
    checks); ``end=False`` leaves out the end entry. ``manifest`` may be raw bytes."""
    manifest_bytes = manifest if isinstance(manifest, bytes) else manifest.to_json_bytes()
    write_spk(out, key, manifest_bytes, fill, end=end)
    return out


def hello_entries(writer: ArchiveWriter) -> None:
    """The entries of a minimal valid Hello tree (server and icon)."""
    writer.file("server.py", (HELLO_SOURCE / "server.py").read_bytes(), 0o755)
    writer.directory("icons")
    writer.file("icons/hello.svg", (HELLO_SOURCE / "icons" / "hello.svg").read_bytes())
