"""Writing a grain backup: the grain's stopped ``/var`` tree, its log and its
metadata into one zip (``sandhaven.backup.format``).

Files are stored uncompressed, except sparse files, which deflate at level 1
(their holes cost almost nothing then); storing keeps a backup as fast as the
disk, and zip64 (Python's ``zipfile``) takes files and archives past 4 GiB.
Symlinks are written as links and never followed; hardlinks become copies;
sockets and FIFOs are skipped and listed, as are symlinks pointing out of the
tree (a restore would refuse them).
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sandhaven import pathsafety
from sandhaven.backup import format as fmt
from sandhaven.errors import InvalidInput, SandhavenError

CHUNK = 1024 * 1024
ZIP_DIR_FLAG = 0x10  # MS-DOS directory attribute, as zipfile writes for directories
EARLIEST = (1980, 1, 1, 0, 0, 0)  # the zip format's first date


@dataclass(frozen=True)
class Found:
    """An entry of the tree: ``rel`` relative to its top, ``st`` from lstat."""

    rel: str
    path: Path
    st: os.stat_result


def open_new(path: Path) -> BinaryIO:
    """Open ``path`` for writing a backup: created 0600, never an existing file.
    Raises InvalidInput naming the path when it exists or cannot be written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise InvalidInput(f"{path} exists; backups never overwrite a file.") from None
    except OSError as exc:
        raise InvalidInput(f"Cannot write {path}: {exc.strerror}.") from None
    return os.fdopen(fd, "wb")


def walk(top: Path) -> Iterator[Found]:
    """Every entry below ``top`` (not ``top`` itself), depth first, parents before
    children, sorted by name, never following symlinks. Memory holds the sorted
    listings along the current path only; no recursion, so depth is unbounded."""
    stack: list[tuple[str, Iterator[os.DirEntry[str]]]] = [("", _listing(top))]
    while stack:
        rel_dir, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        found = Found(rel_dir + entry.name, Path(entry.path), entry.stat(follow_symlinks=False))
        yield found
        if stat.S_ISDIR(found.st.st_mode):
            stack.append((found.rel + "/", _listing(found.path)))


def _listing(directory: Path) -> Iterator[os.DirEntry[str]]:
    with os.scandir(directory) as it:
        return iter(sorted(it, key=lambda e: e.name))


def _date(st: os.stat_result) -> tuple[int, int, int, int, int, int]:
    return max(EARLIEST, time.gmtime(st.st_mtime)[:6])


def write_backup(storage: Path, log: bytes, base: dict, out: BinaryIO) -> fmt.Metadata:
    """Write the backup of the grain tree ``storage`` to ``out`` (a seekable binary
    file). ``base`` holds the metadata fields about the grain (app, package, title,
    created_at, backed_up_at, identities). Returns the metadata written.

    Raises SandhavenError for a device file in the tree, or a file that changed size
    while it was read (the grain must be stopped)."""
    files: list[fmt.FileEntry] = []
    skipped: list[fmt.Skipped] = []
    with zipfile.ZipFile(out, "w", allowZip64=True) as zf:
        for found in walk(storage):
            mode = found.st.st_mode
            name = fmt.DATA + found.rel
            perm = stat.S_IMODE(mode)
            if stat.S_ISDIR(mode):
                info = zipfile.ZipInfo(name + "/", _date(found.st))
                info.external_attr = (stat.S_IFDIR | perm) << 16 | ZIP_DIR_FLAG
                zf.writestr(info, b"")
                files.append(fmt.FileEntry(path=found.rel, type="dir", mode=perm))
            elif stat.S_ISLNK(mode):
                target = os.readlink(found.path)
                if not pathsafety.symlink_stays_inside(found.rel, target):
                    skipped.append(fmt.Skipped(path=found.rel, kind="symlink"))
                    continue
                info = zipfile.ZipInfo(name, _date(found.st))
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, target.encode("utf-8", "surrogateescape"))
                files.append(fmt.FileEntry(path=found.rel, type="symlink", mode=0o777,
                                           target=target))
            elif stat.S_ISREG(mode):
                digest = _write_file(zf, name, found)
                files.append(fmt.FileEntry(path=found.rel, type="file", mode=perm,
                                           size=found.st.st_size, sha256=digest))
            elif stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode):
                kind = "socket" if stat.S_ISSOCK(mode) else "fifo"
                skipped.append(fmt.Skipped(path=found.rel, kind=kind))
            else:
                raise SandhavenError(f"Grain file {found.rel[:200]!r} is a device or another "
                                     "special file; a backup cannot hold it.")
        log_entry = None
        if log:
            zf.writestr(fmt.LOG, log)
            log_entry = fmt.LogEntry(size=len(log), sha256=hashlib.sha256(log).hexdigest())
        meta = fmt.Metadata(format=fmt.FORMAT, files=files, skipped=skipped, log=log_entry,
                            **base)
        zf.writestr(fmt.METADATA, meta.model_dump_json(indent=1))
    return meta


def _write_file(zf: zipfile.ZipFile, name: str, found: Found) -> str:
    """Copy one regular file into the zip, hashing it; returns its SHA-256 (hex)."""
    size = found.st.st_size
    info = zipfile.ZipInfo(name, _date(found.st))
    info.external_attr = (stat.S_IFREG | stat.S_IMODE(found.st.st_mode)) << 16
    info.file_size = size  # lets zipfile choose zip64 headers up front
    sparse = size > CHUNK and found.st.st_blocks * 512 < size // 2
    info.compress_type = zipfile.ZIP_DEFLATED if sparse else zipfile.ZIP_STORED
    if sparse:
        info._compresslevel = 1  # zipfile's own knob for one entry (no public setter)
    digest = Hasher()
    left = size
    fd = os.open(found.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb", buffering=0) as src, zf.open(info, "w") as dst:
        while left:
            chunk = src.read(min(CHUNK, left))
            if not chunk:
                break
            digest.update(chunk)
            dst.write(chunk)
            left -= len(chunk)
        if left or src.read(1):
            raise SandhavenError(f"Grain file {found.rel[:200]!r} changed while it was "
                                 "backed up.")
    return digest.hexdigest()


class Hasher:
    """SHA-256 computed on a second thread while the caller writes: hashlib and
    zlib release the GIL on large buffers, so hashing overlaps with the zip's CRC
    and the disk writes (on a 2-core machine, backups and restores run at nearly
    twice the speed). At most one chunk waits to be hashed."""

    _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sha256")

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._pending: Future[None] | None = None

    def update(self, chunk: bytes) -> None:
        if self._pending is not None:
            self._pending.result()
        self._pending = self._pool.submit(self._digest.update, chunk)

    def hexdigest(self) -> str:
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        return self._digest.hexdigest()
