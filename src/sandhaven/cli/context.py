"""Shared helpers for commands: effective settings and the store from parsed args."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sandhaven.config import Settings, load_settings
from sandhaven.errors import StoreError
from sandhaven.store import Store


def settings_from_args(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Effective settings: defaults, config file, environment, then flags in ``args``."""
    flags = {"data_dir": getattr(args, "data_dir", None), **overrides}
    return load_settings(config_file=getattr(args, "config", None), overrides=flags)


def open_store(settings: Settings) -> Store:
    """Open (and migrate) the store of an existing data directory, for admin commands.

    Raises StoreError when the data directory holds no store (a mistyped
    ``--data-dir`` must not silently create a new, empty server).
    """
    if not settings.get("database_url"):
        db = Path(settings.data_dir) / "sandhaven.sqlite3"
        if not db.is_file():
            raise StoreError(f"No Sandhaven store in {settings.data_dir} ({db.name} is missing): "
                             "check --data-dir, or start `sandhaven serve` once to create it.")
    return Store.open(settings.database)
