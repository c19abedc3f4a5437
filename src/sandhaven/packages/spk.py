"""The ``.spk`` container: header, Ed25519 signature, manifest, compressed archive.

Byte layout (integers big-endian; ``docs/reference/spk-format.md``)::

    offset  size  field
         0     8  magic  89 53 50 4B 0D 0A 1A 0A  ("\\x89SPK\\r\\n\\x1a\\n")
         8     2  format version = 1
        10     2  flags = 0 (reserved; anything else is refused)
        12    32  Ed25519 public key (the app ID, before base32)
        44    64  Ed25519 signature of the signed message (below)
       108     4  manifest length M (1 .. max_manifest_bytes)
       112     8  archive length A
       120     M  manifest: canonical UTF-8 JSON
     120+M     A  archive (``archive.py``): one zstd stream of entries
   120+M+A        end of file

    body           = bytes 108 .. end of file
    signed message = b"sandhaven-spk\\x00" || version || public key || SHA-256(body)

Package ID = first 16 bytes of SHA-256 of the whole file, hex.

:func:`verify` streams the file once, computing both hashes with flat memory,
and checks the signature before it parses anything past the header. Only
``verify`` makes a :class:`VerifiedPackage`; :func:`extract_verified` walks its
archive, hashing the body again and failing if the file changed in between, so
nothing unverified reaches the sink undetected (the installer publishes an
extracted tree only after that final check).
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sandhaven.errors import (
    BadFormat,
    BadSignature,
    InvalidInput,
    InvalidManifest,
    PackageTooLarge,
)
from sandhaven.packages import archive
from sandhaven.packages.ids import app_id_from_public_key, package_id_from_digest
from sandhaven.packages.keys import SigningKey
from sandhaven.packages.limits import Limits
from sandhaven.packages.manifest import Manifest

MAGIC = b"\x89SPK\r\n\x1a\n"
FORMAT_VERSION = 1
SIGNING_CONTEXT = b"sandhaven-spk\x00"

_PREFIX = struct.Struct(">8sHH32s64s")  # magic, version, flags, public key, signature
_LENGTHS = struct.Struct(">IQ")  # manifest length, archive length
HEADER_SIZE = _PREFIX.size + _LENGTHS.size  # 120
BODY_OFFSET = _PREFIX.size  # 108
READ_CHUNK = 1 << 20


def signed_message(public_key: bytes, body_sha256: bytes) -> bytes:
    """The exact bytes the Ed25519 signature covers."""
    return SIGNING_CONTEXT + struct.pack(">H", FORMAT_VERSION) + public_key + body_sha256


_TOKEN = object()


@dataclass(frozen=True)
class VerifiedPackage:
    """A ``.spk`` whose signature verified. Made only by :func:`verify`.

    ``file`` is the open file it was verified from (the caller owns it);
    ``body_sha256`` is what the signature covers, rechecked on extraction.
    """

    app_id: str
    package_id: str
    manifest: Manifest
    manifest_bytes: bytes
    size_bytes: int
    file: BinaryIO
    body_sha256: bytes
    _token: object

    def __post_init__(self) -> None:
        if self._token is not _TOKEN:
            raise TypeError("only sandhaven.packages.spk.verify() makes a VerifiedPackage")

    @property
    def archive_offset(self) -> int:
        return HEADER_SIZE + len(self.manifest_bytes)

    @property
    def archive_length(self) -> int:
        return self.size_bytes - self.archive_offset

    def summary(self) -> dict[str, object]:
        """``{"app_id", "package_id", "title", "version", "marketing_version"}``."""
        app = self.manifest.app
        return {"app_id": self.app_id, "package_id": self.package_id, "title": app.title,
                "version": app.version, "marketing_version": app.marketing_version}


def _read_exact(f: BinaryIO, n: int, what: str, size: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise BadFormat(f"The file is truncated: it ends at byte {size} inside the {what}.")
    return data


def _hash_rest(f: BinaryIO, left: int, whole: hashlib._Hash, body: hashlib._Hash) -> None:
    """Feed the next ``left`` bytes of ``f`` to both hashes, 1 MiB at a time. The
    whole-file hash runs in a second thread (hashlib releases the GIL), so two
    hashes cost about the time of one on a machine with two cores."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Future[None] | None = None
        while left:
            chunk = f.read(min(READ_CHUNK, left))
            if not chunk:
                raise BadFormat("The file shrank while it was being read.")
            if pending is not None:
                pending.result()
            pending = pool.submit(whole.update, chunk)
            body.update(chunk)
            left -= len(chunk)
        if pending is not None:
            pending.result()


