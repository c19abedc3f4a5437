"""Settings an admin changes in the shell (SMTP, signup policy), kept in the store.

The settings table gives each such setting its starting value; a value saved by
an admin in the store overrides it until cleared. Only settings marked
``admin_editable`` in the table can be saved this way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sandhaven.config.settings import BY_NAME, Settings, _validate
from sandhaven.errors import InvalidInput
from sandhaven.store import Store, utcnow
from sandhaven.store.models import ServerSetting


class RuntimeSettings:
    """The effective settings: the loaded :class:`Settings` plus admin overrides."""

    def __init__(self, store: Store, base: Settings) -> None:
        self.store = store
        self.base = base
        # Called after every save (the grain sessions' cache: anonymous access).
        self.on_save: list[Callable[[], object]] = []

    def _overrides(self, session: Session | None = None) -> dict[str, Any]:
        if session is not None:
            rows = session.scalars(select(ServerSetting)).all()
            return {r.name: json.loads(r.value) for r in rows if r.name in BY_NAME}
        with self.store.read() as s:
            return self._overrides(s)

    def get(self, name: str, session: Session | None = None) -> Any:
        """The effective value of one setting. Pass the store ``session`` a caller
        already holds: a second connection opened inside a read could wait on a
        writer that waits on the first (SQLite with a rollback journal)."""
        return self.effective(session).get(name)

    def effective(self, session: Session | None = None) -> Settings:
        values = dict(self.base.values)
        for name, raw in self._overrides(session).items():
            values[name] = BY_NAME[name].parse(raw)
        return Settings(values, self.base.sources)

    def record_state(self, name: str, value: str) -> None:
        """Remember a fact about the running server (``state.<name>``) for commands
        run beside it, e.g. the base URL ``serve`` was started with."""
        key = f"state.{name}"
        with self.store.session() as s:
            row = s.get(ServerSetting, key)
            if row is None:
                s.add(ServerSetting(name=key, value=json.dumps(value), updated_at=utcnow()))
            else:
                row.value, row.updated_at = json.dumps(value), utcnow()

    def recorded_state(self, name: str) -> str | None:
        with self.store.read() as s:
            row = s.get(ServerSetting, f"state.{name}")
            return json.loads(row.value) if row else None

    def save(self, changes: dict[str, Any]) -> None:
        """Validate and store admin changes; all or nothing.

        Raises InvalidInput naming the setting and the problem for any bad value
        or a setting that cannot be changed here.
        """
        parsed: dict[str, Any] = {}
        for name, raw in changes.items():
            setting = BY_NAME.get(name)
            if setting is None or not setting.admin_editable:
                raise InvalidInput(f"Setting '{name}' cannot be changed in the admin pages.")
            try:
                value = _validate(setting, raw, "admin page")
            except Exception as exc:  # ConfigError: re-raise as a request error
                raise InvalidInput(str(exc)) from None
            parsed[name] = value
        with self.store.session() as s:
            for name, value in parsed.items():
                row = s.get(ServerSetting, name)
                encoded = json.dumps(str(value) if name == "smtp.password" else value)
                if row is None:
                    s.add(ServerSetting(name=name, value=encoded, updated_at=utcnow()))
                else:
                    row.value, row.updated_at = encoded, utcnow()
        for callback in self.on_save:
            callback()
