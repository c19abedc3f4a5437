"""Packing an app source directory into a signed ``.spk``.

``pack(SRC, key, OUT)`` reads ``SRC/sandhaven-pkgdef.toml``, selects the paths
listed in ``[files] include`` (minus ``exclude`` globs), checks every one with
the same rules and limits the installer applies, and writes the package.

Packing is reproducible: entries are sorted by path, modes are normalised
(directories 0755, files 0755 if any execute bit is set else 0644), and no time,
owner or host detail is recorded. Ed25519 signatures are deterministic, so the
same source and key give the same package ID (with the same zstd library
version, since the compressed bytes come from it).

Errors: InvalidManifest (package definition), UnsafeEntry (a source path the
format refuses: FIFO, device, socket, setuid/setgid, symlink leaving the
package, bad name), PackageTooLarge (past a limit).
"""

from __future__ import annotations

import fnmatch
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from sandhaven import pathsafety
from sandhaven.errors import InvalidInput, InvalidManifest, PackageTooLarge, UnsafeEntry
from sandhaven.packages import archive
from sandhaven.packages.keys import SigningKey
from sandhaven.packages.limits import Limits
from sandhaven.packages.manifest import FileSelection, Manifest, load_package_definition
from sandhaven.packages.spk import write_spk


@dataclass(frozen=True)
class SourceEntry:
    """One entry to pack: ``path`` in the package, ``kind`` an archive type code."""

    path: str
    kind: int
    mode: int = 0
    size: int = 0
    source: Path | None = None
    target: str = ""


@dataclass(frozen=True)
class PackResult:
    package_id: str
    app_id: str
    manifest: Manifest
    entries: int


def _excluded(rel: str, patterns: list[str]) -> bool:
    name = rel.rpartition("/")[2]
    return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def _entry_for(src_dir: Path, rel: str, limits: Limits) -> SourceEntry:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeEntry(f"Source path {rel!r} is not a UTF-8 name.") from None
    archive.check_path(rel.encode("utf-8"), limits)
    full = src_dir / rel
    st = full.lstat()
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        return SourceEntry(rel, archive.DIRECTORY, 0o755)
    if stat.S_ISLNK(mode):
        target = os.readlink(full)
        if not pathsafety.symlink_stays_inside(rel, target):
            raise UnsafeEntry(f"Source symlink {rel!r} points outside the package ({target!r}).")
        return SourceEntry(rel, archive.SYMLINK, 0o777, target=target)
    if stat.S_ISREG(mode):
        if mode & stat.S_ISUID:
            raise UnsafeEntry(f"Source file {rel!r} has the setuid bit.")
        if mode & stat.S_ISGID:
            raise UnsafeEntry(f"Source file {rel!r} has the setgid bit.")
        perm = 0o755 if mode & 0o111 else 0o644
        return SourceEntry(rel, archive.FILE, perm, st.st_size, full)
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device file")
    raise UnsafeEntry(f"Source path {rel!r} is {kind}; only files, directories and "
                      "symlinks can be packed.")


def collect(src_dir: Path, selection: FileSelection, limits: Limits) -> list[SourceEntry]:
    """The sorted entries that ``selection`` picks from ``src_dir``.

    Parents of included paths are added as directories. Raises InvalidManifest
    for an include that does not exist, UnsafeEntry or PackageTooLarge.
    """
    found: dict[str, SourceEntry] = {}

    def add(rel: str) -> None:
        if rel in found or _excluded(rel, selection.exclude):
            return
        entry = _entry_for(src_dir, rel, limits)
        found[rel] = entry
        if len(found) > limits.max_entries:
            raise PackageTooLarge(f"The package would have more than {limits.max_entries} "
                                  "entries.")
        if entry.kind == archive.DIRECTORY:
            with os.scandir(src_dir / rel) as it:
                for child in it:
                    add(f"{rel}/{child.name}")

    for include in selection.include:
        if not os.path.lexists(src_dir / include):
            raise InvalidManifest(f"Package definition field 'files.include': {include!r} "
                                  f"does not exist in {src_dir}.")
        parts = include.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in found:
                found[parent] = _entry_for(src_dir, parent, limits)
                if found[parent].kind != archive.DIRECTORY:
                    raise UnsafeEntry(f"Source path {parent!r} is not a directory.")
        add(include)
    entries = sorted(found.values(), key=lambda e: e.path.split("/"))
    total = sum(e.size for e in entries)
    if total > limits.max_unpacked_bytes:
        raise PackageTooLarge(f"The package would unpack to {total} bytes; the limit is "
                              f"{limits.max_unpacked_bytes}.")
    return entries


def pack(src_dir: Path, key: SigningKey, out_path: Path, limits: Limits | None = None,
         *, level: int = archive.COMPRESSION_LEVEL) -> PackResult:
    """Pack ``src_dir`` into ``out_path`` signed with ``key``. Returns the package
    ID (32 hex), app ID (52 base32) and manifest. See the module docstring."""
    try:
        return _pack(Path(src_dir), key, Path(out_path), limits or Limits(), level)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise InvalidInput(f"Cannot pack {src_dir}: {exc.strerror or exc}{where}.") from None


def _pack(src_dir: Path, key: SigningKey, out_path: Path, limits: Limits, level: int
          ) -> PackResult:
    definition = load_package_definition(src_dir)
    manifest = definition.manifest
    entries = collect(src_dir, definition.files, limits)
    files = {e.path: e.size for e in entries if e.kind == archive.FILE}
    for path in manifest.referenced_paths():
        if path not in files:
            raise InvalidManifest(f"Manifest field 'metadata' names {path!r}, which is not a "
                                  "file included in the package.")
        if path in manifest.metadata.icons.paths() and files[path] > limits.max_icon_bytes:
            raise PackageTooLarge(f"Icon {path!r} is {files[path]} bytes; the limit is "
                                  f"{limits.max_icon_bytes}.")
    manifest_bytes = manifest.to_json_bytes()
    if len(manifest_bytes) > limits.max_manifest_bytes:
        raise PackageTooLarge(f"The manifest is {len(manifest_bytes)} bytes; the limit is "
                              f"{limits.max_manifest_bytes}.")

    def fill(writer: archive.ArchiveWriter) -> None:
        for e in entries:
            if e.kind == archive.DIRECTORY:
                writer.directory(e.path, e.mode)
            elif e.kind == archive.SYMLINK:
                writer.symlink(e.path, e.target)
            else:
                assert e.source is not None
                fd = os.open(e.source, os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(fd, "rb") as src:
                    writer.file_from(e.path, src, e.size, e.mode)

    package_id = write_spk(Path(out_path), key, manifest_bytes, fill, level=level)
    return PackResult(package_id, key.app_id, manifest, len(entries))