def verify(f: BinaryIO, limits: Limits | None = None) -> VerifiedPackage:
    """Verify the ``.spk`` open in ``f`` (binary, seekable, positioned anywhere).

    Checks, in order: magic, version, flags, lengths against the file size and
    limits, the signature over the body's SHA-256, then the manifest schema.
    Memory stays flat (1 MiB chunks) whatever the file size.

    Raises BadFormat, BadSignature, InvalidManifest or PackageTooLarge.
    """
    limits = limits or Limits()
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(0)
    if size > limits.max_spk_bytes:
        raise PackageTooLarge(f"The package is {size} bytes; the limit is "
                              f"{limits.max_spk_bytes}.")
    head = f.read(HEADER_SIZE)
    if len(head) < len(MAGIC) or head[: len(MAGIC)] != MAGIC:
        if MAGIC.startswith(head):
            raise BadFormat(f"The file is truncated: {size} bytes, not even a header.")
        raise BadFormat("Not a .spk file: wrong magic bytes at offset 0.")
    if len(head) < HEADER_SIZE:
        raise BadFormat(f"The file is truncated: {size} bytes, shorter than the "
                        f"{HEADER_SIZE}-byte header.")
    magic, version, flags, public_key, signature = _PREFIX.unpack_from(head)
    if version != FORMAT_VERSION:
        raise BadFormat(f"Unsupported .spk format version {version} (this server reads "
                        f"version {FORMAT_VERSION}).")
    if flags:
        raise BadFormat(f"Unsupported .spk flags {flags:#06x} (must be 0).")
    manifest_len, archive_len = _LENGTHS.unpack_from(head, _PREFIX.size)
    if manifest_len == 0:
        raise InvalidManifest("The package has no manifest (manifest length 0).")
    if manifest_len > limits.max_manifest_bytes:
        raise PackageTooLarge(f"The manifest is {manifest_len} bytes; the limit is "
                              f"{limits.max_manifest_bytes}.")
    expected = HEADER_SIZE + manifest_len + archive_len
    if size < expected:
        raise BadFormat(f"The file is truncated: {size} bytes, the header says {expected}.")
    if size > expected:
        raise BadFormat(f"The file has {size - expected} bytes after the end the header gives.")

    whole = hashlib.sha256(head)
    body = hashlib.sha256(head[BODY_OFFSET:])
    _hash_rest(f, size - HEADER_SIZE, whole, body)
    body_sha256 = body.digest()
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            signature, signed_message(public_key, body_sha256))
    except (InvalidSignature, ValueError):
        raise BadSignature("The package signature does not verify: the file was altered "
                           "or not signed by the key it names.") from None

    f.seek(HEADER_SIZE)
    manifest_bytes = _read_exact(f, manifest_len, "manifest", size)
    manifest = Manifest.from_json_bytes(manifest_bytes)
    return VerifiedPackage(
        app_id=app_id_from_public_key(public_key),
        package_id=package_id_from_digest(whole.digest()),
        manifest=manifest,
        manifest_bytes=manifest_bytes,
        size_bytes=size,
        file=f,
        body_sha256=body_sha256,
        _token=_TOKEN,
    )


class _HashingSection:
    """Reads ``length`` bytes of ``f`` from ``offset``, feeding ``hasher`` in the
    ``pool``'s one thread (in order; at most one chunk waits, so memory stays
    bounded). :meth:`finish` drains the rest and waits for the hash."""

    def __init__(self, f: BinaryIO, offset: int, length: int, hasher: hashlib._Hash,
                 pool: ThreadPoolExecutor) -> None:
        f.seek(offset)
        self._f = f
        self._left = length
        self._hasher = hasher
        self._pool = pool
        self._pending: Future[None] | None = None

    def read(self, n: int = -1) -> bytes:
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._f.read(n) if n else b""
        self._left -= len(data)
        if self._pending is not None:
            self._pending.result()
        self._pending = self._pool.submit(self._hasher.update, data)
        return data

    def finish(self) -> None:
        while self.read(READ_CHUNK):
            pass
        if self._pending is not None:
            self._pending.result()


