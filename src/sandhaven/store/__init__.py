"""The store: SQLAlchemy models, migrations and the session factory."""

from sandhaven.store.db import Store, new_id, utcnow

__all__ = ["Store", "new_id", "utcnow"]
