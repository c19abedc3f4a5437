"""The grain backup format, version 1 (docs/reference/backup-format.md).

A backup is a zip file. ``data/…`` holds the grain's ``/var`` tree (directories
end in ``/``; symlinks are entries whose Unix mode is a link and whose content
is the target), ``log`` the grain's log, and ``metadata.json`` — written last,
because it lists the SHA-256 of every file — describes the grain and every
entry. Sandstorm's backup zip (``data/``, ``log``, metadata) is the model.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sandhaven import pathsafety

FORMAT = 1
METADATA = "metadata.json"
LOG = "log"
DATA = "data/"
#: Bytes of metadata.json a reader accepts: ~100 bytes per entry for a million entries.
MAX_METADATA_BYTES = 256 * 1024 * 1024
MAX_ENTRIES = 1_000_000
HEX64 = re.compile(r"^[0-9a-f]{64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileEntry(_Strict):
    """One entry under ``data/``: ``path`` is relative to the grain's /var."""

    path: str = Field(max_length=4096)
    type: Literal["file", "dir", "symlink"]
    mode: int = Field(ge=0, le=0o7777)
    size: int = Field(default=0, ge=0)
    sha256: str = ""
    target: str = Field(default="", max_length=4096)

    @field_validator("path")
    @classmethod
    def _safe_path(cls, v: str) -> str:
        if not pathsafety.is_safe_relative(v, controls=True):
            raise ValueError(f"unsafe path {v[:80]!r}")
        return v


class Skipped(_Strict):
    """What the backup could not hold: a socket, a FIFO, or a symlink pointing out of
    the tree (absolute, or up past its top), which a restore would refuse."""

    path: str = Field(max_length=4096)
    kind: Literal["socket", "fifo", "symlink"]


class Identity(_Strict):
    """A person's per-grain user ID, so that returning users keep theirs."""

    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=200)
    identity_id: str = Field(pattern=r"^[0-9a-f]{32}$")


class LogEntry(_Strict):
    size: int = Field(ge=0)
    sha256: str = Field(pattern=HEX64.pattern)


class Metadata(_Strict):
    """``metadata.json``. Times are UTC ISO 8601."""

    format: Literal[1]
    app_id: str = Field(pattern=r"^[0-9a-z]{52}$")
    app_title: str = Field(default="", max_length=200)
    app_version: int = Field(ge=0)
    marketing_version: str = Field(default="", max_length=100)
    package_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    title: str = Field(max_length=1000)
    created_at: datetime
    backed_up_at: datetime
    identities: list[Identity] = Field(default_factory=list, max_length=100_000)
    files: list[FileEntry] = Field(max_length=MAX_ENTRIES)
    skipped: list[Skipped] = Field(default_factory=list, max_length=MAX_ENTRIES)
    log: LogEntry | None = None

    @property
    def data_bytes(self) -> int:
        """Sum of the sizes of the regular files (what the grain will use on disk)."""
        return sum(f.size for f in self.files if f.type == "file")
