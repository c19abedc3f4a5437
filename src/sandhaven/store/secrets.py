"""Server secrets kept in the store: random keys made once, on first use.

Names start with ``secret.`` in the ``server_settings`` table, a namespace the
settings table never uses, so admin pages can neither show nor change them.
"""

from __future__ import annotations

import base64
import secrets

from sqlalchemy.exc import IntegrityError

from sandhaven.store.db import Store, utcnow
from sandhaven.store.models import ServerSetting


def server_secret(store: Store, name: str, nbytes: int = 32) -> bytes:
    """The secret called ``name`` (``nbytes`` random bytes), made on first call.

    Safe under concurrent first calls: whoever inserts first wins, others read it.
    """
    key = f"secret.{name}"
    with store.read() as s:
        row = s.get(ServerSetting, key)
        if row is not None:
            return base64.b64decode(row.value)
    value = base64.b64encode(secrets.token_bytes(nbytes)).decode()
    try:
        with store.session() as s:
            if s.get(ServerSetting, key) is None:
                s.add(ServerSetting(name=key, value=value, updated_at=utcnow()))
    except IntegrityError:
        pass
    with store.read() as s:
        return base64.b64decode(s.get(ServerSetting, key).value)  # type: ignore[union-attr]
