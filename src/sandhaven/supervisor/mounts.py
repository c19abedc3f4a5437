"""Finding and removing mounts left under a directory by a killed server."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

_MNT_DETACH = 2


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below ``directory`` in this mount namespace, deepest first."""
    base = os.path.realpath(directory)
    found = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                point = line.split()[4].encode().decode("unicode_escape")
                if point == base or point.startswith(base + "/"):
                    found.append(point)
    except OSError:
        return []
    return sorted(found, key=len, reverse=True)


def unmount_under(directory: Path) -> None:
    """Lazily unmount everything at or below ``directory`` (no-op when nothing is)."""
    points = mounts_under(directory)
    if not points:
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    for point in points:
        libc.umount2(point.encode(), _MNT_DETACH)
