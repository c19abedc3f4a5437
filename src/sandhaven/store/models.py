"""SQLAlchemy 2 models of the store. Alembic migrations under ``migrations/`` must
produce exactly this schema (``tests/store/test_migrations.py`` checks it).

Conventions: times are naive UTC ``datetime`` (SQLite has no time zones); every
secret that grants something (login links, sessions, tokens) is stored only as
the hex SHA-256 of the secret, never the secret itself.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    """A person with an account. ``id`` is 22 base62 characters."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    handle: Mapped[str] = mapped_column(String(64), default="")
    picture_url: Mapped[str] = mapped_column(String(2000), default="")
    pronouns: Mapped[str] = mapped_column(String(16), default="neutral")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_dev: Mapped[bool] = mapped_column(Boolean, default=False)
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    identities: Mapped[list[LoginIdentity]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )


class LoginIdentity(Base):
    """A way to log in as a user: ``provider`` ``email`` with the address as ``subject``."""

    __tablename__ = "login_identities"
    __table_args__ = (UniqueConstraint("provider", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(DateTime)

    user: Mapped[User] = relationship(back_populates="identities")


class LoginSession(Base):
    """A browser logged in to the shell. ``id`` is the SHA-256 of the cookie value."""

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)
    user_agent: Mapped[str] = mapped_column(String(300), default="")


class LoginToken(Base):
    """An emailed login link plus short code, valid 15 minutes, single use."""

    __tablename__ = "login_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(16), default="login")
    invite_id: Mapped[int | None] = mapped_column(
        ForeignKey("invites.id", ondelete="CASCADE"), nullable=True
    )
    name: Mapped[str] = mapped_column(String(200), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    requester_ip: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class SetupToken(Base):
    """A one-time URL that creates the first admin; valid 15 minutes."""

    __tablename__ = "setup_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Invite(Base):
    """An admin's invitation to create an account: to one address, or a single-use link."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    used_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ApiToken(Base):
    """A bearer token. Personal tokens (``grain_id`` NULL) act as their user in
    ``/api/v1``; grain tokens (webkeys) reach one grain with one role on the API host."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    grain_id: Mapped[str | None] = mapped_column(
        ForeignKey("grains.id", ondelete="CASCADE"), nullable=True, index=True
    )
    role_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class App(Base):
    """An app, identified by its app ID (the signing key, 52 characters of base32)."""

    __tablename__ = "apps"

    id: Mapped[str] = mapped_column(String(52), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Package(Base):
    """One verified, installed build of an app. ``id`` is the package ID (32 hex)."""

    __tablename__ = "packages"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="RESTRICT"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    marketing_version: Mapped[str] = mapped_column(String(100), default="")
    title: Mapped[str] = mapped_column(String(200))
    manifest: Mapped[dict] = mapped_column(JSON)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    installed_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    installed_at: Mapped[datetime] = mapped_column(DateTime)


class Grain(Base):
    """One instance of an app: a document with its own storage and sandbox."""

    __tablename__ = "grains"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="RESTRICT"), index=True)
    package_id: Mapped[str] = mapped_column(ForeignKey("packages.id", ondelete="RESTRICT"))
    title: Mapped[str] = mapped_column(String(500))
    action_index: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    trashed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # False until the first start, which runs the action; later starts continue.
    initialized: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class Share(Base):
    """A grant of a role on a grain: to a person (``recipient_id``) or to whoever
    holds a link (``token_hash``). ``parent_id`` chains re-shares."""

    __tablename__ = "shares"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    grain_id: Mapped[str] = mapped_column(ForeignKey("grains.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    recipient_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    )
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("shares.id", ondelete="CASCADE"), nullable=True
    )
    role_index: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # A sharing link may expire: from then on it, and everything derived from it,
    # grants nothing (as if revoked). NULL: never.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class AccessRequest(Base):
    """A logged-in person without access asking a grain's owner for it; open until
    the owner grants a role or dismisses it (``closed_at``)."""

    __tablename__ = "access_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    grain_id: Mapped[str] = mapped_column(ForeignKey("grains.id", ondelete="CASCADE"),
                                          index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    message: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class GrainSession(Base):
    """One view of one grain in one browser tab, on its own host.

    ``id`` is the SHA-256 of the session secret (the cookie on the session host);
    the host is ``ui-`` + ``host_id``, the first 32 hex of that same SHA-256
    (compat.md). ``public_id`` is what the app sees as ``X-Sandstorm-Session-Id``.
    """

    __tablename__ = "grain_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host_id: Mapped[str] = mapped_column(String(32), unique=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    tab_id: Mapped[str] = mapped_column(String(32))
    grain_id: Mapped[str] = mapped_column(ForeignKey("grains.id", ondelete="CASCADE"),
                                          index=True)
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True)
    share_id: Mapped[int | None] = mapped_column(
        ForeignKey("shares.id", ondelete="CASCADE"), nullable=True)
    permissions: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    initialized_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # The shell login it was opened from (LoginSession.id, the hash of its cookie);
    # logging out of that login ends it. None when opened with an API token.
    login_session_id: Mapped[str | None] = mapped_column(String(64), nullable=True,
                                                         index=True)


class GrainIdentity(Base):
    """A person's per-grain user ID (``X-Sandstorm-User-Id``): random 32 hex, made the
    first time they reach the grain, kept for as long as the grain exists."""

    __tablename__ = "grain_identities"
    __table_args__ = (UniqueConstraint("grain_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    grain_id: Mapped[str] = mapped_column(ForeignKey("grains.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    identity_id: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class AccessLogEntry(Base):
    """Someone reached a grain: a session opened (``via`` owner, share or link), or an
    API token was used (``via`` token; one row per token per hour). ``user_id`` is
    NULL for anonymous link holders; ``label`` is the share's or token's label."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    grain_id: Mapped[str] = mapped_column(ForeignKey("grains.id", ondelete="CASCADE"),
                                          index=True)
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True)
    identity_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    share_id: Mapped[int | None] = mapped_column(
        ForeignKey("shares.id", ondelete="SET NULL"), nullable=True)
    token_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="SET NULL"), nullable=True)
    via: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200), default="")
    role_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    permissions: Mapped[list] = mapped_column(JSON)
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    at: Mapped[datetime] = mapped_column(DateTime, index=True)


class ServerSetting(Base):
    """A setting changed by an admin in the shell; it overrides the settings table's value."""

    __tablename__ = "server_settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class RateEvent(Base):
    """One counted attempt (login mail, code guess) for rate limiting; pruned hourly."""

    __tablename__ = "rate_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bucket: Mapped[str] = mapped_column(String(400), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
