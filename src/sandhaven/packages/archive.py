"""The archive inside a ``.spk``: a flat stream of entries, zstd-compressed.

Byte layout (``docs/reference/spk-format.md``), integers big-endian::

    entry  = type:u8 mode:u16 path_len:u16 size:u64 path[path_len] data[size]
    end    = 13 zero bytes (type 0), then the end of the zstd stream

``type`` uses tar's typeflag letters: ``"0"`` regular file (data = contents),
``"2"`` symlink (data = target), ``"5"`` directory (size 0). Every other value
is refused; hardlinks (``"1"``), character and block devices (``"3"``, ``"4"``)
and FIFOs (``"6"``) are named in the message. ``mode`` holds permission bits
only: setuid, setgid and sticky are refused.

:func:`walk` is the one reader. It checks every rule before the bytes an entry
guards reach the sink, so verification (a sink that writes nothing) and
extraction share exactly the same checks:

- the path is a safe relative name (``sandhaven.pathsafety``), UTF-8, within
  the path-length and depth limits, and not seen before;
- its parent is a directory declared earlier — so nothing is ever written
  through a symlink;
- symlinks resolve inside the package (``pathsafety.symlink_stays_inside``);
- entry count and total unpacked size stay within the limits (checked against
  the declared size, before the data is read).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO, Protocol

import zstandard

from sandhaven import pathsafety
from sandhaven.errors import BadFormat, PackageTooLarge, UnsafeEntry
from sandhaven.packages.limits import Limits

FILE = ord("0")
SYMLINK = ord("2")
DIRECTORY = ord("5")
END = 0

_HEADER = struct.Struct(">BHHQ")
HEADER_SIZE = _HEADER.size  # 13

#: Names of tar typeflags that are refused, for the error message.
REFUSED_TYPES = {
    ord("1"): "a hardlink",
    ord("3"): "a character device",
    ord("4"): "a block device",
    ord("6"): "a FIFO",
    ord("7"): "a contiguous file",
}

#: zstd level used by ``pack``. Part of reproducibility: the same source, key,
#: level and zstd library version give the same bytes.
COMPRESSION_LEVEL = 9
#: Largest zstd window accepted when reading (bounds decompression memory).
MAX_WINDOW_BYTES = 1 << 25
CHUNK = 1 << 20


class ArchiveWriter:
    """Writes entries, compressed, to ``out``. Does not validate: ``pack`` checks
    its input first, and tests use this to build hostile archives on purpose."""

    def __init__(self, out: BinaryIO, level: int = COMPRESSION_LEVEL) -> None:
        cctx = zstandard.ZstdCompressor(level=level, write_checksum=False,
                                        write_content_size=False)
        self._z = cctx.stream_writer(out, closefd=False)

    def raw_entry(self, type_: int, mode: int, path: bytes, data: bytes = b"",
                  size: int | None = None) -> None:
        """Any entry, even an invalid one; ``size`` may disagree with ``data``."""
        size = len(data) if size is None else size
        self._z.write(_HEADER.pack(type_, mode, len(path), size) + path)
        if data:
            self._z.write(data)

    def directory(self, path: str, mode: int = 0o755) -> None:
        self.raw_entry(DIRECTORY, mode, path.encode("utf-8"))

    def symlink(self, path: str, target: str) -> None:
        self.raw_entry(SYMLINK, 0o777, path.encode("utf-8"), target.encode("utf-8"))

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.raw_entry(FILE, mode, path.encode("utf-8"), data)

    def file_from(self, path: str, src: BinaryIO, size: int, mode: int = 0o644) -> None:
        """A file entry whose ``size`` bytes are copied from ``src`` in chunks.
        Raises OSError if ``src`` ends early (it changed while packing)."""
        self._z.write(_HEADER.pack(FILE, mode, len(path.encode("utf-8")), size)
                      + path.encode("utf-8"))
        left = size
        while left:
            chunk = src.read(min(CHUNK, left))
            if not chunk:
                raise OSError(f"{path} shrank while it was being packed")
            self._z.write(chunk)
            left -= len(chunk)

    def close(self, *, end: bool = True) -> None:
        """Write the end entry (unless ``end`` is False, for tests) and finish the
        zstd frame."""
        if end:
            self._z.write(bytes(HEADER_SIZE))
        self._z.close()  # ends the zstd frame; ``out`` stays open


class Sink(Protocol):
    """Receives checked entries from :func:`walk`."""

    def directory(self, path: str, mode: int) -> None: ...
    def file(self, path: str, mode: int, size: int, chunks: Iterator[bytes]) -> None: ...
    def symlink(self, path: str, target: str) -> None: ...


class _Buffered:
    """Exact reads over a decompressing stream; EOF mid-entry is BadFormat."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._buf = b""
        self._pos = 0

    def read_exact(self, n: int) -> bytes:
        end = self._pos + n
        if end <= len(self._buf):
            out = self._buf[self._pos:end]
            self._pos = end
            return out
        parts = [self._buf[self._pos:]]
        have = len(parts[0])
        self._buf, self._pos = b"", 0
        while have < n:
            chunk = self._raw.read(max(CHUNK, n - have))
            if not chunk:
                raise BadFormat("The archive ends in the middle of an entry (truncated).")
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        self._buf = data
        self._pos = n
        return data[:n]

    def chunks(self, n: int) -> Iterator[bytes]:
        """Yield ``n`` bytes in pieces of at most ~1 MiB."""
        while n:
            if self._pos >= len(self._buf):
                self._buf = self._raw.read(CHUNK)
                self._pos = 0
                if not self._buf:
                    raise BadFormat("The archive ends in the middle of a file (truncated).")
            take = min(n, len(self._buf) - self._pos)
            if self._pos == 0 and take == len(self._buf):
                piece = self._buf
            else:
                piece = self._buf[self._pos:self._pos + take]
            self._pos += take
            n -= take
            yield piece

    def at_eof(self) -> bool:
        return self._pos >= len(self._buf) and not self._raw.read(1)


