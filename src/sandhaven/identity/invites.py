"""Invitations: an admin invites an address (a mail with a link) or makes a
single-use link. Each invitation creates at most one account and lasts
:data:`INVITE_DAYS` days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from sandhaven.errors import Conflict, Forbidden, Gone, NotFound
from sandhaven.identity.emails import normalize_email
from sandhaven.identity.secrets import hash_secret, new_token
from sandhaven.store import Store, utcnow
from sandhaven.store.models import Invite, User

INVITE_DAYS = 7


@dataclass(frozen=True)
class InviteView:
    id: int
    email: str | None
    note: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked: bool

    @property
    def state(self) -> str:
        if self.revoked:
            return "revoked"
        if self.used_at:
            return "used"
        if self.expires_at <= utcnow():
            return "expired"
        return "open"


def _view(row: Invite) -> InviteView:
    return InviteView(row.id, row.email, row.note, row.created_at, row.expires_at,
                      row.used_at, row.revoked_at is not None)


def live_invite(s: Session, token: str) -> Invite:
    """The invitation for ``token`` if it can still be used. Raises NotFound or Gone."""
    row = s.scalar(select(Invite).where(Invite.token_hash == hash_secret(token)))
    if row is None:
        raise NotFound("This invitation link is not valid.")
    if row.revoked_at is not None:
        raise Gone("This invitation was withdrawn.")
    if row.used_at is not None:
        raise Gone("This invitation was already used.")
    if row.expires_at <= utcnow():
        raise Gone(f"This invitation has expired (invitations last {INVITE_DAYS} days).")
    creator = s.get(User, row.created_by) if row.created_by else None
    if creator is None or not creator.is_admin or creator.suspended_at is not None:
        raise Gone("This invitation is no longer valid: the admin who made it no longer is one.")
    return row


class Invites:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, actor_id: str, email: str | None = None, note: str = "") -> tuple[
            InviteView, str]:
        """Returns the invitation and its secret token. Raises Forbidden, InvalidInput."""
        addr = normalize_email(email) if email else None
        token = new_token()
        with self.store.session() as s:
            actor = s.get(User, actor_id)
            if actor is None or not actor.is_admin:
                raise Forbidden("Only an admin can invite people.")
            if addr and s.scalar(select(User).where(User.email == addr)):
                raise Conflict(f"{addr} already has an account.")
            now = utcnow()
            row = Invite(token_hash=hash_secret(token), email=addr, note=note.strip()[:200],
                         created_by=actor_id, created_at=now,
                         expires_at=now + timedelta(days=INVITE_DAYS))
            s.add(row)
            s.flush()
            return _view(row), token

    def list(self) -> list[InviteView]:
        with self.store.read() as s:
            return [_view(r) for r in s.scalars(select(Invite).order_by(Invite.created_at.desc()))]

    def peek(self, token: str) -> InviteView:
        with self.store.read() as s:
            return _view(live_invite(s, token))

    def delete(self, invite_id: int) -> None:
        """Remove an invitation outright (used when its mail could not be sent)."""
        with self.store.session() as s:
            row = s.get(Invite, invite_id)
            if row is not None:
                s.delete(row)

    def revoke(self, actor_id: str, invite_id: int) -> None:
        with self.store.session() as s:
            actor = s.get(User, actor_id)
            if actor is None or not actor.is_admin:
                raise Forbidden("Only an admin can withdraw invitations.")
            row = s.get(Invite, invite_id)
            if row is None:
                raise NotFound(f"No invitation with ID {invite_id}.")
            if row.used_at is None and row.revoked_at is None:
                row.revoked_at = utcnow()
