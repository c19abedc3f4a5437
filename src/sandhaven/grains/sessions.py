"""Grain sessions: one view of one grain by one person in one tab, on its own host.

Opening: 256 random bits are the session secret; the host is ``ui-`` + the first
32 hex of SHA-256(secret) under the wildcard host (compat.md). Only the SHA-256
is stored. The shell's iframe first loads the session host's init path carrying
the secret; the answer sets it as an HttpOnly cookie for that host alone and
redirects to the app. The init path works once.

Each request to a session host: the cookie must hash to the host's ID and to a
live session (not revoked, not expired); the person must still have access
(active account, grain not in the trash, still owner or share holder; for an
anonymous session, the link still live and anonymous access allowed); the
permissions are recomputed from the current package. The result is cached for
at most :data:`RECHECK_SECONDS`, so a revocation takes effect within that time.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sandhaven.errors import Forbidden, NotFound
from sandhaven.grains.access import (
    Access,
    all_permissions,
    chain_expired,
    chain_permissions,
    effective_role,
)
from sandhaven.grains.access_log import Client, record
from sandhaven.grains.expiry import describe
from sandhaven.identity.identicon import identicon_key
from sandhaven.packages.manifest import Manifest
from sandhaven.store import Store, utcnow
from sandhaven.store.models import (
    Grain,
    GrainIdentity,
    GrainSession,
    Package,
    Share,
    User,
)

COOKIE_NAME = "sandhaven_grain_session"
INIT_PATH = "/_sandhaven/init"
RECHECK_SECONDS = 0.5
# What apps see as the name of someone using a sharing link without logging in.
ANONYMOUS_NAME = "Anonymous User"


def host_id_of(secret: str) -> str:
    """The 32 hex of a session host's label: first 32 hex of SHA-256(secret)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class OpenedSession:
    """What opening a session gives the shell: the iframe's first URL (init path
    with the secret), the session's origin, and its expiry (naive UTC)."""

    url: str
    host: str
    origin: str
    expires: datetime


@dataclass(frozen=True)
class LiveSession:
    """A checked session, as a request on its host sees it."""

    grain_id: str
    public_id: str
    tab_id: str
    access: Access
    user_id: str | None
    identity_id: str | None
    username: str
    handle: str | None
    picture: str | None
    pronouns: str | None


def session_origin(base_url: str, wildcard_host: str, host_id: str) -> str:
    """``scheme://ui-<host_id>.<wildcard suffix>``; the scheme is base_url's."""
    scheme = urlsplit(base_url).scheme
    return f"{scheme}://ui-{host_id}.{wildcard_host.removeprefix('*.')}"


