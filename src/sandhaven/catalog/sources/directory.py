"""A catalog in a directory on this machine (the embedded default)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from sandhaven.catalog.sources import check_path, too_large
from sandhaven.errors import CatalogError

CHUNK = 1 << 20


class DirectorySource:
    """Reads files under ``root``. A path must be a safe relative name and must not
    leave ``root`` through a symlink."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def fetch(self, path: str, out: BinaryIO, limit: int) -> int:
        check_path(path)
        full = self.root / path
        try:
            real_root = os.path.realpath(self.root)
            if os.path.realpath(full) != os.path.join(real_root, path):
                raise CatalogError(f"Catalog file '{path}' leaves the catalog directory "
                                   "through a symlink.")
            # Non-blocking, so a FIFO planted in the catalog cannot hang the server.
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            if not self.root.is_dir():
                raise CatalogError(f"The catalog directory {self.root} does not exist "
                                   "(build it with `sandhaven catalog build`).") from None
            raise CatalogError(f"Catalog file '{path}' is missing from {self.root}.") from None
        except OSError as exc:
            raise CatalogError(f"Catalog file '{path}' cannot be read: {exc.strerror}.") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise CatalogError(f"Catalog file '{path}' is not a regular file.")
        with os.fdopen(fd, "rb") as f:
            size = 0
            while chunk := f.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise too_large(path, limit)
                out.write(chunk)
        return size
