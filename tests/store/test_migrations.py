from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from sandhaven.store import Store
from sandhaven.store.models import Base


def test_migrating_an_empty_database_gives_exactly_the_models_schema(tmp_path: Path):
    store = Store.open(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        tables = set(inspect(conn).get_table_names())
    store.close()
    assert diff == []
    assert set(Base.metadata.tables) <= tables
    for required in ("users", "login_identities", "login_sessions", "apps", "packages",
                     "grains", "shares", "api_tokens"):
        assert required in tables


def test_store_runs_in_wal_mode_and_migrating_twice_is_harmless(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'w.sqlite3'}"
    Store.open(url).close()
    store = Store.open(url)
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    store.close()
