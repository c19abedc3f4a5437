"""Shared helpers for commands: effective settings and the store from parsed args."""

from __future__ import annotations

import argparse
from typing import Any

from sandhaven.config import Settings, load_settings
from sandhaven.store import Store


def settings_from_args(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Effective settings: defaults, config file, environment, then flags in ``args``."""
    flags = {"data_dir": getattr(args, "data_dir", None), **overrides}
    return load_settings(config_file=getattr(args, "config", None), overrides=flags)


def open_store(settings: Settings) -> Store:
    """Open (and migrate) the store named by the settings. Raises StoreError."""
    return Store.open(settings.database)
