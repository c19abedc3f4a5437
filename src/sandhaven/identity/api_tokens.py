"""Personal API tokens: ``Authorization: Bearer <token>`` on ``/api/v1`` acts as the user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from sandhaven.errors import Conflict, NotFound
from sandhaven.identity.profiles import clean_name
from sandhaven.identity.secrets import hash_secret, new_token
from sandhaven.identity.users import UserView
from sandhaven.store import Store, utcnow
from sandhaven.store.models import ApiToken, User

_TOUCH_EVERY = timedelta(minutes=1)
MAX_PERSONAL_TOKENS = 100


@dataclass(frozen=True)
class TokenView:
    id: int
    label: str
    created_at: datetime
    last_used_at: datetime | None


class ApiTokens:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, user_id: str, label: str = "") -> tuple[TokenView, str]:
        """A new personal token; returns its view and the secret (shown once)."""
        label = clean_name(label) if label.strip() else "API token"
        token = new_token()
        with self.store.session() as s:
            if s.get(User, user_id) is None:
                raise NotFound(f"No user with ID {user_id[:40]!r}.")
            live = s.scalar(select(func.count()).select_from(ApiToken).where(
                ApiToken.user_id == user_id, ApiToken.grain_id.is_(None),
                ApiToken.revoked_at.is_(None)))
            if (live or 0) >= MAX_PERSONAL_TOKENS:
                raise Conflict(f"You already have {MAX_PERSONAL_TOKENS} personal API tokens; "
                               "revoke some first.")
            row = ApiToken(token_hash=hash_secret(token), user_id=user_id, label=label,
                           created_at=utcnow())
            s.add(row)
            s.flush()
            return TokenView(row.id, row.label, row.created_at, None), token

    def list(self, user_id: str) -> list[TokenView]:
        with self.store.read() as s:
            rows = s.scalars(select(ApiToken).where(
                ApiToken.user_id == user_id, ApiToken.grain_id.is_(None),
                ApiToken.revoked_at.is_(None)).order_by(ApiToken.created_at))
            return [TokenView(r.id, r.label, r.created_at, r.last_used_at) for r in rows]

    def revoke(self, user_id: str, token_id: int) -> None:
        """Raises NotFound unless the token is the user's own live personal token."""
        with self.store.session() as s:
            row = s.get(ApiToken, token_id)
            if (row is None or row.user_id != user_id or row.grain_id is not None
                    or row.revoked_at is not None):
                raise NotFound(f"No API token with ID {token_id}.")
            row.revoked_at = utcnow()

    def authenticate(self, token: str) -> UserView | None:
        """The user a personal token acts for, or None (unknown, revoked, suspended)."""
        if not token or len(token) > 100:
            return None
        with self.store.session() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_hash == hash_secret(token)))
            if row is None or row.revoked_at is not None or row.grain_id is not None:
                return None
            user = s.get(User, row.user_id)
            if user is None or user.suspended_at is not None:
                return None
            now = utcnow()
            if row.last_used_at is None or now - row.last_used_at >= _TOUCH_EVERY:
                row.last_used_at = now
            return UserView.of(user)
