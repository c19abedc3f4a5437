"""Sharing: links that grant a role on a grain, the grants people take from them,
invitations by address, re-shares, role changes and revocation.

A sharing link is 256 random bits shown once as ``<base>/shared/<token>``; only
its SHA-256 is stored (``shares.token_hash``). A logged-in person who opens it
gets a share of their own (``recipient_id``) whose parent is the link, so the
grain shows among their "Shared with me" and revoking the link revokes them too;
that share has no role of its own: it grants the link's current role
(:func:`~sandhaven.grains.access.effective_role`).
Anyone may re-share what they hold: the new share's parent is the share they
hold it by, and what it grants is capped along the chain
(:func:`~sandhaven.grains.access.chain_permissions`), recomputed at every check.

A link may expire (``expires_at``): from then on it and everything derived from
it grant nothing, as if revoked, and opening it says when it expired
(:mod:`sandhaven.grains.expiry`).

Every change (role, revocation) clears the session and token caches, so the
next request on any open session or API token sees it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from sandhaven.errors import Forbidden, Gone, InvalidInput, MailError, NotFound
from sandhaven.grains.access import (
    Access,
    chain_expired,
    chain_expires,
    chain_permissions,
    effective_role,
    role_permissions,
    taken_from_link,
)
from sandhaven.grains.expiry import MAX_DAYS, describe
from sandhaven.grains.service import Grains, GrainView
from sandhaven.grains.sessions import GrainSessions
from sandhaven.identity.emails import normalize_email
from sandhaven.identity.profiles import clean_name
from sandhaven.mail import Mailer, OutgoingMail
from sandhaven.packages.manifest import Manifest
from sandhaven.store import Store, utcnow
from sandhaven.store.models import ApiToken, Grain, Package, Share, User

SHARED_PATH = "/shared/"
MESSAGE_MAX = 1000  # characters of the optional message in an invitation mail


@dataclass(frozen=True)
class ShareView:
    """One entry of a grain's who-has-access list: a link (``recipient_id`` None) or
    a person. ``role_title`` is the role's title in the current manifest."""

    id: int
    kind: str  # "link" or "person"
    label: str
    role: int
    role_title: str
    recipient_id: str | None
    recipient_name: str | None
    created_by: str
    created_by_name: str
    parent_id: int | None
    created_at: datetime
    last_used_at: datetime | None
    can_change: bool
    # What it grants now: its role capped along the chain it was re-shared from.
    permissions: tuple[str, ...] = ()
    # A person's grant taken from a link: its role is the link's current role.
    follows_link: bool = False
    # When it stops granting (naive UTC), None for never: the earliest expiry along
    # the chain it hangs from (a link's own; a person's who took a link, or a
    # re-share's, that of the link above); ``expired`` once it passed.
    expires_at: datetime | None = None
    expired: bool = False


