"""Opening the store: engine, SQLite pragmas, Alembic migrations at start.

SQLite runs in WAL mode (a rollback journal on encrypted storage, see
:meth:`Store.open`) with a busy timeout, so the CLI (``user add``,
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
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
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


def _sqlite_pragmas(dbapi_conn, _record, journal: str = "WAL") -> None:  # type: ignore[no-untyped-def]
    # pysqlite starts transactions lazily, only before a write, so a read-check-write
    # sequence is not atomic. Turn that off and begin explicitly (SQLAlchemy's
    # documented recipe for pysqlite), see _sqlite_begin.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # The wait first: setting the journal mode takes a lock, which another
    # connection may hold for a moment (always so with a rollback journal).
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute(f"PRAGMA journal_mode={journal}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    # Sorts and statement journals stay in memory: temporary files would be one
    # more place user data lands on disk (docs/administering/encryption.md).
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


def _sqlite_begin(conn) -> None:  # type: ignore[no-untyped-def]
    # IMMEDIATE takes the write lock at BEGIN: transactions that may write are
    # serialized (waiting up to busy_timeout) and checks made inside them hold
    # until commit. Read-only sessions (Store.read) use a plain deferred BEGIN.
    mode = conn.get_execution_options().get("sandhaven_begin", "IMMEDIATE")
    conn.exec_driver_sql(f"BEGIN {mode}")


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
        reader = engine.execution_options(sandhaven_begin="DEFERRED")
        self._readers = sessionmaker(reader, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, wal: bool = True) -> Store:
        """``wal=False``: a rollback journal (DELETE) instead of WAL. On a gocryptfs
        volume a WAL reader can race a writer's growth of the ``-wal`` file and get
        SQLITE_IOERR_SHORT_READ (the file's size is read while a block is being
        written); with a rollback journal no connection reads a file another one
        is writing."""
        shown = url
        try:
            parsed = make_url(url)
            shown = parsed.render_as_string(hide_password=True)
            if parsed.drivername.startswith("sqlite") and parsed.database:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            engine = create_engine(parsed, connect_args={"timeout": 10}
                                   if parsed.drivername.startswith("sqlite") else {})
        except ArgumentError:
            raise StoreError(f"Setting 'database_url' has value {shown!r}: not a database "
                             "URL (e.g. sqlite:////path/db.sqlite3 or "
                             "postgresql+psycopg://user@host/db).") from None
        except ModuleNotFoundError as exc:
            raise StoreError(f"The database driver for {shown!r} is not installed "
                             f"(missing Python module {exc.name!r}).") from None
        except OSError as exc:
            raise StoreError(f"The store's directory cannot be created: {exc.strerror}: "
                             f"{exc.filename}.") from None
        if engine.dialect.name == "sqlite":
            journal = "WAL" if wal else "DELETE"
            event.listen(engine, "connect",
                         lambda conn, record: _sqlite_pragmas(conn, record, journal))
            event.listen(engine, "begin", _sqlite_begin)
        store = cls(engine)
        try:
            if migrate:
                store.migrate()
        except SQLAlchemyError as exc:
            engine.dispose()
            raise StoreError(f"The store at {shown!r} cannot be opened: "
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

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session: a consistent snapshot that takes no write lock."""
        with self._readers() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()
