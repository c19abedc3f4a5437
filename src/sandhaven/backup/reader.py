"""Reading an untrusted grain backup: check every entry against the metadata,
then unpack into an empty directory, verifying every checksum.

Meant to run inside the worker sandbox (``sandhaven.backup.restore_worker``),
behind the checks of this module: the zip's central directory must list exactly
the entries the metadata names, with the same types and sizes; names are safe
relative paths (no ``..``, no absolute names, no NUL); every parent is a
directory of the backup; symlinks stay inside the tree; no name appears twice.
Unpacking writes directories first, then files (reading exactly the declared
size, holes kept sparse, SHA-256 checked), then symlinks — so nothing is ever
written through a link — and directory modes last.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

from pydantic import ValidationError

from sandhaven import pathsafety
from sandhaven.backup import format as fmt
from sandhaven.backup.writer import Hasher
from sandhaven.errors import BadBackup

CHUNK = 1024 * 1024
ZERO = bytes(CHUNK)
#: What zipfile raises on a damaged entry (zlib.error from a broken deflate stream).
ZIP_ERRORS = (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, RuntimeError,
              zlib.error)
METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def inspect(f: BinaryIO) -> tuple[zipfile.ZipFile, fmt.Metadata]:
    """Open the backup ``f`` (seekable) and check its structure against its
    metadata, without reading file contents. Raises BadBackup naming the first
    problem found."""
    try:
        zf = zipfile.ZipFile(f)
    except (*ZIP_ERRORS, OSError) as exc:
        raise BadBackup(f"Not a grain backup: the file is not a complete zip ({exc}).") from None
    infos = zf.infolist()
    if len(infos) > fmt.MAX_ENTRIES + 2:
        raise BadBackup(f"The backup holds {len(infos)} entries; at most {fmt.MAX_ENTRIES}.")
    by_name: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if info.filename in by_name:
            raise BadBackup(f"The backup names {info.filename[:200]!r} twice.")
        if info.compress_type not in METHODS:
            raise BadBackup(f"{info.filename[:200]!r} uses compression method "
                            f"{info.compress_type}; backups use stored or deflate.")
        by_name[info.filename] = info
    meta = _metadata(zf, by_name.get(fmt.METADATA))
    _check_entries(meta, by_name)
    return zf, meta


def _metadata(zf: zipfile.ZipFile, info: zipfile.ZipInfo | None) -> fmt.Metadata:
    if info is None:
        raise BadBackup(f"Not a grain backup: {fmt.METADATA} is missing.")
    if info.file_size > fmt.MAX_METADATA_BYTES:
        raise BadBackup(f"{fmt.METADATA} is {info.file_size} bytes; at most "
                        f"{fmt.MAX_METADATA_BYTES}.")
    try:
        with zf.open(info) as m:
            raw = m.read(fmt.MAX_METADATA_BYTES + 1)
        data = json.loads(raw)
        return fmt.Metadata.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top)"
        raise BadBackup(f"{fmt.METADATA}: field {where[:120]}: {err['msg'][:200]}.") from None
    except (*ZIP_ERRORS, OSError) as exc:
        raise BadBackup(f"{fmt.METADATA} cannot be read: {str(exc)[:200]}.") from None


def _check_entries(meta: fmt.Metadata, by_name: dict[str, zipfile.ZipInfo]) -> None:
    types: dict[str, str] = {}
    for entry in meta.files:
        if entry.path in types:
            raise BadBackup(f"{fmt.METADATA} lists {entry.path[:200]!r} twice.")
        parent = entry.path.rpartition("/")[0]
        if parent and types.get(parent) != "dir":
            raise BadBackup(f"{entry.path[:200]!r} comes before its directory, or its parent "
                            "is not a directory.")
        types[entry.path] = entry.type
        name = fmt.DATA + entry.path + ("/" if entry.type == "dir" else "")
        info = by_name.get(name)
        if info is None:
            raise BadBackup(f"The backup lacks {name[:200]!r}, which {fmt.METADATA} lists.")
        unix = info.external_attr >> 16
        if entry.type == "file":
            if info.file_size != entry.size or not fmt.HEX64.match(entry.sha256):
                raise BadBackup(f"{name[:200]!r}: size or checksum does not match "
                                f"{fmt.METADATA}.")
            if unix and not stat.S_ISREG(unix):
                raise BadBackup(f"{name[:200]!r} is not a regular file.")
        elif entry.type == "symlink":
            if not stat.S_ISLNK(unix) or info.file_size != len(
                    entry.target.encode("utf-8", "surrogateescape")):
                raise BadBackup(f"{name[:200]!r}: the symlink does not match {fmt.METADATA}.")
            if not pathsafety.symlink_stays_inside(entry.path, entry.target):
                raise BadBackup(f"Symlink {entry.path[:200]!r} points outside the grain "
                                f"({entry.target[:200]!r}).")
        elif info.file_size != 0:
            raise BadBackup(f"Directory entry {name[:200]!r} has contents.")
    expected = len(meta.files) + 1 + (1 if meta.log else 0)
    if len(by_name) != expected:
        known = {fmt.METADATA, fmt.LOG} | {
            fmt.DATA + e.path + ("/" if e.type == "dir" else "") for e in meta.files}
        extra = next((n for n in by_name if n not in known), "?")
        raise BadBackup(f"The backup holds {extra[:200]!r}, which {fmt.METADATA} does not list.")
    if meta.log is not None:
        log = by_name.get(fmt.LOG)
        if log is None or log.file_size != meta.log.size:
            raise BadBackup(f"The backup's log does not match {fmt.METADATA}.")


def unpack(zf: zipfile.ZipFile, meta: fmt.Metadata, out: Path) -> int:
    """Unpack the checked backup into ``out`` (an empty directory); returns the bytes
    of file data written. Raises BadBackup on a checksum that does not match or a
    damaged entry, OSError (ENOSPC…) when the disk refuses."""
    written = 0
    for entry in meta.files:
        if entry.type == "dir":
            os.mkdir(out / entry.path, 0o700)
    for entry in meta.files:
        if entry.type == "file":
            written += _unpack_file(zf, entry, out / entry.path)
    for entry in meta.files:
        if entry.type == "symlink":
            os.symlink(entry.target, out / entry.path)
    for entry in reversed(meta.files):  # children before parents: a 0555 dir comes last
        if entry.type == "dir":
            os.chmod(out / entry.path, entry.mode & 0o1777)
    if meta.log is not None:
        _check_log(zf, meta.log)
    return written


def _unpack_file(zf: zipfile.ZipFile, entry: fmt.FileEntry, path: Path) -> int:
    digest = Hasher()
    left = entry.size
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        with zf.open(fmt.DATA + entry.path) as src:
            while left:
                chunk = src.read(min(CHUNK, left))
                if not chunk:
                    break
                digest.update(chunk)
                if chunk == ZERO[:len(chunk)]:
                    os.lseek(fd, len(chunk), os.SEEK_CUR)  # keep holes as holes
                else:
                    _write_all(fd, chunk)
                left -= len(chunk)
        os.ftruncate(fd, entry.size)
        os.fchmod(fd, entry.mode & 0o1777)
    except ZIP_ERRORS as exc:
        raise BadBackup(f"Damaged entry {entry.path[:200]!r}: {str(exc)[:200]}.") from None
    finally:
        os.close(fd)
    if left or digest.hexdigest() != entry.sha256:
        raise BadBackup(f"File {entry.path[:200]!r} does not match its checksum.")
    return entry.size


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _check_log(zf: zipfile.ZipFile, log: fmt.LogEntry) -> None:
    try:
        data = zf.read(fmt.LOG)
    except ZIP_ERRORS as exc:
        raise BadBackup(f"Damaged log entry: {str(exc)[:200]}.") from None
    if hashlib.sha256(data).hexdigest() != log.sha256:
        raise BadBackup("The backup's log does not match its checksum.")


def read_log(zf: zipfile.ZipFile, meta: fmt.Metadata) -> bytes:
    """The log bytes of a checked backup (checksum verified), or b""."""
    if meta.log is None:
        return b""
    _check_log(zf, meta.log)
    return zf.read(fmt.LOG)