@dataclass(frozen=True)
class OpenedLink:
    """A live sharing link, as opening it finds it."""

    share_id: int
    grain_id: str
    grain_title: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Shares:
    """Sharing links and grants of one server. ``on_change`` callables run after
    every role change or revocation (they clear access caches)."""

    def __init__(self, store: Store, sessions: GrainSessions, grains: Grains,
                 mailer: Mailer | None = None) -> None:
        self.store = store
        self.sessions = sessions
        self.grains = grains
        self.mailer = mailer
        self.on_change: list[Callable[[], object]] = [sessions.clear_cache]
        # Expiries up to this time (naive UTC) were acted on (see end_expired).
        self.expired_upto: datetime | None = None

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    def link_url(self, token: str) -> str:
        return f"{self.sessions.base_url}{SHARED_PATH}{token}"

    @staticmethod
    def _manifest(s: Session, grain_id: str) -> Manifest:
        grain = s.get(Grain, grain_id)
        return Manifest.model_validate(s.get(Package, grain.package_id).manifest)

    @staticmethod
    def _check_role(manifest: Manifest, access: Access, role: int) -> None:
        """Raises InvalidInput for a role the app lacks or marks obsolete (old shares
        keep it; new ones cannot get it), Forbidden for one granting more than
        ``access`` holds."""
        if isinstance(role, bool) or not 0 <= role < len(manifest.roles):
            raise InvalidInput(f"Field 'role': the app has {len(manifest.roles)} role(s); "
                               f"{role} is not one of them.")
        if manifest.roles[role].obsolete:
            raise InvalidInput(f"Field 'role': role {role} "
                               f"({manifest.roles[role].title!r}) is obsolete.")
        missing = [p for p in role_permissions(manifest, role) if p not in access.permissions]
        if missing:
            raise Forbidden(f"You can share only what you hold: role "
                            f"{manifest.roles[role].title!r} grants {', '.join(missing)!s}, "
                            "which you do not have.")

    # -- links -------------------------------------------------------------------
    def create_link(self, user_id: str, grain_id: str, role: int, label: str = "",
                    expires_at: datetime | None = None) -> tuple[ShareView, str]:
        """A new sharing link granting ``role`` (a role position), expiring at
        ``expires_at`` (naive UTC; None: never, see
        :func:`~sandhaven.grains.expiry.parse_expiry`); returns its view and the
        token, which is never shown again. Raises NotFound (no access),
        InvalidInput (no such role; an expiry past or more than
        :data:`~sandhaven.grains.expiry.MAX_DAYS` days ahead), Forbidden (the role
        grants more than the user holds)."""
        access = self.sessions.access(user_id, grain_id)
        label = clean_name(label) if label.strip() else "Sharing link"
        now = utcnow()
        if expires_at is not None and not now < expires_at <= now + timedelta(days=MAX_DAYS):
            raise InvalidInput(f"Field 'expires' is {describe(expires_at)}: it must lie "
                               f"ahead, at most {MAX_DAYS} days.")
        token = secrets.token_urlsafe(32)
        with self.store.session() as s:
            self._check_role(self._manifest(s, grain_id), access, role)
            row = Share(grain_id=grain_id, created_by=user_id, recipient_id=None,
                        token_hash=token_hash(token), parent_id=access.share_id,
                        role_index=role, label=label, created_at=now,
                        expires_at=expires_at)
            s.add(row)
            s.flush()
            view = self._view(s, row, access)
        if expires_at is not None:
            self.sessions.notify()  # the expiry alarm learns of the new expiry
        return view, token

    def end_expired(self) -> int:
        """Act on links that expired since the last call (the first call, at start,
        on every link that ever expired, in case the server was down then): clear
        the access caches, so open sessions and WebSockets stop now, and end for
        good the sessions and grain tokens of people left without access, as
        revoking does (again harmless). Returns how many links expired. Run by the
        expiry alarm."""
        now = utcnow()
        since = self.expired_upto or datetime.min
        recipients: dict[str, set[str]] = {}
        with self.store.read() as s:
            pending = list(s.scalars(select(Share).where(
                Share.revoked_at.is_(None), Share.expires_at > since,
                Share.expires_at <= now)))
            count = len(pending)
            seen: set[int] = set()
            while pending:
                row = pending.pop()
                if row.id in seen:
                    continue
                seen.add(row.id)
                if row.recipient_id:
                    recipients.setdefault(row.grain_id, set()).add(row.recipient_id)
                pending.extend(s.scalars(select(Share).where(
                    Share.parent_id == row.id, Share.revoked_at.is_(None))))
        self.expired_upto = now
        self._changed()
        for grain_id, user_ids in recipients.items():
            self._end_lost_access(grain_id, user_ids)
        return count

    def next_expiry(self) -> datetime | None:
        """The earliest expiry still ahead among live links (naive UTC), or None."""
        with self.store.read() as s:
            return s.scalar(select(func.min(Share.expires_at)).where(
                Share.revoked_at.is_(None), Share.expires_at > utcnow()))

    def find_link(self, token: str) -> OpenedLink:
        """The live link behind ``token``. Raises NotFound for a token that never
        existed (forged, truncated) and Gone for one revoked, expired (the message
        says when), cut off with its chain, or whose grain is in the trash."""
        if not token or len(token) > 100:
            raise NotFound("This sharing link is not valid. Check that it was copied whole.")
        with self.store.read() as s:
            row = s.scalar(select(Share).where(Share.token_hash == token_hash(token)))
            if row is None:
                raise NotFound("This sharing link is not valid. Check that it was copied "
                               "whole.")
            grain = s.get(Grain, row.grain_id)
            expired = chain_expired(s, row) if row.revoked_at is None else None
            if expired is not None and grain.trashed_at is None:
                raise Gone(f"This sharing link expired on {describe(expired)}. Ask the "
                           "person who sent it for a new one.")
            if (grain.trashed_at is not None
                    or chain_permissions(s, row, grain, self._manifest(s, grain.id)) is None):
                raise Gone("This sharing link was revoked. Ask the person who sent it for "
                           "a new one.")
            return OpenedLink(row.id, grain.id, grain.title)

    def redeem(self, token: str, user_id: str) -> str:
        """A logged-in person opens a link: they get a share of their own under it
        (once; opening again reuses it) and the grain's ID is returned. The owner
        gets nothing new. Raises what :meth:`find_link` raises."""
        link = self.find_link(token)
        with self.store.session() as s:
            grain = s.get(Grain, link.grain_id)
            row = s.get(Share, link.share_id)
            row.last_used_at = utcnow()
            if grain.owner_id == user_id:
                return grain.id
            mine = s.scalar(select(Share).where(
                Share.parent_id == row.id, Share.recipient_id == user_id,
                Share.revoked_at.is_(None)))
            if mine is None:
                s.add(Share(grain_id=grain.id, created_by=row.created_by,
                            recipient_id=user_id, token_hash=None, parent_id=row.id,
                            role_index=row.role_index, label=row.label,
                            created_at=utcnow(), last_used_at=utcnow()))
            else:
                mine.last_used_at = utcnow()
        return link.grain_id

    # -- people --------------------------------------------------------------------
    def invite(self, user_id: str, grain_id: str, email: str, role: int, message: str = ""
               ) -> ShareView:
        """Share with a person by address. A user of this server gets the grant at
        once (the grain joins their "Shared with me"), and a mail when outgoing
        mail is configured; anyone else gets a mail with a sharing link of their
        own, labelled with their address, which the sharer never sees. Inviting
        someone the sharer invited before updates that share (role; a new mail, and
        for someone without an account a new link replacing the old) instead of
        adding another. A mail that cannot be sent leaves nothing changed.

        Raises NotFound (no access), InvalidInput (not an address, the owner or
        oneself, no such role), Forbidden (more than the sharer holds), MailError
        (outgoing mail not configured for someone without an account, or the
        SMTP server refused)."""
        access = self.sessions.access(user_id, grain_id)
        address = normalize_email(email)
        message = " ".join(message.split())[:MESSAGE_MAX]
        token: str | None = None
        with self.store.session() as s:
            self._check_role(self._manifest(s, grain_id), access, role)
            grain = s.get(Grain, grain_id)
            sharer = s.get(User, user_id)
            recipient = s.scalar(select(User).where(User.email == address))
            if recipient is not None and recipient.id in (grain.owner_id, user_id):
                raise InvalidInput(f"{address} already holds this grain.")
            if recipient is None:
                if self.mailer is None or not self.mailer.configured():
                    raise MailError(f"{address} has no account here, and outgoing mail is not "
                                    "configured to send them a link; create a sharing link "
                                    "instead.")
                token = secrets.token_urlsafe(32)
            row = self._invited(s, grain_id, user_id, address,
                                recipient.id if recipient else None)
            previous = (row.role_index, row.token_hash) if row is not None else None
            if row is None:
                row = Share(grain_id=grain_id, created_by=user_id,
                            recipient_id=recipient.id if recipient else None,
                            token_hash=token_hash(token) if token else None,
                            parent_id=access.share_id, role_index=role, label=address,
                            created_at=utcnow())
                s.add(row)
            else:
                # Invited again: the same share gets the new role (and, for someone
                # without an account, a new link replacing the one mailed before).
                row.role_index = role
                if token:
                    row.token_hash = token_hash(token)
            s.flush()
            view = self._view(s, row, access)
            verb = self._manifest(s, grain_id).roles[role].verb_phrase or "can open"
            title, sharer_name = grain.title, sharer.name
        url = (self.link_url(token) if token
               else f"{self.sessions.base_url}/grains/{grain_id}")
        if token or (self.mailer is not None and self.mailer.configured()):
            text = (f"{sharer_name} shared \"{title}\" with you on Sandhaven: you {verb}.\n\n"
                    + (f"{message}\n\n" if message else "") + f"Open it: {url}\n")
            try:
                assert self.mailer is not None
                self.mailer.send(OutgoingMail(address, f"{sharer_name} shared \"{title}\" "
                                              "with you", text))
            except MailError:
                with self.store.session() as s:
                    if previous is None:
                        s.delete(s.get(Share, view.id))
                    else:
                        row = s.get(Share, view.id)
                        row.role_index, row.token_hash = previous
                raise
        if previous is not None:
            self._changed()
        return view

    @staticmethod
    def _invited(s: Session, grain_id: str, sharer_id: str, address: str,
                 recipient_id: str | None) -> Share | None:
        """The live share ``sharer_id`` made for this person by address before (for
        someone without an account, the link mailed to them), or None. A grant
        taken from a link is not one: it follows the link."""
        q = select(Share).where(Share.grain_id == grain_id, Share.created_by == sharer_id,
                                Share.revoked_at.is_(None))
        if recipient_id is not None:
            for row in s.scalars(q.where(Share.recipient_id == recipient_id).order_by(Share.id)):
                if taken_from_link(s, row) is None:
                    return row
        # The link mailed to the address before it had an account here (whoever
        # took it since follows its role).
        return s.scalar(q.where(Share.recipient_id.is_(None), Share.label == address,
                                Share.token_hash.is_not(None)).order_by(Share.id))

    # -- who has access --------------------------------------------------------------
    def _view(self, s: Session, row: Share, access: Access) -> ShareView:
        manifest = self._manifest(s, row.grain_id)
        role = effective_role(s, row)
        role_title = (manifest.roles[role].title
                      if 0 <= role < len(manifest.roles) else f"role {role}")
        recipient = s.get(User, row.recipient_id) if row.recipient_id else None
        creator = s.get(User, row.created_by)
        granted = chain_permissions(s, row, s.get(Grain, row.grain_id), manifest)
        expires = chain_expires(s, row)
        return ShareView(
            id=row.id, kind="link" if row.recipient_id is None else "person",
            label=row.label, role=role, role_title=role_title,
            recipient_id=row.recipient_id, recipient_name=recipient.name if recipient else None,
            created_by=row.created_by, created_by_name=creator.name if creator else "",
            parent_id=row.parent_id, created_at=row.created_at,
            last_used_at=row.last_used_at,
            can_change=access.is_owner or row.created_by == access.user_id,
            permissions=granted or (),
            follows_link=taken_from_link(s, row) is not None,
            expires_at=expires,
            expired=expires is not None and expires <= utcnow())

    def list_access(self, user_id: str, grain_id: str) -> list[ShareView]:
        """Who has access, oldest first: every live share for the owner; for anyone
        else the shares they created. Raises NotFound without access."""
        access = self.sessions.access(user_id, grain_id)
        with self.store.read() as s:
            q = select(Share).where(Share.grain_id == grain_id, Share.revoked_at.is_(None))
            if not access.is_owner:
                q = q.where(Share.created_by == user_id)
            return [self._view(s, row, access) for row in s.scalars(q.order_by(Share.id))]

    def _changeable(self, s: Session, access: Access, grain_id: str, share_id: int) -> Share:
        row = s.get(Share, share_id)
        if (row is None or row.grain_id != grain_id or row.revoked_at is not None
                or not (access.is_owner or row.created_by == access.user_id)):
            raise NotFound(f"No share with ID {share_id} that you can change on this grain.")
        return row

    def change_role(self, user_id: str, grain_id: str, share_id: int, role: int) -> ShareView:
        """Give a share another role; open sessions see it on their next request.
        The owner changes any share, others only those they created and only to a
        role within what they hold. A person's grant taken from a link has no role
        of its own (it follows the link's): changing it raises InvalidInput, which
        names the link to change instead. A role beyond what the share it was
        re-shared from grants now is refused with Forbidden, naming that share.
        Raises NotFound, InvalidInput, Forbidden."""
        access = self.sessions.access(user_id, grain_id)
        with self.store.session() as s:
            row = self._changeable(s, access, grain_id, share_id)
            link = taken_from_link(s, row)
            if link is not None:
                raise InvalidInput(f"This person took the link {link.label!r} (share "
                                   f"{link.id}) and holds its role: change the link's role, "
                                   "or revoke this share and invite them by address.")
            manifest = self._manifest(s, grain_id)
            self._check_role(manifest, access, role)
            parent = s.get(Share, row.parent_id) if row.parent_id is not None else None
            if parent is not None:
                # A re-share never grants more than the share it came from: refuse
                # a role it could not grant rather than show one it does not.
                held = chain_permissions(s, parent, s.get(Grain, grain_id), manifest) or ()
                missing = [p for p in role_permissions(manifest, role) if p not in held]
                if missing:
                    raise Forbidden(f"This share was re-shared from {parent.label!r}, which "
                                    f"grants no {', '.join(missing)}: role "
                                    f"{manifest.roles[role].title!r} would not apply. "
                                    "Change that share first.")
            row.role_index = role
            view = self._view(s, row, access)
        self._changed()
        return view

    def revoke(self, user_id: str, grain_id: str, share_id: int) -> int:
        """Revoke a share and every share derived from it (re-shares, grants taken
        from a link); returns how many were revoked. The owner revokes any share,
        others only those they created. Raises NotFound."""
        access = self.sessions.access(user_id, grain_id)
        now = utcnow()
        recipients: set[str] = set()
        with self.store.session() as s:
            pending = [self._changeable(s, access, grain_id, share_id)]
            count = 0
            while pending:
                row = pending.pop()
                if row.revoked_at is None:
                    row.revoked_at = now
                    count += 1
                    if row.recipient_id:
                        recipients.add(row.recipient_id)
                pending.extend(s.scalars(select(Share).where(
                    Share.parent_id == row.id, Share.revoked_at.is_(None))))
        self._changed()
        self._end_lost_access(grain_id, recipients)
        return count

    def _end_lost_access(self, grain_id: str, user_ids: set[str]) -> None:
        """For each person left without access, end their sessions and grain tokens
        for good: a later grant must not bring old credentials back."""
        for uid in user_ids:
            with self.store.read() as s:
                still = self.sessions._access(s, uid, grain_id)
            if still is not None:
                continue
            self.sessions.revoke(grain_id=grain_id, user_id=uid)
            with self.store.session() as s:
                s.execute(update(ApiToken).where(
                    ApiToken.grain_id == grain_id, ApiToken.user_id == uid,
                    ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow()))
        self._changed()

    def shared_with(self, user_id: str) -> list[GrainView]:
        """Grains others shared with ``user_id`` that they can reach now, most
        recently used first."""
        with self.store.read() as s:
            ids = set(s.scalars(select(Share.grain_id).where(
                Share.recipient_id == user_id, Share.revoked_at.is_(None))))
            reachable = [g for g in sorted(ids)
                         if (a := self.sessions._access(s, user_id, g)) and not a.is_owner]
        views = [self.grains.view(g) for g in reachable]
        return sorted(views, key=lambda g: g.last_used_at or g.created_at, reverse=True)
