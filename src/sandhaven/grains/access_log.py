"""Each grain's access log: who opened it, when, how, from where.

A row is written when a session opens (by the owner, a person holding a share,
or an anonymous link holder) and, for API tokens, at the first use in each hour
(not per request). The owner reads the grain's log (filtered by person and
date, or as CSV); everyone reads their own activity. Rows older than the
``sharing.access_log_days`` setting are pruned; a deleted grain's go with it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from sandhaven.errors import Forbidden
from sandhaven.grains.access import Access
from sandhaven.packages.manifest import Manifest
from sandhaven.store import Store, utcnow
from sandhaven.store.models import AccessLogEntry, Grain, Package, User

if TYPE_CHECKING:  # sessions record rows through this module
    from sandhaven.grains.sessions import GrainSessions

LIST_MAX = 5000  # rows one query returns at most, newest first


@dataclass(frozen=True)
class Client:
    """Where a request came from: its address (after trusted proxies) and user agent."""

    ip: str = ""
    user_agent: str = ""


@dataclass(frozen=True)
class LogRow:
    """One access log row as the shell and API show it. ``user_name`` is
    ``Anonymous User`` for link holders who were not logged in."""

    at: datetime
    grain_id: str
    grain_title: str
    user_id: str | None
    user_name: str
    identity_id: str | None
    via: str
    label: str
    role: int | None
    permissions: tuple[str, ...]
    client_ip: str
    user_agent: str
    # The role's title in the grain's current package ("" for none or unknown).
    role_title: str = ""
    # Which share (a person's, or the link) or API token it came through, if any.
    share_id: int | None = None
    token_id: int | None = None

    def api(self) -> dict[str, object]:
        return {"at": self.at.isoformat() + "Z", "grain_id": self.grain_id,
                "grain_title": self.grain_title, "user_id": self.user_id,
                "user_name": self.user_name, "identity_id": self.identity_id,
                "via": self.via, "label": self.label, "role": self.role,
                "permissions": list(self.permissions), "client_ip": self.client_ip,
                "user_agent": self.user_agent, "role_title": self.role_title,
                "share_id": self.share_id, "token_id": self.token_id}


CSV_COLUMNS = ("at", "grain_id", "grain_title", "user_id", "user_name", "identity_id", "via",
               "label", "role", "permissions", "client_ip", "user_agent", "role_title",
               "share_id", "token_id")


def record(s: Session, access: Access, identity_id: str | None, client: Client | None,
           *, via: str, label: str = "", token_id: int | None = None) -> None:
    """Add one row in the caller's transaction. ``via``: owner, share, link or token."""
    client = client or Client()
    s.add(AccessLogEntry(
        grain_id=access.grain_id, user_id=access.user_id, identity_id=identity_id,
        share_id=access.share_id, token_id=token_id, via=via, label=label[:200],
        role_index=access.role_index, permissions=list(access.permissions),
        client_ip=client.ip[:64], user_agent=client.user_agent[:300], at=utcnow()))


def _between(q, since: date | None, until: date | None):  # type: ignore[no-untyped-def]
    """``q`` limited to rows from day ``since`` to day ``until`` (UTC, both included)."""
    if since:
        q = q.where(AccessLogEntry.at >= datetime.combine(since, datetime.min.time()))
    if until:
        q = q.where(AccessLogEntry.at < datetime.combine(until + timedelta(days=1),
                                                         datetime.min.time()))
    return q


