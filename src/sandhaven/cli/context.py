"""Shared helpers for commands: effective settings and the store from parsed args."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sandhaven.config import Settings, load_settings
from sandhaven.encryption import Storage, open_storage
from sandhaven.errors import StoreError
from sandhaven.store import Store


def settings_from_args(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Effective settings: defaults, config file, environment, then flags in ``args``."""
    flags = {"data_dir": getattr(args, "data_dir", None), **overrides}
    return load_settings(config_file=getattr(args, "config", None), overrides=flags)


@contextmanager
def open_store(settings: Settings) -> Iterator[Store]:
    """Open (and migrate) the store of an existing data directory, for admin commands;
    with encryption on, inside the private area (the running server's mount, or
    mounted for the command and unmounted after).

    Raises StoreError when the data directory holds no store (a mistyped
    ``--data-dir`` must not silently create a new, empty server), EncryptionError
    when the private area cannot be opened.
    """
    with open_storage_and_store(settings) as (_, store):
        yield store


@contextmanager
def open_storage_and_store(settings: Settings) -> Iterator[tuple[Storage, Store]]:
    """:func:`open_store` with the :class:`Storage` it opened (grain volumes, for
    commands that touch grains)."""
    data = Path(settings.data_dir)
    if settings.storage_encryption and not settings.get("database_url"):
        if not (data / "private.cipher").is_dir():
            raise StoreError(f"No Sandhaven store in {settings.data_dir} (private.cipher is "
                             "missing): check --data-dir, or start `sandhaven serve` once to "
                             "create it.")
    elif not settings.get("database_url"):
        db = data / "sandhaven.sqlite3"
        if not db.is_file():
            raise StoreError(f"No Sandhaven store in {settings.data_dir} ({db.name} is missing): "
                             "check --data-dir, or start `sandhaven serve` once to create it.")
    with open_storage(settings, admin_command=True) as storage:
        store = Store.open(storage.database_url, wal=not storage.encrypted_store)
        try:
            yield storage, store
        finally:
            store.close()
