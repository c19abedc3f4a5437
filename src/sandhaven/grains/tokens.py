"""Grain API tokens (webkeys): let a non-browser client (CalDAV, git, a script) reach
one grain on the API host with one role.

A token is 256 random bits, stored as its SHA-256. Its permissions are its role's
(or every permission, for a "full access" token) intersected with what its
creator still holds, recomputed at each check (cached at most
:data:`~sandhaven.grains.sessions.RECHECK_SECONDS`): revoking the token, or the
creator losing access, cuts it off on the next request. A webkey is shown as
``<API URL>#<token>`` (compat.md).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select

from sandhaven.errors import Forbidden, InvalidInput, NotAuthenticated, NotFound
from sandhaven.grains.access import role_permissions
from sandhaven.grains.access_log import Client, record
from sandhaven.grains.sessions import RECHECK_SECONDS, GrainSessions, LiveSession
from sandhaven.identity.profiles import clean_name
from sandhaven.packages.manifest import Manifest
from sandhaven.store import Store, utcnow
from sandhaven.store.models import ApiToken, Grain, GrainIdentity, Package, User

_TOUCH_EVERY = 60.0


@dataclass(frozen=True)
class GrainTokenView:
    id: int
    label: str
    role: int | None
    created_at: datetime
    last_used_at: datetime | None


def api_url(base_url: str, wildcard_host: str) -> str:
    """The API host's URL: ``scheme://api.<wildcard suffix>``."""
    return f"{urlsplit(base_url).scheme}://api.{wildcard_host.removeprefix('*.')}"


