"""Requests for access: a logged-in person without access asks a grain's owner,
who grants a role (a share of the person's own) or dismisses the request.

Asking answers the same whether or not the grain exists or the person already
has access, so it reveals nothing; asks are rate-limited per person and grain
(:data:`PER_GRAIN` a day) and per person (:data:`PER_PERSON` a day). The owner
sees open requests on the grain's page and gets a mail where outgoing mail is
configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select

from sandhaven.errors import Forbidden, MailError, NotFound
from sandhaven.grains.access import chain_permissions, effective_role, role_permissions
from sandhaven.grains.shares import Shares, ShareView
from sandhaven.identity import ratelimit
from sandhaven.mail import Mailer, OutgoingMail
from sandhaven.store import Store, utcnow
from sandhaven.store.models import AccessRequest, Grain, Share, User

log = structlog.get_logger("sandhaven.grains")
PER_GRAIN = 3
PER_PERSON = 20
MESSAGE_MAX = 1000


@dataclass(frozen=True)
class RequestView:
    id: int
    user_id: str
    user_name: str
    user_email: str
    message: str
    created_at: datetime


class AccessRequests:
    """Asking for access, and the owner's answers."""

    def __init__(self, store: Store, shares: Shares, mailer: Mailer | None = None) -> None:
        self.store = store
        self.shares = shares
        self.mailer = mailer

    def ask(self, user_id: str, grain_id: str, message: str = "") -> None:
        """Ask the owner of ``grain_id`` for access. Does nothing (silently) when the
        grain does not exist or is in the trash, or the person already has access;
        asking again updates the open request. Raises RateLimited."""
        message = " ".join(message.split())[:MESSAGE_MAX]
        day = timedelta(days=1)
        with self.store.session() as s:
            ratelimit.hit(s, f"access-request:{user_id}:{grain_id[:40]}", limit=PER_GRAIN,
                          window=day, what="access requests for this grain")
            ratelimit.hit(s, f"access-request:{user_id}", limit=PER_PERSON, window=day,
                          what="access requests")
        sessions = self.shares.sessions
        with self.store.session() as s:
            grain = s.get(Grain, grain_id) if len(grain_id) <= 32 else None
            if grain is None or grain.trashed_at is not None \
                    or sessions._access(s, user_id, grain_id) is not None:
                return
            row = s.scalar(select(AccessRequest).where(
                AccessRequest.grain_id == grain_id, AccessRequest.user_id == user_id,
                AccessRequest.closed_at.is_(None)))
            if row is None:
                s.add(AccessRequest(grain_id=grain_id, user_id=user_id, message=message,
                                    created_at=utcnow()))
            else:
                row.message, row.created_at = message, utcnow()
            owner = s.get(User, grain.owner_id)
            asker = s.get(User, user_id)
            mail = OutgoingMail(
                owner.email, f"{asker.name} asks for access to \"{grain.title}\"",
                f"{asker.name} ({asker.email}) asks for access to \"{grain.title}\".\n\n"
                + (f"{message}\n\n" if message else "")
                + f"Answer on the grain's page: {sessions.base_url}/grains/{grain_id}\n")
        if self.mailer is not None and self.mailer.configured():
            try:
                self.mailer.send(mail)
            except MailError as exc:
                # The request stands: the owner sees it on the grain's page.
                log.warning("access_request_mail_failed", grain_id=grain_id, reason=str(exc))

    def _owned(self, owner_id: str, grain_id: str) -> None:
        if not self.shares.sessions.access(owner_id, grain_id).is_owner:
            raise Forbidden("Only the grain's owner answers access requests.")

    def pending(self, owner_id: str, grain_id: str) -> list[RequestView]:
        """Open requests, oldest first. Raises NotFound, Forbidden (not the owner)."""
        self._owned(owner_id, grain_id)
        with self.store.read() as s:
            rows = s.scalars(select(AccessRequest).where(
                AccessRequest.grain_id == grain_id, AccessRequest.closed_at.is_(None))
                .order_by(AccessRequest.id))
            out = []
            for row in rows:
                user = s.get(User, row.user_id)
                out.append(RequestView(row.id, row.user_id, user.name, user.email,
                                       row.message, row.created_at))
            return out

    def _open(self, s, grain_id: str, request_id: int) -> AccessRequest:  # type: ignore[no-untyped-def]
        row = s.get(AccessRequest, request_id)
        if row is None or row.grain_id != grain_id or row.closed_at is not None:
            raise NotFound(f"No open access request with ID {request_id} for this grain.")
        return row

    def grant(self, owner_id: str, grain_id: str, request_id: int, role: int) -> ShareView:
        """Give the asker ``role`` and close the request. Someone without access gets
        a share of their own from the owner. Someone who has access by now (they
        took a link, were invited, were re-shared to) keeps a single share: the
        owner's direct share to them, or else the share they hold it by, becomes
        the owner's direct share (so it no longer hangs from a link or re-share
        that may be revoked) with ``role``, unless what it grants now is more than
        ``role`` grants: then it keeps what it grants (a grant never takes
        anything away). Open sessions see the change on their next request.
        Raises NotFound, Forbidden, InvalidInput (no such role)."""
        self._owned(owner_id, grain_id)
        access = self.shares.sessions.access(owner_id, grain_id)
        with self.store.session() as s:
            row = self._open(s, grain_id, request_id)
            manifest = self.shares._manifest(s, grain_id)
            self.shares._check_role(manifest, access, role)
            asker = s.get(User, row.user_id)
            share = self._held(s, owner_id, grain_id, row.user_id)
            if share is None:
                share = Share(grain_id=grain_id, created_by=owner_id,
                              recipient_id=row.user_id, token_hash=None, parent_id=None,
                              role_index=role, label=asker.email, created_at=utcnow())
                s.add(share)
            else:
                grain = s.get(Grain, grain_id)
                held = set(chain_permissions(s, share, grain, manifest) or ())
                current = effective_role(s, share)
                share.created_by, share.parent_id = owner_id, None
                if not held > set(role_permissions(manifest, role)):
                    share.role_index = role
                else:
                    share.role_index = current
            row.closed_at = utcnow()
            s.flush()
            view = self.shares._view(s, share, access)
        self.shares._changed()
        return view

    def _held(self, s, owner_id: str, grain_id: str, user_id: str  # type: ignore[no-untyped-def]
              ) -> Share | None:
        """The share a person holds the grain by now, for a grant to update: the
        owner's direct share to them, else the one granting them most; None when
        they hold nothing."""
        live = list(s.scalars(select(Share).where(
            Share.grain_id == grain_id, Share.recipient_id == user_id,
            Share.revoked_at.is_(None)).order_by(Share.id)))
        for share in live:
            if share.created_by == owner_id and share.parent_id is None:
                return share
        found = self.shares.sessions._access(s, user_id, grain_id)
        if found is None or found.share_id is None:
            return None
        return s.get(Share, found.share_id)

    def dismiss(self, owner_id: str, grain_id: str, request_id: int) -> None:
        """Close the request without granting anything. Raises NotFound, Forbidden."""
        self._owned(owner_id, grain_id)
        with self.store.session() as s:
            self._open(s, grain_id, request_id).closed_at = utcnow()
