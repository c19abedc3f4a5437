"""Where things are, inside a grain and on the host.

Inside (fixed, documented in docs/reference/sandbox.md)::

    /opt/app            package tree, read-only
    /var                the grain's storage, read-write, the only persistent path
    /tmp                tmpfs with a size cap
    /etc                curated files, read-only
    /sandhaven/init     PID 1 and bridge, read-only
    /sandhaven/api.sock the platform's end of the app's HTTP proxy

The app socket is not in the grain at all: the platform creates it on the host
and hands the listening descriptor down to the init.

On the host, per supervisor runtime directory::

    RUNTIME/etc/                  the curated /etc, built once
    RUNTIME/stage/                mount point for staging (see native/spawn.c)
    RUNTIME/grains/<grain-id>/    app.sock and api.sock of one running grain (root only)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

INSIDE_APP = "/opt/app"
INSIDE_VAR = "/var"
INSIDE_TMP = "/tmp"
INSIDE_INIT = "/sandhaven/init"
INSIDE_API_SOCKET = "/sandhaven/api.sock"
APP_SOCKET_NAME = "app.sock"
API_SOCKET_NAME = "api.sock"
GRAIN_UID = 1000
GRAIN_GID = 1000
HOSTNAME = "sandbox"


@dataclass(frozen=True)
class HostPaths:
    """Host paths one supervisor uses; ``runtime_dir`` is emptied at its start."""

    runtime_dir: Path

    @property
    def etc_dir(self) -> Path:
        return self.runtime_dir / "etc"

    @property
    def stage_dir(self) -> Path:
        return self.runtime_dir / "stage"

    @property
    def grains_dir(self) -> Path:
        return self.runtime_dir / "grains"

    def bridge_dir(self, grain_id: str) -> Path:
        return self.grains_dir / grain_id

    def app_socket(self, grain_id: str) -> Path:
        return self.bridge_dir(grain_id) / APP_SOCKET_NAME

    def api_socket(self, grain_id: str) -> Path:
        return self.bridge_dir(grain_id) / API_SOCKET_NAME
