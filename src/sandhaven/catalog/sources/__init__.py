"""Where a catalog is read from: one small reader per kind behind one interface.

``load(source, data_dir)`` picks the reader for the ``catalog.source`` setting:
an ``http://`` or ``https://`` URL (:mod:`.web`), else a directory on this
machine (:mod:`.directory`); empty means ``DATA_DIR/catalog``, the catalog
``scripts/serve.sh`` builds from the recipes in ``apps/``.

Every reader refuses paths that are not safe relative names (no ``..``, no
absolute paths) and files larger than the caller's limit, and raises only
:class:`~sandhaven.errors.CatalogError`, whose one line names the file and the
reason.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO, Protocol

from sandhaven import pathsafety
from sandhaven.errors import CatalogError


class CatalogSource(Protocol):
    """A reader of one catalog's files, by path relative to the index."""

    #: Where the catalog is, for messages and the market page.
    location: str

    def fetch(self, path: str, out: BinaryIO, limit: int) -> int:
        """Write the file at ``path`` into ``out``; returns its size in bytes. Raises
        CatalogError when it is missing, unreachable, or larger than ``limit``."""
        ...


def check_path(path: str) -> str:
    """``path`` when it is a safe relative name; raises CatalogError otherwise."""
    if not pathsafety.is_safe_relative(path):
        raise CatalogError(f"Catalog path {path[:200]!r} is not a safe relative path.")
    return path


def too_large(path: str, limit: int) -> CatalogError:
    return CatalogError(f"Catalog file '{path}' is larger than the limit of {limit} bytes.")


def read(source: CatalogSource, path: str, limit: int) -> bytes:
    """The bytes of a small catalog file (index, detail, icon). Raises CatalogError."""
    buf = io.BytesIO()
    source.fetch(path, buf, limit)
    return buf.getvalue()


def default_location(data_dir: Path) -> Path:
    """Where the default catalog is built and read: ``DATA_DIR/catalog``."""
    return Path(data_dir) / "catalog"


def load(source: str, data_dir: Path) -> CatalogSource:
    """The reader for a ``catalog.source`` value (already validated by the settings)."""
    if source.startswith(("http://", "https://")):
        from sandhaven.catalog.sources.web import WebSource

        return WebSource(source)
    from sandhaven.catalog.sources.directory import DirectorySource

    return DirectorySource(Path(source) if source else default_location(data_dir))
