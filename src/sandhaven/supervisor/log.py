"""A grain's log: its standard output and error, capped in size.

A grain's output can hold user data: the server keeps these logs in its
encrypted private area (``DATA_DIR/private/grain-logs``, see
:mod:`sandhaven.encryption.private`).

Two files, ``log`` and ``log.1``, each at most half the cap: when ``log`` is
full it becomes ``log.1`` (the older half is dropped). Reading gives the older
file first. Lines are kept whole where they fit.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


class GrainLog:
    """Appends bytes to ``directory/log`` within ``cap_bytes`` in total."""

    def __init__(self, directory: Path, cap_bytes: int) -> None:
        self.path = directory / "log"
        self.old = directory / "log.1"
        self.half = max(1024, cap_bytes // 2)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._size = self.path.stat().st_size
        except FileNotFoundError:
            self._size = 0

    def write(self, data: bytes) -> None:
        """Append ``data``; rotates first if it would pass half the cap."""
        if len(data) > self.half:
            data = data[-self.half :]
        if self._size + len(data) > self.half:
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.path, self.old)
            self._size = 0
        with open(self.path, "ab") as f:
            f.write(data)
        self._size += len(data)

    def note(self, text: str) -> None:
        """A platform line (start, stop, crash reason), marked as such."""
        self.write(f"[sandhaven] {text}\n".encode())

    def read(self) -> str:
        """The whole log, older half first, as text (bad UTF-8 replaced)."""
        parts = []
        for p in (self.old, self.path):
            with contextlib.suppress(FileNotFoundError):
                parts.append(p.read_bytes())
        return b"".join(parts).decode("utf-8", "replace")

    def tail(self, lines: int = 1) -> str:
        """The last ``lines`` lines, for one-line error messages."""
        return "\n".join(self.read().rstrip("\n").splitlines()[-lines:])