def extract_verified(pkg: VerifiedPackage, sink: archive.Sink,
                     limits: Limits | None = None) -> tuple[int, int]:
    """Walk the archive of a verified package into ``sink``, re-hashing the body.

    Returns ``(entry count, unpacked bytes)``. Raises what :func:`archive.walk`
    raises, InvalidManifest if an icon or screenshot the manifest names is not a
    file within the icon limit, and BadSignature if the file changed since
    :func:`verify` (the caller must then discard whatever the sink wrote).
    """
    limits = limits or Limits()
    hasher = hashlib.sha256()
    f = pkg.file
    f.seek(BODY_OFFSET)
    hasher.update(f.read(HEADER_SIZE - BODY_OFFSET))
    hasher.update(f.read(len(pkg.manifest_bytes)))
    sizes = _SizeRecorder(sink)
    with ThreadPoolExecutor(max_workers=1) as pool:
        section = _HashingSection(f, pkg.archive_offset, pkg.archive_length, hasher, pool)
        result = archive.walk(section, sizes, limits)  # type: ignore[arg-type]
        section.finish()
    if hasher.digest() != pkg.body_sha256:
        raise BadSignature("The package file changed after it was verified.")
    check_referenced_files(pkg.manifest, sizes.files, limits)
    return result


def check_referenced_files(manifest: Manifest, files: dict[str, int], limits: Limits) -> None:
    """Every path the manifest names is a regular file of the package (``files``:
    path → size), icons within the icon limit. Raises InvalidManifest or
    PackageTooLarge."""
    icons = manifest.metadata.icons.paths()
    for path in manifest.referenced_paths():
        if path not in files:
            raise InvalidManifest(f"Manifest names {path!r}, which is not a file in the package.")
        if path in icons and files[path] > limits.max_icon_bytes:
            raise PackageTooLarge(f"Icon {path!r} is {files[path]} bytes; the limit is "
                                  f"{limits.max_icon_bytes}.")


class _SizeRecorder:
    def __init__(self, inner: archive.Sink) -> None:
        self.inner = inner
        self.files: dict[str, int] = {}

    def directory(self, path: str, mode: int) -> None:
        self.inner.directory(path, mode)

    def symlink(self, path: str, target: str) -> None:
        self.inner.symlink(path, target)

    def file(self, path: str, mode: int, size: int, chunks: Iterator[bytes]) -> None:
        self.files[path] = size
        self.inner.file(path, mode, size, chunks)


def verify_file(path: Path, limits: Limits | None = None) -> dict[str, object]:
    """Verify ``path`` completely — signature, manifest and every archive entry —
    writing nothing. Returns :meth:`VerifiedPackage.summary`."""
    with open_spk(path) as f:
        pkg = verify(f, limits)
        extract_verified(pkg, archive.CheckOnly(), limits)
        return pkg.summary()


def open_spk(path: Path) -> BinaryIO:
    """Open a ``.spk`` for reading; BadFormat (one line) when it cannot be or is not
    a regular file. A FIFO or device is refused without blocking on it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise BadFormat(f"{path} cannot be read: {exc.strerror}.") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BadFormat(f"{path} is not a regular file, so not a .spk file.")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")



def write_spk(out_path: Path, key: SigningKey, manifest_bytes: bytes,
              fill_archive: Callable[[archive.ArchiveWriter], None],
              *, level: int = archive.COMPRESSION_LEVEL, end: bool = True) -> str:
    """Write a signed ``.spk`` to ``out_path`` atomically and return its package ID.

    ``fill_archive`` adds entries to the writer it is given; this function ends
    the archive. It does not validate the manifest or the entries (``pack``
    does), so tests can build hostile packages that are validly signed;
    ``end=False`` leaves out the archive's end entry, for the same purpose.
    """
    out_path = Path(out_path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=".spk-", dir=out_path.parent or ".")
    except OSError as exc:
        raise InvalidInput(f"{out_path} cannot be written: {exc.strerror}.") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as f:
            f.write(bytes(HEADER_SIZE))
            f.write(manifest_bytes)
            writer = archive.ArchiveWriter(f, level=level)
            fill_archive(writer)
            writer.close(end=end)
            end = f.tell()
            archive_len = end - HEADER_SIZE - len(manifest_bytes)
            lengths = _LENGTHS.pack(len(manifest_bytes), archive_len)
            body = hashlib.sha256(lengths)
            f.seek(HEADER_SIZE)
            for chunk in iter(lambda: f.read(READ_CHUNK), b""):
                body.update(chunk)
            public_key = key.public_key
            signature = key.sign(signed_message(public_key, body.digest()))
            f.seek(0)
            f.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, 0, public_key, signature) + lengths)
            f.flush()
            os.fsync(f.fileno())
            f.seek(0)
            whole = hashlib.sha256()
            for chunk in iter(lambda: f.read(READ_CHUNK), b""):
                whole.update(chunk)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return package_id_from_digest(whole.digest())
