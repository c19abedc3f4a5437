"""Downloading a package from a catalog and checking it against the index before
anything is installed.

Checks, in order: the index's size is within the package limit; the download
stops at the first byte past the index's size; the size and the package ID
(first 16 bytes of the SHA-256 of the whole file) equal the index's; the
Ed25519 signature verifies (``spk.verify``); the signing key is the index's app
ID and the manifest's version is the index's. Only then does the caller hand the
file to the installer, which verifies it again while unpacking.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO

from sandhaven.catalog.index import CatalogEntry
from sandhaven.catalog.sources import CatalogSource
from sandhaven.errors import CatalogError, PackageError
from sandhaven.packages import spk
from sandhaven.packages.limits import Limits


class _Hashing:
    """A writer that hashes what it passes on and refuses bytes past ``limit``."""

    def __init__(self, out: BinaryIO, limit: int, refuse: CatalogError) -> None:
        self.out, self.limit, self.refuse = out, limit, refuse
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.limit:
            raise self.refuse
        self.sha256.update(data)
        return self.out.write(data)


def download_verified(source: CatalogSource, entry: CatalogEntry, dest: BinaryIO,
                      limits: Limits) -> spk.VerifiedPackage:
    """Download ``entry``'s package into ``dest`` (an empty, seekable binary file)
    and return it verified. Raises CatalogError naming the app and the mismatch
    (size, package ID, signature, app ID, version) or why it cannot be read."""
    name = f"Package {entry.package_id} of {entry.title} from the catalog"
    if entry.size > limits.max_spk_bytes:
        raise CatalogError(f"{name} is {entry.size} bytes; the limit is "
                           f"{limits.max_spk_bytes}. Nothing was installed.")
    sink = _Hashing(dest, entry.size, CatalogError(
        f"{name} is larger than the {entry.size} bytes the index says: refused, nothing "
        "was installed."))
    source.fetch(entry.package, sink, entry.size + 1)  # type: ignore[arg-type]
    if sink.size != entry.size:
        raise CatalogError(f"{name} is {sink.size} bytes, not the {entry.size} the index "
                           "says: refused, nothing was installed.")
    got = sink.sha256.hexdigest()[:32]
    if got != entry.package_id:
        raise CatalogError(f"{name} does not match the index: its package ID is {got}. "
                           "Refused, nothing was installed.")
    dest.flush()
    try:
        pkg = spk.verify(dest, limits)
    except PackageError as exc:
        raise CatalogError(f"{name} is refused: {exc} Nothing was installed.") from None
    if pkg.app_id != entry.app_id:
        raise CatalogError(f"{name} is signed by app {pkg.app_id}, not the {entry.app_id} "
                           "the index says: refused, nothing was installed.")
    if pkg.manifest.app.version != entry.version:
        raise CatalogError(f"{name} has version {pkg.manifest.app.version}, not the "
                           f"{entry.version} the index says: refused, nothing was installed.")
    return pkg