def to_csv(rows: list[LogRow]) -> str:
    """The rows as CSV with a header line (RFC 4180, ``\\r\\n`` line ends); cells
    that a spreadsheet would run as a formula are prefixed with ``'``."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        data = row.api()
        data["permissions"] = ",".join(row.permissions)
        writer.writerow([_cell(data[c]) for c in CSV_COLUMNS])
    return out.getvalue()


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class AccessLog:
    """Reading and pruning the access log. ``retention_days()`` is read at each prune."""

    def __init__(self, store: Store, sessions: GrainSessions,
                 retention_days: Callable[[], int]) -> None:
        self.store = store
        self.sessions = sessions
        self.retention_days = retention_days

    def _rows(self, s: Session, q, title: Callable[[str], str] | None = None  # type: ignore[no-untyped-def]
              ) -> list[LogRow]:
        """The rows ``q`` selects, newest first; ``title(grain_id)`` gives the grain
        title shown (default: the grain's current title)."""
        rows = []
        roles: dict[str, list[str]] = {}
        for entry in s.scalars(q.order_by(AccessLogEntry.at.desc(), AccessLogEntry.id.desc())
                               .limit(LIST_MAX)):
            user = s.get(User, entry.user_id) if entry.user_id else None
            if title is not None:
                grain_title = title(entry.grain_id)
            else:
                grain = s.get(Grain, entry.grain_id)
                grain_title = grain.title if grain else ""
            if entry.grain_id not in roles:
                grain = s.get(Grain, entry.grain_id)
                package = s.get(Package, grain.package_id) if grain else None
                roles[entry.grain_id] = [r.title for r in Manifest.model_validate(
                    package.manifest).roles] if package else []
            titles = roles[entry.grain_id]
            rows.append(LogRow(
                at=entry.at, grain_id=entry.grain_id, grain_title=grain_title,
                user_id=entry.user_id,
                user_name=user.name if user else "Anonymous User",
                identity_id=entry.identity_id, via=entry.via, label=entry.label,
                role=entry.role_index, permissions=tuple(entry.permissions),
                client_ip=entry.client_ip, user_agent=entry.user_agent,
                role_title=titles[entry.role_index]
                if entry.role_index is not None and 0 <= entry.role_index < len(titles)
                else "", share_id=entry.share_id, token_id=entry.token_id))
        return rows

    def for_grain(self, user_id: str, grain_id: str, *, person: str | None = None,
                  since: date | None = None, until: date | None = None) -> list[LogRow]:
        """The grain's log, newest first (at most :data:`LIST_MAX` rows); ``person``
        is a user ID, ``since``/``until`` whole days (UTC, both included). Only the
        owner reads it: Forbidden for others with access, NotFound without."""
        access = self.sessions.access(user_id, grain_id)
        if not access.is_owner:
            raise Forbidden("Only the grain's owner can read its access log.")
        q = select(AccessLogEntry).where(AccessLogEntry.grain_id == grain_id)
        if person:
            q = q.where(AccessLogEntry.user_id == person)
        with self.store.read() as s:
            return self._rows(s, _between(q, since, until))

    def for_user(self, user_id: str, *, since: date | None = None,
                 until: date | None = None) -> list[LogRow]:
        """The user's own activity in every grain, newest first (at most
        :data:`LIST_MAX` rows); ``since``/``until`` whole days (UTC, both included).
        Only rows of the user's own (never another person's, nor anonymous ones,
        even their own opened while logged out). A grain they cannot reach any more
        shows an empty title: its owner may have renamed it since, and that is no
        longer theirs to see."""
        q = select(AccessLogEntry).where(AccessLogEntry.user_id == user_id)
        with self.store.read() as s:
            titles: dict[str, str] = {}

            def title(grain_id: str) -> str:
                if grain_id not in titles:
                    reachable = self.sessions._access(s, user_id, grain_id) is not None
                    grain = s.get(Grain, grain_id) if reachable else None
                    titles[grain_id] = grain.title if grain is not None else ""
                return titles[grain_id]

            return self._rows(s, _between(q, since, until), title)

    def prune(self) -> int:
        """Delete rows older than the retention; returns how many."""
        cutoff = utcnow() - timedelta(days=self.retention_days())
        with self.store.session() as s:
            return s.execute(delete(AccessLogEntry).where(AccessLogEntry.at < cutoff)
                             ).rowcount or 0
