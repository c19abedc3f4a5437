"""The services one server holds, handed to the shell, the API and the CLI.

Built only by :mod:`sandhaven.server` (the composition root); there is no
module-level instance, so one process can hold several servers (tests do).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandhaven.config import Settings
from sandhaven.config.runtime import RuntimeSettings
from sandhaven.identity import Identity
from sandhaven.mail import Mailer
from sandhaven.packages.service import PackageService
from sandhaven.store import Store
from sandhaven.store.secrets import server_secret


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
    # Parts added by later layers (packages, supervisor, grains…), by name.
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, store: Store | None = None) -> Services:
        store = store or Store.open(settings.database)
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
        return services

    @property
    def packages(self) -> PackageService:
        """Install, uninstall and list app packages."""
        return self.extra["packages"]
