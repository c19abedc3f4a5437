"""The grain service: create, list, rename, trash, restore, purge, stop, and the
spec the supervisor runs.

Storage: each grain's ``/var`` is its own gocryptfs volume
(:mod:`sandhaven.encryption.volumes`), mounted only while it runs; with
encryption off (development) it is ``DATA_DIR/grains/<grain ID>/var``. A new
grain's first start runs the action it was created with; every later start runs
the manifest's continue command. Trashed grains are stopped, kept
``grains.trash_days`` days (30 by default) and then purged with their storage:
the volume's key is destroyed first (crypto-shredding), then the ciphertext.

Access: these changes are the owner's alone; to anyone else the grain does not
exist (NotFound), so IDs cannot be probed. Share holders reach a grain through
:mod:`sandhaven.grains.sessions` and :mod:`sandhaven.grains.shares`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from sandhaven.encryption.volumes import GrainVolumes
from sandhaven.errors import Conflict, EncryptionError, GrainStartFailed, InvalidInput, NotFound
from sandhaven.packages.manifest import Manifest
from sandhaven.sandbox.spec import GrainSpec, Limits
from sandhaven.store import Store, new_id, utcnow
from sandhaven.store.models import App, Grain, Package
from sandhaven.supervisor import GrainState, Supervisor

log = structlog.get_logger("sandhaven.grains")
TITLE_MAX = 500


@dataclass(frozen=True)
class GrainView:
    """A grain as the shell and API show it. ``size_bytes`` is the storage on disk."""

    id: str
    title: str
    owner_id: str
    app_id: str
    app_title: str
    package_id: str
    action_index: int
    created_at: datetime
    last_used_at: datetime | None
    size_bytes: int
    trashed_at: datetime | None
    state: str
    crash_reason: str | None = None

    def api(self) -> dict[str, object]:
        return {
            "id": self.id, "title": self.title, "owner_id": self.owner_id,
            "app_id": self.app_id, "app_title": self.app_title,
            "package_id": self.package_id, "state": self.state,
            "created_at": self.created_at.isoformat() + "Z",
            "last_used_at": self.last_used_at.isoformat() + "Z" if self.last_used_at else None,
            "size_bytes": self.size_bytes,
            "trashed_at": self.trashed_at.isoformat() + "Z" if self.trashed_at else None,
            "crash_reason": self.crash_reason,
        }


def clean_title(raw: str) -> str:
    """A grain title: 1–500 characters on one line, no control characters.
    Raises InvalidInput."""
    title = " ".join((raw or "").split())
    if not title:
        raise InvalidInput("Title is empty.")
    if len(title) > TITLE_MAX:
        raise InvalidInput(f"Title is longer than {TITLE_MAX} characters.")
    if any(unicodedata.category(c).startswith("C") for c in title):
        raise InvalidInput("Title contains control characters.")
    return title


def disk_usage(path: Path) -> int:
    """Bytes allocated under ``path`` (like ``du``), never following symlinks."""
    total = 0
    for root, dirs, files in os.walk(path, followlinks=False):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total


#: How long a backup lets requests already inside a grain finish before it stops
#: the grain for the copy (seconds).
DRAIN_SECONDS = 10.0


class Grains:
    """Grains of one server. ``supervisor`` may be None where nothing runs (the CLI);
    ``volumes`` None means plain storage directories (encryption off)."""

    def __init__(self, store: Store, data_dir: Path, packages_dir: Path,
                 supervisor: Supervisor | None, limits: Limits, trash_days: int = 30,
                 volumes: GrainVolumes | None = None, encrypted: bool = False) -> None:
        self.store = store
        self.volumes = volumes
        # Encrypted storage without the KEK at hand (an admin command beside a sealed
        # server): no grain is made or started on plain storage.
        self.encrypted = encrypted or volumes is not None
        self.grains_dir = Path(data_dir) / "grains"
        self.packages_dir = Path(packages_dir)
        self.supervisor = supervisor
        self.limits = limits
        self.trash_days = trash_days
        self._sizes: dict[str, tuple[float, int]] = {}
        self._touched: dict[str, float] = {}
        # Called with the grain ID when it goes to the trash (revokes its sessions).
        self.on_trash: Callable[[str], object] | None = None
        # Grains kept stopped while something copies their storage (a backup).
        self._held: dict[str, asyncio.Event] = {}

    # -- paths -----------------------------------------------------------------
    def storage_dir(self, grain_id: str) -> Path:
        """The grain's /var on the host: its plaintext mount point when encrypted."""
        if self.volumes is not None:
            return self.volumes.mountpoint(grain_id)
        return self.grains_dir / grain_id / "var"

    # -- queries ---------------------------------------------------------------
    def _view(self, s: Session, grain: Grain) -> GrainView:
        app = s.get(App, grain.app_id)
        state = self.supervisor.status(grain.id).value if self.supervisor else "stopped"
        reason = None
        if self.supervisor is not None and state == GrainState.CRASHED:
            exit_info = self.supervisor.last_exit(grain.id)
            reason = exit_info.reason if exit_info else "the grain stopped unexpectedly"
        return GrainView(grain.id, grain.title, grain.owner_id, grain.app_id,
                         app.title if app else grain.app_id, grain.package_id,
                         grain.action_index, grain.created_at, grain.last_used_at,
                         self._size(grain.id), grain.trashed_at, state, reason)

    def _size(self, grain_id: str) -> int:
        cached = self._sizes.get(grain_id)
        if cached and time.monotonic() - cached[0] < 60:
            return cached[1]
        size = disk_usage(self.grains_dir / grain_id)  # ciphertext when encrypted
        self._sizes[grain_id] = (time.monotonic(), size)
        return size

    def _owned(self, s: Session, user_id: str, grain_id: str) -> Grain:
        grain = s.get(Grain, grain_id) if len(grain_id) <= 32 else None
        if grain is None or grain.owner_id != user_id:
            raise NotFound(f"No grain with ID {grain_id[:40]!r}.")
        return grain

    def list(self, user_id: str, *, trashed: bool = False) -> list[GrainView]:
        """The user's grains, most recently used first; ``trashed`` lists the trash."""
        with self.store.read() as s:
            q = select(Grain).where(Grain.owner_id == user_id)
            q = q.where(Grain.trashed_at.is_not(None) if trashed else Grain.trashed_at.is_(None))
            rows = s.scalars(q).all()
            views = [self._view(s, g) for g in rows]
        return sorted(views, key=lambda g: g.last_used_at or g.created_at, reverse=True)

    def get(self, user_id: str, grain_id: str) -> GrainView:
        """Raises NotFound unless the grain exists and is the user's."""
        with self.store.read() as s:
            return self._view(s, self._owned(s, user_id, grain_id))

    def view(self, grain_id: str) -> GrainView:
        """The grain, whoever asks: the caller has checked access (share holders see
        the grain this way). Raises NotFound."""
        with self.store.read() as s:
            grain = s.get(Grain, grain_id) if len(grain_id) <= 32 else None
            if grain is None:
                raise NotFound(f"No grain with ID {grain_id[:40]!r}.")
            return self._view(s, grain)

    def package_manifest(self, package_id: str) -> Manifest:
        with self.store.read() as s:
            row = s.get(Package, package_id)
            if row is None:
                raise NotFound(f"Package {package_id} is not installed.")
            return Manifest.model_validate(row.manifest)

    # -- changes ---------------------------------------------------------------
    def create(self, owner_id: str, app_id: str, action: int | str, title: str) -> GrainView:
        """A new grain of the newest installed package of ``app_id``, created by one of
        its actions (position, or noun phrase such as ``"note"``). Storage is made
        empty; the action runs at the first start.

        Raises InvalidInput (title, unknown action), NotFound (app not installed).
        """
        title = clean_title(title)
        self.check_volumes()
        with self.store.session() as s:
            package = s.scalars(select(Package).where(Package.app_id == app_id[:64])
                                .order_by(Package.version.desc())).first()
            if package is None:
                raise NotFound(f"No app with ID {app_id[:60]!r} is installed.")
            manifest = Manifest.model_validate(package.manifest)
            index = _action_index(manifest, action)
            grain = Grain(id=new_id(), owner_id=owner_id, app_id=package.app_id,
                          package_id=package.id, title=title, action_index=index,
                          created_at=utcnow(), size_bytes=0, initialized=False)
            if self.volumes is not None:
                self.volumes.create(grain.id)
            else:
                self.storage_dir(grain.id).mkdir(parents=True, mode=0o700)
            try:
                s.add(grain)
                s.flush()
            except Exception:
                shutil.rmtree(self.grains_dir / grain.id, ignore_errors=True)
                raise
            view = self._view(s, grain)
        log.info("grain_created", grain_id=view.id, app_id=view.app_id)
        return view

    def rename(self, user_id: str, grain_id: str, title: str) -> GrainView:
        title = clean_title(title)
        with self.store.session() as s:
            grain = self._owned(s, user_id, grain_id)
            grain.title = title
            return self._view(s, grain)

    async def trash(self, user_id: str, grain_id: str) -> GrainView:
        """Stop the grain and move it to the trash (restorable for trash_days)."""
        with self.store.session() as s:
            grain = self._owned(s, user_id, grain_id)
            if grain.trashed_at is None:
                grain.trashed_at = utcnow()
        if self.on_trash is not None:
            self.on_trash(grain_id)
        await self._stop(grain_id, "trashed")
        return self.get(user_id, grain_id)

    def restore(self, user_id: str, grain_id: str) -> GrainView:
        with self.store.session() as s:
            grain = self._owned(s, user_id, grain_id)
            if grain.trashed_at is None:
                raise Conflict("This grain is not in the trash.")
            grain.trashed_at = None
            return self._view(s, grain)

    async def purge(self, user_id: str, grain_id: str) -> None:
        """Delete a trashed grain for good, with its storage. Raises Conflict unless
        it is in the trash."""
        with self.store.read() as s:
            grain = self._owned(s, user_id, grain_id)
            if grain.trashed_at is None:
                raise Conflict("Move the grain to the trash before deleting it for good.")
        await self._purge(grain_id)

    async def _purge(self, grain_id: str) -> None:
        await self._stop(grain_id, "purged")
        if self.volumes is not None:
            await asyncio.to_thread(self.volumes.shred, grain_id)
        with self.store.session() as s:
            grain = s.get(Grain, grain_id)
            if grain is not None:
                s.delete(grain)
        await asyncio.to_thread(shutil.rmtree, self.grains_dir / grain_id, True)
        self._sizes.pop(grain_id, None)
        log.info("grain_purged", grain_id=grain_id)

    async def purge_expired(self) -> int:
        """Purge every grain trashed more than trash_days ago; returns how many."""
        cutoff = utcnow() - timedelta(days=self.trash_days)
        with self.store.read() as s:
            ids = s.scalars(select(Grain.id).where(Grain.trashed_at.is_not(None),
                                                   Grain.trashed_at < cutoff)).all()
        for grain_id in ids:
            await self._purge(grain_id)
        return len(ids)

    async def stop(self, user_id: str, grain_id: str) -> GrainView:
        self.get(user_id, grain_id)
        await self._stop(grain_id, "stop")
        return self.get(user_id, grain_id)

    async def _stop(self, grain_id: str, reason: str) -> None:
        if self.supervisor is not None:
            await self.supervisor.stop(grain_id, reason=reason)
        self._sizes.pop(grain_id, None)
        self._touched.pop(grain_id, None)

    async def ensure_running(self, grain_id: str) -> Path:
        """Start the grain if needed (its first start runs its action) and return
        its app socket. Raises NotFound for a trashed or unknown grain, and what
        the supervisor raises (GrainCrashed with retry_after, GrainStartFailed)."""
        if self.supervisor is None:
            raise Conflict("Grains cannot run in this process.")
        while (held := self._held.get(grain_id)) is not None:
            await held.wait()
        socket = await self.supervisor.ensure_running(grain_id)
        # Record the first start and the last use, at most once a minute per grain:
        # this runs on every request to the grain.
        now = time.monotonic()
        if now - self._touched.get(grain_id, -1e9) >= 60:
            self._touched[grain_id] = now
            with self.store.session() as s:
                grain = s.get(Grain, grain_id)
                if grain is not None:
                    grain.initialized = True
                    grain.last_used_at = utcnow()
        return socket

    @contextlib.asynccontextmanager
    async def held_stopped(self, grain_id: str) -> AsyncIterator[Path]:
        """Stop the grain and keep it from starting (new requests wait) until the
        block ends; yields its storage directory. Requests already inside the grain
        may finish first (up to ``DRAIN_SECONDS``; a WebSocket left open longer is
        closed by the stop). One holder at a time per grain."""
        while (held := self._held.get(grain_id)) is not None:
            await held.wait()
        released = self._held[grain_id] = asyncio.Event()
        try:
            deadline = time.monotonic() + DRAIN_SECONDS
            while (self.supervisor is not None and time.monotonic() < deadline
                   and self.supervisor.active_requests(grain_id) > 0):
                await asyncio.sleep(0.05)  # polled: requests end without telling us
            await self._stop(grain_id, "backup")
            if self.volumes is None:
                yield self.storage_dir(grain_id)
            else:  # the plaintext, mounted for the copy only
                point = await asyncio.to_thread(self.volumes.mount, grain_id)
                try:
                    yield point
                finally:
                    await asyncio.to_thread(self.volumes.unmount, grain_id)
        finally:
            del self._held[grain_id]
            released.set()

    def usage(self, user_id: str) -> int:
        """Bytes of storage used by all grains ``user_id`` owns (trash included)."""
        with self.store.read() as s:
            ids = s.scalars(select(Grain.id).where(Grain.owner_id == user_id)).all()
        return sum(self._size(grain_id) for grain_id in ids)

    def read_log(self, user_id: str, grain_id: str) -> str:
        self.get(user_id, grain_id)
        return self.supervisor.read_log(grain_id) if self.supervisor else ""

    def check_volumes(self) -> None:
        """Raises EncryptionError when storage is encrypted but grain volumes cannot
        be made or opened here (the KEK is sealed)."""
        if self.encrypted and self.volumes is None:
            raise EncryptionError("Grain volumes need the server's key, which is sealed by "
                                  "a passphrase: do this through the running server.")

    # -- the supervisor's input ------------------------------------------------
    async def start_spec(self, grain_id: str) -> GrainSpec:
        """:meth:`spec_for`, with the grain's volume mounted (the supervisor's
        ``spec_for``). Raises what spec_for raises, and GrainStartFailed when the
        volume cannot be mounted (logged with the reason): the grain then does not
        start, and shows as crashed with a reason for its owner."""
        self.check_volumes()
        spec = self.spec_for(grain_id)
        if self.volumes is not None:
            try:
                await asyncio.to_thread(self.volumes.mount, grain_id)
            except EncryptionError as exc:
                # The detail names server paths: it goes to the log; the owner
                # learns what it means (GrainView.crash_reason).
                log.error("grain_storage_failed", grain_id=grain_id, reason=str(exc))
                raise GrainStartFailed(
                    "Its encrypted storage cannot be opened; the server's log says why "
                    "(ask the server's administrator).") from None
        return spec

    async def release_storage(self, grain_id: str) -> None:
        """Unmount the grain's volume once its sandbox is gone (the supervisor's
        ``release``); the plaintext view exists only while the grain runs."""
        if self.volumes is not None:
            await asyncio.to_thread(self.volumes.unmount, grain_id)

    def spec_for(self, grain_id: str) -> GrainSpec:
        """What the supervisor runs for ``grain_id``, called at each start. Raises
        NotFound for an unknown or trashed grain, so nothing starts a grain in the
        trash.

        A grain moves to the newest installed package of its app at its next
        start (DESIGN.md "Catalog and updates"), unless that package's
        ``min_upgradable_version`` is above the grain's version."""
        with self.store.session() as s:
            grain = s.get(Grain, grain_id)
            if grain is None or grain.trashed_at is not None:
                raise NotFound(f"No grain with ID {grain_id[:40]!r}.")
            package = s.get(Package, grain.package_id)
            if package is None:  # pragma: no cover - RESTRICT foreign key
                raise NotFound(f"The package of grain {grain_id} is not installed.")
            newest = s.scalars(select(Package).where(Package.app_id == grain.app_id)
                               .order_by(Package.version.desc())).first()
            if newest is not None and newest.version > package.version:
                candidate = Manifest.model_validate(newest.manifest)
                if candidate.app.min_upgradable_version <= package.version:
                    log.info("grain_updated", grain_id=grain_id, from_package=package.id,
                             to_package=newest.id)
                    grain.package_id, package = newest.id, newest
            manifest = Manifest.model_validate(package.manifest)
            initialized = grain.initialized
            index = grain.action_index
        command = (manifest.continue_command if initialized
                   else manifest.actions[min(index, len(manifest.actions) - 1)].command)
        storage = self.storage_dir(grain_id)
        if self.volumes is None:
            storage.mkdir(parents=True, exist_ok=True, mode=0o700)
        return GrainSpec(package_dir=self.packages_dir / package.id, storage_dir=storage,
                         command=tuple(command.argv), app_port=manifest.app.port,
                         env=dict(command.env), limits=self.limits)


def _action_index(manifest: Manifest, action: int | str) -> int:
    if isinstance(action, bool):
        raise InvalidInput("Field 'action': give the action's position or noun phrase.")
    if isinstance(action, int):
        if 0 <= action < len(manifest.actions):
            return action
        raise InvalidInput(f"Field 'action': the app has {len(manifest.actions)} action(s); "
                           f"{action} is not one of them.")
    for i, candidate in enumerate(manifest.actions):
        if candidate.noun_phrase.lower() == str(action).strip().lower():
            return i
    raise InvalidInput(f"Field 'action': the app has no action {str(action)[:60]!r}.")
