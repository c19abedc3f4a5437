"""Package trees on disk: writing one from the archive, checking one, removing one.

:class:`TreeWriter` is the :class:`~sandhaven.packages.archive.Sink` that
creates files; :func:`check_tree` re-checks a finished tree with nothing but
``lstat`` (the installer's own check of what a sandboxed unpacker produced);
:func:`remove_tree` removes a tree even when it is read-only.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from sandhaven import pathsafety
from sandhaven.errors import PackageTooLarge, UnsafeEntry
from sandhaven.packages.limits import Limits


class TreeWriter:
    """An :class:`archive.Sink` that creates the tree under ``root`` (which it makes).

    Files are created with ``O_EXCL | O_NOFOLLOW``; the archive rules already
    guarantee every parent is a directory this writer made. With ``read_only``
    files get 0444/0555 and, in :meth:`finish`, directories 0555; otherwise
    0644/0755 and 0755.
    """

    def __init__(self, root: Path, *, read_only: bool) -> None:
        self.root = Path(root)
        self.read_only = read_only
        self._dirs: list[str] = []
        os.mkdir(self.root, 0o700)

    def directory(self, path: str, mode: int) -> None:
        os.mkdir(os.path.join(self.root, path), 0o700)
        self._dirs.append(path)

    def symlink(self, path: str, target: str) -> None:
        os.symlink(target, os.path.join(self.root, path))

    def file(self, path: str, mode: int, size: int, chunks: Iterator[bytes]) -> None:
        executable = bool(mode & 0o111)
        final = (0o555 if executable else 0o444) if self.read_only else \
            (0o755 if executable else 0o644)
        fd = os.open(os.path.join(self.root, path),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            os.fchmod(fd, final)
        finally:
            os.close(fd)

    def finish(self, *, root: bool = True) -> None:
        """Give directories their final mode, deepest first; the root too unless
        ``root`` is False (moving a directory to another parent needs write
        permission on it, to update its ``..``)."""
        mode = 0o555 if self.read_only else 0o755
        for path in reversed(self._dirs):
            os.chmod(os.path.join(self.root, path), mode)
        if root:
            os.chmod(self.root, mode)


def remove_tree(path: Path) -> None:
    """Remove a tree made by :class:`TreeWriter`, read-only or not. Never follows
    symlinks. Missing is fine."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    for dirpath, dirnames, _ in os.walk(path):
        os.chmod(dirpath, 0o700)
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, 0o700)
    shutil.rmtree(path)


def check_tree(root: Path, limits: Limits) -> tuple[int, int, dict[str, int]]:
    """Check an unpacked tree as if it came from an untrusted source: only
    directories, regular files with one link and symlinks staying inside; no
    setuid, setgid or sticky bit; names, depth, entry count and total size
    within the limits. Never follows a symlink.

    Returns ``(entries, file bytes, {path: size of each regular file})``.
    Raises UnsafeEntry or PackageTooLarge naming the path.
    """
    entries, total = 0, 0
    sizes: dict[str, int] = {}
    root_s = str(root)
    for dirpath, dirnames, filenames in os.walk(root_s):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root_s)
            if not pathsafety.is_safe_relative(rel) or len(rel.encode()) > limits.max_path_bytes \
                    or pathsafety.depth(rel) > limits.max_depth:
                raise UnsafeEntry(f"Unpacked entry {rel!r} has a name the format refuses.")
            st = os.lstat(full)
            mode = st.st_mode
            entries += 1
            if entries > limits.max_entries:
                raise PackageTooLarge(f"The unpacked tree has more than {limits.max_entries} "
                                      "entries.")
            if stat.S_IMODE(mode) & ~0o777:
                raise UnsafeEntry(f"Unpacked entry {rel!r} has mode {stat.S_IMODE(mode):#o}.")
            if stat.S_ISLNK(mode):
                if not pathsafety.symlink_stays_inside(rel, os.readlink(full)):
                    raise UnsafeEntry(f"Unpacked symlink {rel!r} points outside the package.")
            elif stat.S_ISREG(mode):
                if st.st_nlink != 1:
                    raise UnsafeEntry(f"Unpacked file {rel!r} is a hardlink.")
                total += st.st_size
                sizes[rel] = st.st_size
                if total > limits.max_unpacked_bytes:
                    raise PackageTooLarge(f"The unpacked tree is larger than "
                                          f"{limits.max_unpacked_bytes} bytes.")
            elif not stat.S_ISDIR(mode):
                raise UnsafeEntry(f"Unpacked entry {rel!r} is not a file, directory or "
                                  "symlink.")
    return entries, total, sizes
