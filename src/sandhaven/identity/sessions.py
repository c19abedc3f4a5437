"""Login sessions of the shell: an opaque cookie, stored hashed, sliding expiry.

A new session (and so a new cookie value) is made at every login: the cookie is
rotated, so a value planted before login is worthless after it.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete

from sandhaven.identity.secrets import hash_secret, new_token
from sandhaven.identity.users import UserView
from sandhaven.store import Store, utcnow
from sandhaven.store.models import LoginSession, User

COOKIE_NAME = "sandhaven_session"
# Touch last_seen (and slide the expiry) at most this often, to spare writes.
_TOUCH_EVERY = timedelta(minutes=1)


class LoginSessions:
    """Create, resolve and end login sessions. ``lifetime``: idle time until expiry."""

    def __init__(self, store: Store, lifetime: timedelta) -> None:
        self.store = store
        self.lifetime = lifetime

    def create(self, user_id: str, user_agent: str = "") -> str:
        """A new session for ``user_id``; returns the cookie value (43 characters)."""
        token = new_token()
        now = utcnow()
        with self.store.session() as s:
            s.add(LoginSession(id=hash_secret(token), user_id=user_id, created_at=now,
                               expires_at=now + self.lifetime, last_seen_at=now,
                               user_agent=user_agent[:300]))
            user = s.get(User, user_id)
            if user is not None:
                user.last_login_at = now
        return token

    def resolve(self, token: str | None) -> tuple[str, UserView] | None:
        """``(session id, user)`` for a live session of an active user, else None."""
        if not token or len(token) > 100:
            return None
        now = utcnow()
        with self.store.session() as s:
            row = s.get(LoginSession, hash_secret(token))
            if row is None:
                return None
            user = s.get(User, row.user_id)
            if row.expires_at <= now or user is None or user.suspended_at is not None:
                s.delete(row)
                return None
            if now - row.last_seen_at >= _TOUCH_EVERY:
                row.last_seen_at = now
                row.expires_at = now + self.lifetime
            return row.id, UserView.of(user)

    def end(self, token: str | None) -> None:
        if token:
            with self.store.session() as s:
                s.execute(delete(LoginSession).where(LoginSession.id == hash_secret(token)))

    def end_all(self, user_id: str) -> int:
        """Log a user out everywhere; returns how many sessions ended."""
        with self.store.session() as s:
            result = s.execute(delete(LoginSession).where(LoginSession.user_id == user_id))
            return result.rowcount or 0

    def prune(self) -> int:
        with self.store.session() as s:
            result = s.execute(delete(LoginSession).where(LoginSession.expires_at <= utcnow()))
            return result.rowcount or 0
