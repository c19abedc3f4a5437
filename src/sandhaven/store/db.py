"""Opening the store: engine, SQLite pragmas, Alembic migrations at start.

SQLite runs in WAL mode with a busy timeout, so the CLI (``user add``,
``token create``) can write while ``serve`` runs. Any SQLAlchemy URL works
(PostgreSQL for scale-out); the pragmas apply to SQLite only.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from sandhaven.errors import StoreError

MIGRATIONS = Path(__file__).with_name("migrations")
_BASE62 = string.digits + string.ascii_letters


def utcnow() -> datetime:
    """Current time as naive UTC, the store's convention."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_id(length: int = 22) -> str:
    """A random base62 ID; 22 characters hold ~131 bits (Sandstorm's grain ID shape)."""
    return "".join(secrets.choice(_BASE62) for _ in range(length))


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


class Store:
    """The store: an engine and a session factory. ``Store.open(url)`` migrates first.

    Raises StoreError when the database cannot be opened or migrated.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Store:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            engine = create_engine(url, connect_args={"timeout": 10}
                                   if url.startswith("sqlite") else {})
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            store = cls(engine)
            if migrate:
                store.migrate()
        except SQLAlchemyError as exc:
            raise StoreError(f"The store at {engine.url!r} cannot be opened: "
                             f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None
        return store

    def migrate(self) -> None:
        """Apply every Alembic migration up to head, on this engine's connection."""
        cfg = alembic_config(self.engine.url.render_as_string(hide_password=False))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()
