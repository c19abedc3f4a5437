"""Who may do what in a grain: the owner holds every permission the app declares
("full access"); everyone else gets what a share grants (see the sharing layer).
Permissions are recomputed from the grain's current package at every check, so
an app update that redefines a role applies at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandhaven.packages.manifest import Manifest


@dataclass(frozen=True)
class Access:
    """What one person holds in one grain. ``role_index`` is None for the owner."""

    grain_id: str
    user_id: str | None
    is_owner: bool
    permissions: tuple[str, ...]
    role_index: int | None = None
    share_id: int | None = None


def all_permissions(manifest: Manifest) -> tuple[str, ...]:
    """Every permission name the manifest declares, in declaration order."""
    return tuple(p.name for p in manifest.permissions)


def role_permissions(manifest: Manifest, role_index: int) -> tuple[str, ...]:
    """The permission names a role grants, in declaration order; an index past the
    manifest's roles grants nothing."""
    if not 0 <= role_index < len(manifest.roles):
        return ()
    granted = set(manifest.roles[role_index].permissions)
    return tuple(p.name for p in manifest.permissions if p.name in granted)
