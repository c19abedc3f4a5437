"""Package limits: what a ``.spk`` may hold before it is refused.

Every limit is checked while streaming, before the bytes it guards are written,
so a decompression bomb stops at the first byte past the limit. The reasons:

- ``max_spk_bytes`` (2 GiB): a package is uploaded over HTTP and kept on disk.
- ``max_unpacked_bytes`` (4 GiB): the tree lives on the server's disk once per
  package version; a small compressed file must not fill it (zstd expands up to
  ~30000×).
- ``max_entries`` (100 000): files, directories and symlinks; each costs an inode
  and a few syscalls at install, and the sandbox binds the whole tree.
- ``max_path_bytes`` (1024) and ``max_depth`` (32): the tree sits below the data
  dir and is mounted at ``/opt/app``; full paths must stay well under PATH_MAX
  (4096) and tools that recurse must not be led into deep trees.
- ``max_manifest_bytes`` (256 KiB): the manifest is parsed in memory and stored
  in the store.
- ``max_icon_bytes`` (256 KiB): icons are served to every user of the shell.
- ``max_symlink_bytes`` (1024): a link target longer than a path is useless.

The first three are settings (``packages.*``); the rest are part of the format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GiB = 1 << 30
KiB = 1 << 10


@dataclass(frozen=True)
class Limits:
    """Limits in bytes or counts; see the module docstring for the reasons."""

    max_spk_bytes: int = 2 * GiB
    max_unpacked_bytes: int = 4 * GiB
    max_entries: int = 100_000
    max_path_bytes: int = 1024
    max_depth: int = 32
    max_manifest_bytes: int = 256 * KiB
    max_icon_bytes: int = 256 * KiB
    max_symlink_bytes: int = 1024

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        """Limits with the ``packages.*`` settings applied."""
        return cls(
            max_spk_bytes=settings.get("packages.max_spk_bytes"),
            max_unpacked_bytes=settings.get("packages.max_unpacked_bytes"),
            max_entries=settings.get("packages.max_entries"),
        )