class GrainTokens:
    def __init__(self, store: Store, sessions: GrainSessions) -> None:
        self.store = store
        self.sessions = sessions
        # A checked token, or the sentence saying why it grants nothing.
        self._cache: dict[str, tuple[float, tuple[LiveSession, str] | str]] = {}
        self._touched: dict[int, float] = {}
        # The hour (since the epoch) each token's use was last logged, by token hash.
        self._logged: dict[str, int] = {}

    @property
    def url(self) -> str:
        return api_url(self.sessions.base_url, self.sessions.wildcard_host)

    def create(self, user_id: str, grain_id: str, role: int | None, label: str = ""
               ) -> tuple[GrainTokenView, str]:
        """A new token for a grain the user holds. ``role`` is a role position or None
        for full access (owner only). Raises NotFound, InvalidInput."""
        access = self.sessions.access(user_id, grain_id)
        manifest = self._manifest(grain_id)
        if role is None and not access.is_owner:
            raise InvalidInput("Only the owner can make a full-access token; choose a role.")
        if role is not None and not 0 <= role < len(manifest.roles):
            raise InvalidInput(f"Field 'role': the app has {len(manifest.roles)} role(s); "
                               f"{role} is not one of them.")
        if role is not None and not access.is_owner and not set(
                role_permissions(manifest, role)) <= set(access.permissions):
            raise Forbidden("You cannot make a token with more than you hold yourself.")
        label = clean_name(label) if label.strip() else "API token"
        token = secrets.token_urlsafe(32)
        with self.store.session() as s:
            row = ApiToken(token_hash=hashlib.sha256(token.encode()).hexdigest(),
                           user_id=user_id, grain_id=grain_id, role_index=role, label=label,
                           created_at=utcnow())
            s.add(row)
            s.flush()
            self.sessions._identity(s, grain_id, user_id)
            view = GrainTokenView(row.id, row.label, role, row.created_at, None)
        return view, token

    def _manifest(self, grain_id: str) -> Manifest:
        with self.store.read() as s:
            grain = s.get(Grain, grain_id)
            if grain is None:
                raise NotFound(f"No grain with ID {grain_id[:40]!r}.")
            return Manifest.model_validate(s.get(Package, grain.package_id).manifest)

    def list(self, user_id: str, grain_id: str) -> list[GrainTokenView]:
        self.sessions.access(user_id, grain_id)
        with self.store.read() as s:
            rows = s.scalars(select(ApiToken).where(
                ApiToken.grain_id == grain_id, ApiToken.user_id == user_id,
                ApiToken.revoked_at.is_(None)).order_by(ApiToken.created_at))
            return [GrainTokenView(r.id, r.label, r.role_index, r.created_at, r.last_used_at)
                    for r in rows]

    def revoke(self, user_id: str, grain_id: str, token_id: int) -> None:
        """Revoke one of the user's tokens for the grain (the owner may revoke any)."""
        access = self.sessions.access(user_id, grain_id)
        with self.store.session() as s:
            row = s.get(ApiToken, token_id)
            if (row is None or row.grain_id != grain_id or row.revoked_at is not None
                    or (row.user_id != user_id and not access.is_owner)):
                raise NotFound(f"No API token with ID {token_id} for this grain.")
            row.revoked_at = utcnow()
        self.clear_cache()

    def clear_cache(self) -> None:
        """Forget cached checks: the next request with every token is checked anew,
        and open WebSockets recheck theirs."""
        self._cache.clear()
        self.sessions.notify()

    def recheck(self, token: str) -> tuple[str, ...] | None:
        """The permissions ``token`` grants now, uncached, or None."""
        found = self._load(hashlib.sha256(token.encode()).hexdigest())
        return None if isinstance(found, str) else found[0].access.permissions

    def check(self, token: str, client: Client | None = None) -> tuple[LiveSession, str]:
        """``(session-like view, manifest API path)`` for a live token. Raises
        NotAuthenticated for an unknown, revoked or powerless token (for one whose
        access came from a sharing link that expired, saying so). The first use
        in each hour adds a row to the grain's access log (``client``: from where)."""
        if not token or len(token) > 100:
            raise NotAuthenticated("The API token is not valid.")
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < RECHECK_SECONDS:
            found = cached[1]
        else:
            found = self._load(key)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now, found)
        if isinstance(found, str):
            raise NotAuthenticated(found)
        hour = int(time.time() // 3600)
        if self._logged.get(key) != hour:
            if len(self._logged) > 10_000:
                self._logged.clear()
            self._logged[key] = hour
            self._log_use(key, found[0], client)
        return found

    def _log_use(self, key: str, live: LiveSession, client: Client | None) -> None:
        with self.store.session() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_hash == key))
            if row is not None:
                record(s, replace(live.access, role_index=row.role_index), live.identity_id,
                       client, via="token", label=row.label, token_id=row.id)

    def _load(self, key: str) -> tuple[LiveSession, str] | str:
        invalid = "The API token is not valid or was revoked."
        with self.store.read() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_hash == key))
            if row is None or row.grain_id is None:
                return invalid
            access = (self.sessions._access(s, row.user_id, row.grain_id)
                      if row.revoked_at is None else None)
            if access is None:  # when a sharing link expired, say so
                expired = self.sessions.expired_message(s, row.user_id, row.grain_id, None)
                return (f"{expired} The API token made from it grants nothing."
                        if expired else invalid)
            grain = s.get(Grain, row.grain_id)
            manifest = Manifest.model_validate(s.get(Package, grain.package_id).manifest)
            if row.role_index is None:
                permissions = access.permissions
            else:
                granted = set(role_permissions(manifest, row.role_index))
                permissions = tuple(p for p in access.permissions if p in granted)
            user = s.get(User, row.user_id)
            identity = s.scalar(select(GrainIdentity.identity_id).where(
                GrainIdentity.grain_id == row.grain_id, GrainIdentity.user_id == row.user_id))
            token_id = row.id
        if time.monotonic() - self._touched.get(token_id, -1e9) >= _TOUCH_EVERY:
            self._touched[token_id] = time.monotonic()
            with self.store.session() as s:
                found = s.get(ApiToken, token_id)
                if found is not None:
                    found.last_used_at = utcnow()
        live = LiveSession(
            grain_id=grain.id, public_id=key[:32], tab_id=hashlib.sha256(
                (key + ":tab").encode()).hexdigest()[:32],
            access=replace(access, permissions=permissions), user_id=user.id,
            identity_id=identity, username=user.name, handle=user.handle or None,
            picture=user.picture_url or self.sessions._identicon(user.id),
            pronouns=None if user.pronouns == "neutral" else user.pronouns)
        return live, manifest.app.api_path
