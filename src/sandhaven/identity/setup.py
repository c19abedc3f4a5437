"""First-admin setup: a one-time URL, valid :data:`SETUP_MINUTES` minutes, that lets
its visitor create the first account, which becomes admin. Once any user exists
the setup path answers 404 whatever the token."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from sandhaven.errors import Gone, NotFound
from sandhaven.identity.secrets import hash_secret, new_token
from sandhaven.identity.users import UserView, add_user
from sandhaven.store import Store, utcnow
from sandhaven.store.models import SetupToken, User

SETUP_MINUTES = 15
SETUP_VALIDITY = timedelta(minutes=SETUP_MINUTES)


class Setup:
    def __init__(self, store: Store) -> None:
        self.store = store

    def needed(self) -> bool:
        with self.store.read() as s:
            return (s.scalar(select(func.count()).select_from(User)) or 0) == 0

    def new_token(self) -> str:
        """A fresh setup token (valid SETUP_MINUTES). Raises Gone if users exist."""
        token = new_token()
        with self.store.session() as s:
            if s.scalar(select(func.count()).select_from(User)):
                raise Gone("This server already has users; setup is done. "
                           "Use `sandhaven user add --admin` to add an admin.")
            now = utcnow()
            s.add(SetupToken(token_hash=hash_secret(token), created_at=now,
                             expires_at=now + SETUP_VALIDITY))
        return token

    def check(self, token: str) -> None:
        """Raises NotFound (setup done or unknown token) or Gone (used/expired)."""
        with self.store.session() as s:
            self._check(s, token)

    def _check(self, s, token: str) -> SetupToken:  # type: ignore[no-untyped-def]
        if s.scalar(select(func.count()).select_from(User)):
            raise NotFound("Setup is done; this page no longer exists.")
        row = s.scalar(select(SetupToken).where(SetupToken.token_hash == hash_secret(token)))
        if row is None:
            raise NotFound("This setup link is not valid.")
        if row.used_at is not None:
            raise Gone("This setup link was already used.")
        if row.expires_at <= utcnow():
            raise Gone(f"This setup link has expired (links are valid {SETUP_MINUTES} "
                       "minutes). Run `sandhaven admin-token` for a new one.")
        return row

    def complete(self, token: str, email: str, name: str) -> UserView:
        """Create the first admin. Raises InvalidInput, NotFound or Gone; nothing is
        created unless all checks pass."""
        with self.store.session() as s:
            row = self._check(s, token)
            user = add_user(s, email, name, is_admin=True)
            row.used_at = utcnow()
            return UserView.of(user)