def _describe_unsafe(path: str) -> str:
    if path.startswith("/"):
        return "is an absolute path"
    parts = path.split("/")
    if ".." in parts:
        return "has a '..' component"
    if "." in parts or "" in parts:
        return "has an empty or '.' component"
    ch = pathsafety.bad_char(path)
    if ch == "\x00":
        return "contains a NUL byte"
    if ch in ("\n", "\r"):
        return "contains a newline"
    if ch is not None:
        return f"contains the control character {ch!r}"
    return "has a component longer than 255 bytes"


def check_path(raw: bytes, limits: Limits) -> str:
    """The entry path ``raw`` decoded, or UnsafeEntry / PackageTooLarge naming why not."""
    if len(raw) > limits.max_path_bytes:
        raise PackageTooLarge(f"Archive entry path is {len(raw)} bytes; the limit is "
                              f"{limits.max_path_bytes}.")
    try:
        path = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeEntry(f"Archive entry {raw!r} is not a UTF-8 name.") from None
    if not pathsafety.is_safe_relative(path):
        raise UnsafeEntry(f"Archive entry {path!r} {_describe_unsafe(path)}.")
    if pathsafety.depth(path) > limits.max_depth:
        raise PackageTooLarge(f"Archive entry {path!r} is {pathsafety.depth(path)} levels deep; "
                              f"the limit is {limits.max_depth}.")
    return path


def walk(compressed: BinaryIO, sink: Sink, limits: Limits) -> tuple[int, int]:
    """Decompress and check the archive from ``compressed``, feeding each entry to
    ``sink``. Returns ``(entry count, unpacked bytes)``.

    Raises BadFormat (corrupt or truncated stream), UnsafeEntry (a name, type,
    mode or link that is refused) or PackageTooLarge (past a limit).
    """
    dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW_BYTES)
    try:
        with dctx.stream_reader(compressed, read_size=CHUNK, read_across_frames=True,
                                closefd=False) as raw:
            return _walk(_Buffered(raw), sink, limits)  # type: ignore[arg-type]
    except zstandard.ZstdError as exc:
        raise BadFormat(f"The archive is not a valid zstd stream: {exc}.") from None


def _walk(stream: _Buffered, sink: Sink, limits: Limits) -> tuple[int, int]:
    kinds: dict[str, int] = {}
    total = 0
    while True:
        type_, mode, path_len, size = _HEADER.unpack(stream.read_exact(HEADER_SIZE))
        if type_ == END:
            if mode or path_len or size:
                raise BadFormat("The archive's end entry is not all zero bytes.")
            if not stream.at_eof():
                raise BadFormat("The archive has data after its end entry.")
            return len(kinds), total
        path = check_path(stream.read_exact(path_len), limits)
        if type_ not in (FILE, SYMLINK, DIRECTORY):
            what = REFUSED_TYPES.get(type_, f"of unknown type {type_:#04x}")
            raise UnsafeEntry(f"Archive entry {path!r} is {what}; only files, directories "
                              "and symlinks are allowed.")
        if mode & 0o4000:
            raise UnsafeEntry(f"Archive entry {path!r} has the setuid bit.")
        if mode & 0o2000:
            raise UnsafeEntry(f"Archive entry {path!r} has the setgid bit.")
        if mode & ~0o777:
            raise UnsafeEntry(f"Archive entry {path!r} has mode {mode:#o}; only permission "
                              "bits are allowed.")
        if path in kinds:
            raise UnsafeEntry(f"Archive entry {path!r} appears twice.")
        parent = path.rpartition("/")[0]
        if parent and kinds.get(parent) != DIRECTORY:
            raise UnsafeEntry(f"Archive entry {path!r} comes before its directory {parent!r} "
                              "(or that is not a directory).")
        if len(kinds) >= limits.max_entries:
            raise PackageTooLarge(f"The archive has more than {limits.max_entries} entries.")
        kinds[path] = type_
        if type_ == DIRECTORY:
            if size:
                raise BadFormat(f"Archive directory {path!r} has a size.")
            sink.directory(path, mode)
        elif type_ == SYMLINK:
            if size > limits.max_symlink_bytes:
                raise PackageTooLarge(f"Archive symlink {path!r} target is {size} bytes; the "
                                      f"limit is {limits.max_symlink_bytes}.")
            raw_target = stream.read_exact(size)
            try:
                target = raw_target.decode("utf-8")
            except UnicodeDecodeError:
                raise UnsafeEntry(f"Archive symlink {path!r} target is not UTF-8.") from None
            if not pathsafety.symlink_stays_inside(path, target):
                raise UnsafeEntry(f"Archive symlink {path!r} points outside the package "
                                  f"({target!r}).")
            sink.symlink(path, target)
        else:
            total += size
            if total > limits.max_unpacked_bytes:
                raise PackageTooLarge(f"The archive unpacks to more than "
                                      f"{limits.max_unpacked_bytes} bytes (at {path!r}).")
            sink.file(path, mode, size, stream.chunks(size))


class CheckOnly:
    """A sink that writes nothing but remembers file sizes, for ``verify``."""

    def __init__(self) -> None:
        self.files: dict[str, int] = {}

    def directory(self, path: str, mode: int) -> None:
        pass

    def file(self, path: str, mode: int, size: int, chunks: Iterator[bytes]) -> None:
        for _ in chunks:
            pass
        self.files[path] = size

    def symlink(self, path: str, target: str) -> None:
        pass
