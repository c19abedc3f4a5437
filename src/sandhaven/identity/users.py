"""Users: create, look up, list, make admin, suspend, delete, edit profile."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sandhaven.errors import Conflict, Forbidden, NotFound
from sandhaven.identity.emails import normalize_email
from sandhaven.identity.profiles import (
    clean_handle,
    clean_name,
    clean_picture_url,
    clean_pronouns,
    handle_from,
)
from sandhaven.store import Store, new_id, utcnow
from sandhaven.store.models import LoginIdentity, LoginSession, User


@dataclass(frozen=True)
class UserView:
    """A user as the shell and API show it (``GET /api/v1/me``)."""

    id: str
    email: str
    name: str
    handle: str
    picture_url: str
    pronouns: str
    is_admin: bool
    is_dev: bool
    suspended: bool
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(user.id, user.email, user.name, user.handle, user.picture_url,
                   user.pronouns, user.is_admin, user.is_dev, user.suspended_at is not None,
                   user.created_at, user.last_login_at)

    def api(self) -> dict[str, object]:
        return {"id": self.id, "email": self.email, "name": self.name,
                "is_admin": self.is_admin}


def add_user(session: Session, email: str, name: str, *, is_admin: bool = False,
             is_dev: bool = False) -> User:
    """Insert a user with an email login identity, in the caller's transaction.

    Raises InvalidInput for a bad address or name, Conflict if the address is taken.
    """
    email = normalize_email(email)
    name = clean_name(name)
    taken = session.scalar(select(LoginIdentity).where(
        LoginIdentity.provider == "email", LoginIdentity.subject == email))
    if taken is not None or session.scalar(select(User).where(User.email == email)):
        raise Conflict(f"A user with the address {email} already exists.")
    now = utcnow()
    user = User(id=new_id(), email=email, name=name, handle=handle_from(name, email),
                picture_url="", pronouns="neutral", is_admin=is_admin, is_dev=is_dev,
                created_at=now)
    session.add(user)
    session.add(LoginIdentity(user_id=user.id, provider="email", subject=email, created_at=now))
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"A user with the address {email} already exists.") from None
    return user


class Users:
    """User administration. Methods taking ``actor_id`` check that the actor is an
    admin and raise Forbidden otherwise."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # Called with the user's ID after they are suspended or deleted, so that
        # access held elsewhere (grain sessions, cached token checks) ends at once.
        self.on_access_change: list[Callable[[str], object]] = []

    def _access_changed(self, user_id: str) -> None:
        for callback in self.on_access_change:
            callback(user_id)

    def create(self, email: str, name: str, *, is_admin: bool = False,
               is_dev: bool = False) -> UserView:
        with self.store.session() as s:
            return UserView.of(add_user(s, email, name, is_admin=is_admin, is_dev=is_dev))

    def count(self) -> int:
        with self.store.read() as s:
            return s.scalar(select(func.count()).select_from(User)) or 0

    def get(self, user_id: str) -> UserView:
        """Raises NotFound."""
        found = self.find(user_id)
        if found is None:
            raise NotFound(f"No user with ID {user_id[:40]!r}.")
        return found

    def find(self, user_id: str) -> UserView | None:
        with self.store.read() as s:
            user = s.get(User, user_id)
            return UserView.of(user) if user else None

    def find_by_email(self, email: str) -> UserView | None:
        with self.store.read() as s:
            user = s.scalar(select(User).where(User.email == email.strip().lower()))
            return UserView.of(user) if user else None

    def get_by_email(self, email: str) -> UserView:
        """Raises InvalidInput for a malformed address, NotFound for an unknown one."""
        email = normalize_email(email)
        found = self.find_by_email(email)
        if found is None:
            raise NotFound(f"No user with the address {email}.")
        return found

    def list(self) -> list[UserView]:
        with self.store.read() as s:
            return [UserView.of(u) for u in s.scalars(select(User).order_by(User.created_at))]

    def _admin(self, s: Session, actor_id: str) -> User:
        actor = s.get(User, actor_id)
        if actor is None or not actor.is_admin or actor.suspended_at is not None:
            raise Forbidden("Only an admin can do this.")
        return actor

    def _target(self, s: Session, user_id: str) -> User:
        user = s.get(User, user_id)
        if user is None:
            raise NotFound(f"No user with ID {user_id[:40]!r}.")
        return user

    def set_admin(self, actor_id: str, user_id: str, is_admin: bool) -> UserView:
        with self.store.session() as s:
            self._admin(s, actor_id)
            user = self._target(s, user_id)
            if not is_admin and user.id == actor_id:
                raise Conflict("You cannot remove your own admin rights; ask another admin.")
            user.is_admin = is_admin
            return UserView.of(user)

    def set_suspended(self, actor_id: str, user_id: str, suspended: bool) -> UserView:
        """Suspending logs the user out everywhere at once (their sessions and
        tokens stop working on the next request)."""
        with self.store.session() as s:
            self._admin(s, actor_id)
            user = self._target(s, user_id)
            if user.id == actor_id:
                raise Conflict("You cannot suspend yourself.")
            user.suspended_at = utcnow() if suspended else None
            if suspended:
                s.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
            view = UserView.of(user)
        # Both ways: suspension ends access at once, and unsuspension must not wait
        # for a cached refusal to expire.
        self._access_changed(user_id)
        return view

    def delete(self, actor_id: str, user_id: str) -> None:
        with self.store.session() as s:
            self._admin(s, actor_id)
            user = self._target(s, user_id)
            if user.id == actor_id:
                raise Conflict("You cannot delete your own account here.")
            s.delete(user)
        self._access_changed(user_id)

    def update_profile(self, user_id: str, *, name: str | None = None,
                       handle: str | None = None, picture_url: str | None = None,
                       pronouns: str | None = None) -> UserView:
        """Validate every given field, then save all of them or none (InvalidInput)."""
        changes = {}
        if name is not None:
            changes["name"] = clean_name(name)
        if handle is not None:
            changes["handle"] = clean_handle(handle)
        if picture_url is not None:
            changes["picture_url"] = clean_picture_url(picture_url)
        if pronouns is not None:
            changes["pronouns"] = clean_pronouns(pronouns)
        with self.store.session() as s:
            user = self._target(s, user_id)
            for key, value in changes.items():
                setattr(user, key, value)
            return UserView.of(user)
