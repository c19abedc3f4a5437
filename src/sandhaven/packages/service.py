"""The package service one server holds: install, uninstall and list, with the
server's store, packages directory and limits. The shell, the API and the CLI
all go through :mod:`sandhaven.packages.install`; this only binds its arguments.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sandhaven.packages.install import (
    InstalledApp,
    InstallResult,
    install_package,
    list_installed_apps,
    package_file,
    packages_dir_of,
    uninstall_package,
)
from sandhaven.packages.limits import Limits
from sandhaven.packages.manifest import Manifest
from sandhaven.packages.tree import remove_tree
from sandhaven.store import Store
from sandhaven.store.models import Package

#: Icon types the shell serves, by file suffix.
ICON_TYPES = {".svg": "image/svg+xml", ".png": "image/png"}


@dataclass
class PackageService:
    store: Store
    packages_dir: Path
    limits: Limits
    sandboxed: bool = True

    @classmethod
    def from_settings(cls, store: Store, settings: Any) -> PackageService:
        return cls(store, packages_dir_of(settings.data_dir), Limits.from_settings(settings),
                   settings.get("packages.unpack_sandbox") == "bubblewrap")

    def install(self, source: Path | BinaryIO, installed_by: str | None = None
                ) -> InstallResult:
        """Verify and install a ``.spk`` (path or open seekable binary file). Raises
        what :func:`install_package` raises."""
        return install_package(self.store, self.packages_dir, source, self.limits,
                               installed_by=installed_by, sandboxed=self.sandboxed)

    def remove_stale_temporaries(self, older_than: float = 3600.0) -> int:
        """Remove install directories left by a killed install (``.install-*``), once
        older than ``older_than`` seconds so that one still running is never
        touched; returns how many were removed."""
        removed = 0
        if not self.packages_dir.is_dir():
            return 0
        cutoff = time.time() - older_than
        for entry in self.packages_dir.glob(".install-*"):
            try:
                if entry.lstat().st_mtime < cutoff:
                    remove_tree(entry)
                    removed += 1
            except OSError:
                continue
        return removed

    def uninstall(self, package_id: str) -> None:
        uninstall_package(self.store, self.packages_dir, package_id)

    def apps(self) -> list[InstalledApp]:
        return list_installed_apps(self.store)

    def icon(self, package_id: str) -> tuple[Path, str] | None:
        """``(file, media type)`` of an installed package's app icon, or None."""
        with self.store.session() as s:
            row = s.get(Package, package_id)
            manifest = Manifest.model_validate(row.manifest) if row else None
        if manifest is None:
            return None
        icons = manifest.metadata.icons
        name = icons.app_grid or icons.market or icons.grain
        if not name:
            return None
        media_type = ICON_TYPES.get(Path(name).suffix.lower())
        path = package_file(self.packages_dir, package_id, name)
        if media_type is None or path is None:
            return None
        return path, media_type
