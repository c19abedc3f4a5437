"""Who may do what in a grain: the owner holds every permission the app declares
("full access"); everyone else gets what their shares grant, capped along the
re-share chain (:func:`chain_permissions`).
Permissions are recomputed from the grain's current package at every check, so
an app update that redefines a role applies at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from sandhaven.packages.manifest import Manifest
from sandhaven.store import utcnow
from sandhaven.store.models import Grain, Share, User


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


def taken_from_link(s: Session, share: Share) -> Share | None:
    """The link a person's grant was taken from (opening the link made it), or None.
    Such a grant has no role of its own: it follows the link's current role."""
    if share.recipient_id is None or share.parent_id is None:
        return None
    parent = s.get(Share, share.parent_id)
    if (parent is None or parent.recipient_id is not None
            or parent.created_by != share.created_by):
        return None
    return parent


def effective_role(s: Session, share: Share) -> int:
    """The role a share grants: its own, or for a grant taken from a link the
    link's current role."""
    link = taken_from_link(s, share)
    return link.role_index if link is not None else share.role_index


# A re-share chain longer than this grants nothing (and a cycle cannot loop forever).
MAX_CHAIN = 32


def chain_permissions(s: Session, share: Share, grain: Grain, manifest: Manifest
                      ) -> tuple[str, ...] | None:
    """The permissions ``share`` grants now, in declaration order: its role's
    intersected with every ancestor's along ``parent_id`` (a re-share never grants
    more than its sharer holds). None when any share of the chain is revoked or
    expired, belongs to another grain, was made by a suspended account, or does not lead
    back to the grain's owner: a
    root share must be the owner's; a re-share must be made by its parent's
    recipient, and a person's grant taken from a link (its parent) by the link's
    creator."""
    granted = set(all_permissions(manifest))
    seen: set[int] = set()
    current = share
    now = utcnow()
    while True:
        if (current.revoked_at is not None or current.grain_id != grain.id
                or current.id in seen or len(seen) >= MAX_CHAIN
                or (current.expires_at is not None and current.expires_at <= now)):
            return None
        seen.add(current.id)
        creator = s.get(User, current.created_by)
        if creator is None or creator.suspended_at is not None:
            return None
        if taken_from_link(s, current) is None:
            # A grant taken from a link follows the link's role, applied next.
            granted &= set(role_permissions(manifest, current.role_index))
        if current.parent_id is None:
            if current.created_by != grain.owner_id:
                return None
            break
        parent = s.get(Share, current.parent_id)
        if parent is None:
            return None
        from_link = parent.recipient_id is None and current.created_by == parent.created_by
        if parent.recipient_id != current.created_by and not from_link:
            return None
        current = parent
    return tuple(p.name for p in manifest.permissions if p.name in granted)


def chain_expires(s: Session, share: Share) -> datetime | None:
    """The earliest expiry along the chain ``share`` hangs from (naive UTC; past or
    future), or None when no link of it expires."""
    found: datetime | None = None
    seen: set[int] = set()
    current: Share | None = share
    while current is not None and current.id not in seen and len(seen) < MAX_CHAIN:
        seen.add(current.id)
        if current.expires_at is not None:
            found = current.expires_at if found is None else min(found, current.expires_at)
        current = s.get(Share, current.parent_id) if current.parent_id is not None else None
    return found


def chain_expired(s: Session, share: Share) -> datetime | None:
    """When the chain ``share`` hangs from stopped granting because a link of it
    expired (naive UTC), or None when none of it has. Tells an expired link from a
    revoked one in messages."""
    found = chain_expires(s, share)
    return found if found is not None and found <= utcnow() else None
