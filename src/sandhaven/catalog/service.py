"""The catalog one server reads: the market listing, details, icons, one-click
install and the update check, over one :class:`CatalogSource`.

The index is kept for ``max_age`` seconds (the market page does not fetch it on
every view); the update check refreshes it at start and every
``CHECK_EVERY`` seconds (driven by the server's maintenance loop). A catalog that
cannot be read is not cached: the next view tries again.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import structlog

from sandhaven.catalog.download import download_verified
from sandhaven.catalog.index import (
    IMAGE_TYPES,
    MAX_DETAIL_BYTES,
    MAX_ICON_BYTES,
    MAX_INDEX_BYTES,
    MAX_SCREENSHOT_BYTES,
    AppDetail,
    CatalogEntry,
    CatalogIndex,
    parse_detail,
    parse_index,
)
from sandhaven.catalog.signing import MAX_SIGNATURE_BYTES, SIGNATURE_FILE, verify_index
from sandhaven.catalog.sources import CatalogSource, read
from sandhaven.errors import CatalogError, NotFound
from sandhaven.packages.install import InstallResult
from sandhaven.packages.service import PackageService

log = structlog.get_logger("sandhaven.catalog")

CHECK_EVERY = 24 * 3600.0  # seconds between update checks (DESIGN: catalog and updates)


@dataclass(frozen=True)
class MarketApp:
    """A catalog entry beside what is installed of the same app ID.

    ``installed_version`` is the newest installed ``app.version`` or None;
    ``state`` is ``available``, ``installed`` (same or newer version installed)
    or ``update`` (the catalog has a higher version)."""

    entry: CatalogEntry
    installed_version: int | None

    @property
    def state(self) -> str:
        if self.installed_version is None:
            return "available"
        return "update" if self.entry.version > self.installed_version else "installed"


@dataclass
class CatalogService:
    """One server's catalog: ``source`` to read it, ``packages`` to install into.
    Methods that read the catalog raise CatalogError (502) when it cannot be read,
    is malformed or, with ``public_key`` set, its index signature does not verify;
    NotFound for an app ID the index does not list. Thread-safe (the shell calls
    it from worker threads)."""

    source: CatalogSource
    packages: PackageService
    public_key: str = ""  # when set, the index must carry a valid signature by it
    max_age: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _index: CatalogIndex | None = None
    _fetched: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    last_check: float | None = None  # wall-clock time of the last update check
    updates: list[MarketApp] = field(default_factory=list)  # found by the last check

    def index(self, refresh: bool = False) -> CatalogIndex:
        """The validated index, fetched when older than ``max_age``. Raises CatalogError."""
        with self._lock:
            fresh = self._index is not None and self.clock() - self._fetched < self.max_age
            if fresh and not refresh:
                assert self._index is not None
                return self._index
            data = read(self.source, "index.json", MAX_INDEX_BYTES)
            if self.public_key:
                verify_index(self.public_key, data,
                             read(self.source, SIGNATURE_FILE, MAX_SIGNATURE_BYTES))
            index = parse_index(data)
            self._index, self._fetched = index, self.clock()
            return index

    def entry(self, app_id: str) -> CatalogEntry:
        """The index entry of ``app_id``; raises NotFound, CatalogError."""
        found = self.index().find(app_id)
        if found is None:
            raise NotFound(f"The catalog has no app {app_id[:60]!r}.")
        return found

    def listing(self, query: str = "", category: str = "") -> list[MarketApp]:
        """Catalog apps matching a search (title, short description, author; any
        case) and a category, by title, each beside its installed version."""
        installed: dict[str, int] = {a.app_id: a.version for a in self.packages.apps()}
        words = query.lower().split()
        found = []
        for entry in self.index().apps:
            text = f"{entry.title} {entry.short_description} {entry.author}".lower()
            if all(w in text for w in words) and (not category or category in entry.categories):
                found.append(MarketApp(entry, installed.get(entry.app_id)))
        return sorted(found, key=lambda m: (m.entry.title.lower(), m.entry.app_id))

    def categories(self) -> list[str]:
        """Categories used by at least one app of the catalog, sorted."""
        return sorted({c for a in self.index().apps for c in a.categories})

    def detail(self, app_id: str) -> AppDetail | None:
        """The detail file of ``app_id``, or None when the index lists none."""
        entry = self.entry(app_id)
        if not entry.detail:
            return None
        return parse_detail(read(self.source, entry.detail, MAX_DETAIL_BYTES), app_id)

    def icon(self, app_id: str) -> tuple[bytes, str]:
        """``(bytes, media type)`` of an app's market icon; raises NotFound, CatalogError."""
        entry = self.entry(app_id)
        if not entry.icon:
            raise NotFound("This app has no icon.")
        return self._image(entry.icon, MAX_ICON_BYTES)

    def screenshot(self, app_id: str, number: int) -> tuple[bytes, str]:
        """``(bytes, media type)`` of screenshot ``number`` (from 0) of an app."""
        detail = self.detail(app_id)
        if detail is None or not 0 <= number < len(detail.screenshots):
            raise NotFound("This app has no such screenshot.")
        return self._image(detail.screenshots[number], MAX_SCREENSHOT_BYTES)

    def _image(self, path: str, limit: int) -> tuple[bytes, str]:
        return read(self.source, path, limit), IMAGE_TYPES[PurePosixPath(path).suffix.lower()]

    def install(self, app_id: str, installed_by: str | None = None) -> InstallResult:
        """Download the catalog's package of ``app_id``, check it against the index
        (``download.download_verified``) and install it. Raises NotFound,
        CatalogError (nothing installed), and what the installer raises (NotNewer…)."""
        entry = self.entry(app_id)
        svc = self.packages
        svc.packages_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=svc.packages_dir, prefix=".download-") as f:
            download_verified(self.source, entry, f, svc.limits)
            result = svc.install(f, installed_by)
        self.updates = [m for m in self.updates
                        if m.entry.app_id != result.app_id or m.entry.version > result.version]
        log.info("catalog_install", app_id=app_id, package_id=result.package_id,
                 version=result.version, created=result.created)
        return result

    def check(self) -> list[MarketApp]:
        """Refresh the index and list installed apps the catalog has a higher version
        of; kept in ``updates``. A catalog that cannot be read is logged, not raised."""
        self.last_check = time.time()
        try:
            self.index(refresh=True)
            self.updates = [m for m in self.listing() if m.state == "update"]
        except CatalogError as exc:
            log.warning("catalog_check_failed", source=self.source.location, reason=str(exc))
            return self.updates
        log.info("catalog_checked", source=self.source.location,
                 updates=[f"{m.entry.title} {m.entry.marketing_version}" for m in self.updates])
        return self.updates

    def check_if_due(self) -> list[MarketApp] | None:
        """Run :meth:`check` at the first call and then every CHECK_EVERY seconds;
        None when it was not due."""
        if self.last_check is not None and time.time() - self.last_check < CHECK_EVERY:
            return None
        return self.check()
