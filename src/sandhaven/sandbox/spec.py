"""What a grain runs and within which limits: the input of the sandbox builder.

The supervisor gets a :class:`GrainSpec` for a grain ID from a callable that the
store backs (package tree, storage directory, manifest command). Nothing here
touches the host; the builder in :mod:`sandhaven.sandbox.argv` turns a spec into
the command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandhaven.errors import SandboxError

MiB = 1024 * 1024

# Names an app cannot set: the platform owns them (docs/reference/sandbox.md).
PLATFORM_ENV = frozenset(
    {"HOME", "PATH", "LANG", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "TZ"}
)


@dataclass(frozen=True)
class Limits:
    """Resource limits of one grain. Bytes for sizes; counts for the rest.

    ``open_files`` is the RLIMIT_NOFILE (soft, hard) pair; Sandstorm's figures
    are the defaults (compat.md: 1024 / 4096, /tmp 16 MB).
    """

    memory_bytes: int = 1024 * MiB
    max_processes: int = 512
    tmp_bytes: int = 16 * MiB
    open_files: tuple[int, int] = (1024, 4096)

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        """The limits the admin set (``grains.memory_limit`` etc., in MiB)."""
        return cls(
            memory_bytes=int(settings.grains_memory_limit) * MiB,
            max_processes=int(settings.grains_max_processes),
            tmp_bytes=int(settings.grains_tmp_size) * MiB,
        )


@dataclass(frozen=True)
class GrainSpec:
    """One grain's sandbox input.

    ``command`` is the argv run inside the grain (absolute paths inside it,
    e.g. ``/usr/bin/python3`` or ``/opt/app/bin/server``); ``env`` holds only
    what the manifest declares; ``app_port`` is the loopback TCP port the app's
    HTTP server listens on inside the grain. ``package_dir`` is mounted
    read-only at ``/opt/app``, ``storage_dir`` read-write at ``/var``.
    """

    package_dir: Path
    storage_dir: Path
    command: tuple[str, ...]
    app_port: int
    env: Mapping[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if not self.command:
            raise SandboxError("Grain command is empty.")
        if not 1 <= self.app_port <= 65535 or self.app_port == PROXY_PORT:
            raise SandboxError(f"Grain app port {self.app_port} is not a usable port.")
        for name, value in self.env.items():
            if not name or "=" in name or "\0" in name or "\0" in value:
                raise SandboxError(f"Grain environment variable {name!r} is not valid.")
            if name in PLATFORM_ENV:
                raise SandboxError(f"Grain environment variable {name} is set by the platform.")


# Inside every grain (compat.md: Sandstorm's bridge proxy listens on this port).
PROXY_PORT = 15239
