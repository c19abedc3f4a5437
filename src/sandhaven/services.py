"""The services one server holds, handed to the shell, the API and the CLI.

Built only by :mod:`sandhaven.server` (the composition root); there is no
module-level instance, so one process can hold several servers (tests do).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from sandhaven.backup.service import GrainBackups
from sandhaven.catalog.service import CatalogService
from sandhaven.catalog.signing import default_public_key
from sandhaven.catalog.sources import load as load_catalog_source
from sandhaven.config import Settings
from sandhaven.config.runtime import RuntimeSettings
from sandhaven.encryption import Storage
from sandhaven.grains import Grains
from sandhaven.grains.access_log import AccessLog
from sandhaven.grains.expiry import ExpiryAlarm
from sandhaven.grains.requests import AccessRequests
from sandhaven.grains.sessions import GrainSessions
from sandhaven.grains.shares import Shares
from sandhaven.grains.tokens import GrainTokens
from sandhaven.identity import Identity
from sandhaven.mail import Mailer
from sandhaven.packages.service import PackageService
from sandhaven.sandbox.spec import Limits
from sandhaven.store import Store, utcnow
from sandhaven.store.secrets import server_secret
from sandhaven.supervisor import Supervisor, SupervisorConfig

log = structlog.get_logger("sandhaven.services")


@dataclass(frozen=True)
class ServerSecrets:
    """Keys the server makes once and keeps in the store."""

    csrf: bytes


@dataclass
class Services:
    settings: Settings
    store: Store
    runtime: RuntimeSettings
    mailer: Mailer
    identity: Identity
    secrets: ServerSecrets
    # Parts added by later layers, by name, and routers they add to the shell/API.
    extra: dict[str, Any] = field(default_factory=dict)
    supervisor: Supervisor | None = None
    grains: Grains | None = None
    grain_sessions: GrainSessions | None = None
    grain_tokens: GrainTokens | None = None
    shares: Shares | None = None
    access_log: AccessLog | None = None
    access_requests: AccessRequests | None = None
    backups: GrainBackups | None = None
    upstream: Any = None  # the gateway's connection pool, set by the composition root
    _alarm: asyncio.Task[None] | None = None
    storage: Storage | None = None

    @classmethod
    def build(cls, settings: Settings, store: Store | None = None,
              storage: Storage | None = None) -> Services:
        """The server's parts. ``storage`` comes from
        :func:`sandhaven.encryption.open_storage` when serving; without it the store
        is at the ``database_url`` setting (in-process tests, nothing served)."""
        storage = storage or Storage.unmounted(settings)
        store = store or Store.open(storage.database_url, wal=not storage.encrypted_store)
        runtime = RuntimeSettings(store, settings)
        mailer = Mailer(runtime.effective)
        services = cls(settings, store, runtime, mailer, Identity(store, runtime, mailer),
                       ServerSecrets(csrf=server_secret(store, "csrf")))
        packages = PackageService.from_settings(store, settings)
        services.extra["packages"] = packages
        # Package uploads are larger than forms; the multipart form gets room for its fields.
        services.extra.setdefault("body_limits", {}).update({
            "/api/v1/packages": packages.limits.max_spk_bytes,
            "/apps/upload": packages.limits.max_spk_bytes + 64 * 1024,
        })
        source = settings.get("catalog.source")
        catalog = CatalogService(
            load_catalog_source(source, settings.data_dir), packages,
            public_key=settings.get("catalog.key") or (
                "" if source else default_public_key(Path(settings.data_dir) / "app-keys")))
        if not catalog.public_key:
            log.warning("catalog_unsigned", source=catalog.source.location,
                        fix="set catalog.key to the catalog's public key")
        services.extra["catalog"] = catalog
        grains = Grains(store, settings.data_dir, packages.packages_dir, None,
                        Limits.from_settings(settings), settings.grains_trash_days,
                        volumes=storage.volumes, encrypted=storage.encrypted)
        config = dataclasses.replace(SupervisorConfig.from_settings(settings),
                                     log_dir=storage.log_dir)
        supervisor = Supervisor(grains.start_spec, config, release=grains.release_storage)
        services.storage = storage
        grains.supervisor = supervisor
        services.supervisor, services.grains = supervisor, grains
        services.grain_sessions = GrainSessions(
            store, settings.base_url, settings.wildcard_host,
            anonymous_allowed=lambda s: bool(runtime.get("sharing.anonymous", s)))
        services.grain_tokens = GrainTokens(store, services.grain_sessions)
        services.shares = Shares(store, services.grain_sessions, grains, mailer)
        services.shares.on_change.append(services.grain_tokens.clear_cache)
        services.access_requests = AccessRequests(store, services.shares, mailer)
        runtime.on_save.append(services.grain_sessions.clear_cache)
        services.access_log = AccessLog(store, services.grain_sessions,
                                        lambda: int(runtime.get("sharing.access_log_days")))
        grains.on_trash = services.grain_sessions.revoke
        sessions_access = services.grain_sessions.access
        services.backups = GrainBackups(
            store, grains, quota_bytes=lambda: settings.get("grains.quota_mib") * 1024 * 1024,
            # Backups in the making hold a grain's plaintext: the private area's tmp.
            tmp_dir=storage.tmp_dir or Path(settings.data_dir) / "tmp",
            read_log=supervisor.read_log, log_dir=supervisor.config.log_dir,
            check_access=sessions_access,
            grain_uid=lambda: supervisor.config.grain_uid if os.geteuid() == 0 else None)
        services.extra["body_limits"]["/api/v1/grains/restore"] = (
            settings.get("grains.max_restore_mib") * 1024 * 1024)
        services.extra["body_limits"]["/grains/restore-backup"] = (
            settings.get("grains.max_restore_mib") * 1024 * 1024 + 64 * 1024)
        sessions, tokens = services.grain_sessions, services.grain_tokens
        services.identity.users.on_access_change += [
            lambda user_id: sessions.revoke(user_id=user_id),  # ends them for good
            lambda user_id: tokens.clear_cache()]
        return services

    async def start(self) -> None:
        """Start what runs in the background: the supervisor, and the alarm that
        makes sharing links expire on open connections. Raises SandboxUnavailable."""
        if self.backups is not None:
            self.backups.clean_staging()  # what a killed restore left
        if self.supervisor is not None:
            await self.supervisor.start()
        if self.shares is not None:
            shares = self.shares
            self._alarm = asyncio.create_task(ExpiryAlarm(
                shares.next_expiry, shares.end_expired, shares.sessions.subscribe,
                utcnow).run())

    async def close(self) -> None:
        """Stop the expiry alarm and every grain cleanly, then the supervisor."""
        if self._alarm is not None:
            self._alarm.cancel()
            await asyncio.wait({self._alarm}, timeout=5)  # bounded: a stop never hangs
            if self._alarm.done() and not self._alarm.cancelled():
                self._alarm.exception()  # retrieved: it ended on its own, already logged
            self._alarm = None
        if self.supervisor is not None:
            await self.supervisor.close()

    @property
    def packages(self) -> PackageService:
        """Install, uninstall and list app packages."""
        return self.extra["packages"]

    @property
    def catalog(self) -> CatalogService:
        """The app catalog: market listing, one-click install, update check."""
        return self.extra["catalog"]