class GrainSessions:
    """Opens, checks and revokes grain sessions. ``lifetime``: how long one lasts."""

    def __init__(self, store: Store, base_url: str, wildcard_host: str,
                 lifetime: timedelta = timedelta(hours=24),
                 anonymous_allowed: Callable[[Session], bool] = lambda s: True) -> None:
        self.store = store
        # Asked at every check of an anonymous session: the admin may turn it off.
        self.anonymous_allowed = anonymous_allowed
        self.base_url = base_url
        self.wildcard_host = wildcard_host
        self.lifetime = lifetime
        # A checked session, or the sentence saying why it grants nothing.
        self._cache: dict[str, tuple[float, LiveSession | str]] = {}
        # Long-lived connections (WebSockets) waiting to hear of any access change.
        self._watchers: set[Callable[[], None]] = set()
        self._watchers_lock = threading.Lock()

    # -- access ------------------------------------------------------------------
    def access(self, user_id: str, grain_id: str) -> Access:
        """What ``user_id`` holds in ``grain_id``. Raises NotFound when they hold
        nothing (a grain one cannot reach does not exist for them)."""
        with self.store.read() as s:
            found = self._access(s, user_id, grain_id)
        if found is None:
            raise NotFound(f"No grain with ID {grain_id[:40]!r}.")
        return found

    def _access(self, s, user_id: str | None, grain_id: str,  # type: ignore[no-untyped-def]
                share_id: int | None = None) -> Access | None:
        """What a person (``user_id``) or an anonymous link holder (``user_id`` None,
        ``share_id`` the link) holds now, or None. The owner holds every permission;
        a person holds the union of their shares' chains (the best one is
        ``Access.share_id``, the parent of their re-shares); a link holder holds
        that link's chain, while the admin allows anonymous access."""
        grain = s.get(Grain, grain_id)
        if grain is None or grain.trashed_at is not None:
            return None
        manifest = Manifest.model_validate(s.get(Package, grain.package_id).manifest)
        if user_id is None:
            link = s.get(Share, share_id) if share_id is not None else None
            if link is None or link.token_hash is None or not self.anonymous_allowed(s):
                return None
            granted = chain_permissions(s, link, grain, manifest)
            if granted is None:
                return None
            return Access(grain.id, None, False, granted, link.role_index, link.id)
        user = s.get(User, user_id)
        if user is None or user.suspended_at is not None:
            return None
        if grain.owner_id == user_id:
            return Access(grain.id, user_id, True, all_permissions(manifest))
        best: tuple[Share, tuple[str, ...]] | None = None
        held: set[str] = set()
        for share in s.scalars(select(Share).where(
                Share.grain_id == grain_id, Share.recipient_id == user_id,
                Share.revoked_at.is_(None)).order_by(Share.id)):
            granted = chain_permissions(s, share, grain, manifest)
            if granted is None:
                continue
            held.update(granted)
            if best is None or len(granted) > len(best[1]):
                best = (share, granted)
        if best is None:
            return None
        ordered = tuple(p.name for p in manifest.permissions if p.name in held)
        return Access(grain.id, user_id, False, ordered, effective_role(s, best[0]),
                      best[0].id)

    # -- opening -----------------------------------------------------------------
    def open(self, user_id: str, grain_id: str, client: Client | None = None,
             login_session_id: str | None = None) -> OpenedSession:
        """Open a session for a person with access (a row in the grain's access
        log); raises NotFound otherwise. ``login_session_id`` (the shell login's
        stored ID) ties it to that login: :meth:`revoke_login` ends it."""
        return self._create(self.access(user_id, grain_id), client, login_session_id)

    def open_anonymous(self, share_id: int, grain_id: str, client: Client | None = None,
                       login_session_id: str | None = None) -> OpenedSession:
        """Open a session for whoever holds sharing link ``share_id``: the app sees
        ``Anonymous User`` with no user ID. Raises NotFound when the link grants
        nothing now (revoked, anonymous access turned off)."""
        with self.store.read() as s:
            found = self._access(s, None, grain_id, share_id)
        if found is None:
            raise NotFound(f"No grain with ID {grain_id[:40]!r}.")
        return self._create(found, client, login_session_id)

    def revoke_login(self, login_session_id: str) -> int:
        """Revoke every session opened from one shell login (on its logout);
        returns how many. Refused at once on every session host."""
        q = (update(GrainSession).where(GrainSession.revoked_at.is_(None))
             .where(GrainSession.login_session_id == login_session_id))
        with self.store.session() as s:
            count = s.execute(q.values(revoked_at=utcnow())).rowcount or 0
        self.clear_cache()
        return count

    def _create(self, access: Access, client: Client | None,
                login_session_id: str | None = None) -> OpenedSession:
        secret = secrets.token_urlsafe(32)
        host_id = host_id_of(secret)
        now = utcnow()
        expires = now + self.lifetime
        with self.store.session() as s:
            s.add(GrainSession(id=_hash(secret), host_id=host_id,
                               public_id=secrets.token_hex(16), tab_id=secrets.token_hex(16),
                               grain_id=access.grain_id, user_id=access.user_id,
                               share_id=access.share_id,
                               permissions=list(access.permissions), created_at=now,
                               expires_at=expires, login_session_id=login_session_id))
            identity = None
            if access.user_id is not None:
                identity = self._identity(s, access.grain_id, access.user_id)
            label = ""
            if access.share_id is not None:
                share = s.get(Share, access.share_id)
                if share is not None:
                    share.last_used_at = now
                    label = share.label
            via = "owner" if access.is_owner else "share" if access.user_id else "link"
            record(s, access, identity, client, via=via, label=label)
        origin = session_origin(self.base_url, self.wildcard_host, host_id)
        return OpenedSession(url=f"{origin}{INIT_PATH}?session={quote(secret)}",
                             host=urlsplit(origin).netloc, origin=origin, expires=expires)

    def _identity(self, s, grain_id: str, user_id: str) -> str:  # type: ignore[no-untyped-def]
        row = s.scalar(select(GrainIdentity).where(GrainIdentity.grain_id == grain_id,
                                                   GrainIdentity.user_id == user_id))
        if row is None:
            row = GrainIdentity(grain_id=grain_id, user_id=user_id,
                                identity_id=secrets.token_hex(16), created_at=utcnow())
            s.add(row)
            s.flush()
        return row.identity_id

    def init(self, host_id: str, secret: str) -> bool:
        """Accept the init path's secret once, for the host it belongs to."""
        if not secret or len(secret) > 100 or host_id_of(secret) != host_id:
            return False
        with self.store.session() as s:
            done = s.execute(update(GrainSession).where(
                GrainSession.id == _hash(secret), GrainSession.initialized_at.is_(None),
                GrainSession.revoked_at.is_(None), GrainSession.expires_at > utcnow(),
            ).values(initialized_at=utcnow()))
            return done.rowcount == 1

    def _identicon(self, user_id: str) -> str:
        """The default picture URL of a user without one of their own."""
        return f"{self.base_url}/identicon/{identicon_key(user_id)}.svg"

    def clear_cache(self) -> None:
        """Forget cached checks: the next request on every session is checked anew,
        and every watcher (an open WebSocket) is told to recheck."""
        self._cache.clear()
        self.notify()

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` (from any thread) after every access change; returns the
        function that unsubscribes it."""
        with self._watchers_lock:
            self._watchers.add(callback)

        def unsubscribe() -> None:
            with self._watchers_lock:
                self._watchers.discard(callback)

        return unsubscribe

    def notify(self) -> None:
        """Tell every watcher that access may have changed."""
        with self._watchers_lock:
            watchers = list(self._watchers)
        for callback in watchers:
            callback()

    def recheck(self, secret: str) -> tuple[str, ...] | None:
        """The permissions the session behind ``secret`` holds now, uncached, or
        None when it is no longer live."""
        live = self._load(_hash(secret))
        return None if isinstance(live, str) else live.access.permissions

    # -- every request -------------------------------------------------------------
    def check(self, host_id: str, secret: str | None) -> LiveSession:
        """The live session behind a request's cookie on session host ``host_id``.

        Raises Forbidden (no/wrong cookie, revoked, expired, access lost)."""
        if not secret or len(secret) > 100 or host_id_of(secret) != host_id:
            raise Forbidden("This session is not valid. Open the grain again from the shell.")
        key = _hash(secret)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < RECHECK_SECONDS:
            live = cached[1]
        else:
            live = self._load(key)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now, live)
        if isinstance(live, str):
            raise Forbidden(live)
        return live

    def expired_message(self, s, user_id: str | None, grain_id: str,  # type: ignore[no-untyped-def]
                        share_id: int | None) -> str | None:
        """Why a person (or the holder of link ``share_id``) lost access, when the
        reason is an expired sharing link: ``This sharing link expired on …``;
        None for any other reason."""
        if user_id is None:
            rows = [s.get(Share, share_id)] if share_id is not None else []
        else:
            rows = list(s.scalars(select(Share).where(
                Share.grain_id == grain_id, Share.recipient_id == user_id,
                Share.revoked_at.is_(None))))
        expired = [at for row in rows if row is not None
                   and (at := chain_expired(s, row)) is not None]
        if not expired:
            return None
        return f"This sharing link expired on {describe(max(expired))}."

    def _load(self, key: str) -> LiveSession | str:
        ended = ("This session has ended or its access was revoked. "
                 "Open the grain again from the shell.")
        with self.store.read() as s:
            row = s.get(GrainSession, key)
            if row is None or row.initialized_at is None or row.expires_at <= utcnow():
                return ended
            if row.revoked_at is not None:  # when a link expired, say so
                return (self.expired_message(s, row.user_id, row.grain_id, row.share_id)
                        or ended)
            access = self._access(s, row.user_id, row.grain_id, row.share_id)
            if access is None:
                return (self.expired_message(s, row.user_id, row.grain_id, row.share_id)
                        or ended)
            if row.user_id is None:
                return LiveSession(
                    grain_id=row.grain_id, public_id=row.public_id, tab_id=row.tab_id,
                    access=access, user_id=None, identity_id=None,
                    username=ANONYMOUS_NAME, handle=None, picture=None, pronouns=None)
            user = s.get(User, row.user_id)
            identity = s.scalar(select(GrainIdentity.identity_id).where(
                GrainIdentity.grain_id == row.grain_id, GrainIdentity.user_id == row.user_id))
            return LiveSession(
                grain_id=row.grain_id, public_id=row.public_id, tab_id=row.tab_id,
                access=access, user_id=row.user_id, identity_id=identity,
                username=user.name, handle=user.handle or None,
                picture=user.picture_url or self._identicon(user.id),
                pronouns=None if user.pronouns == "neutral" else user.pronouns)

    def revoke(self, grain_id: str | None = None, user_id: str | None = None) -> int:
        """Revoke every session of a grain and/or a user; returns how many."""
        q = update(GrainSession).where(GrainSession.revoked_at.is_(None))
        if grain_id is not None:
            q = q.where(GrainSession.grain_id == grain_id)
        if user_id is not None:
            q = q.where(GrainSession.user_id == user_id)
        with self.store.session() as s:
            count = s.execute(q.values(revoked_at=utcnow())).rowcount or 0
        self.clear_cache()
        return count
