"""Which incidents a transaction changed, told to every gateway instance as it commits.

With several instances on one PostgreSQL store (docs/scaling.md), an operator's screen connected to
instance B must see an incident instance A committed. Each write transaction collects the incidents
and notifications it flushed and, on PostgreSQL, sends `pg_notify` inside the same transaction: the
notification is delivered if and only if the change is committed, so no instance dying between its
commit and a separate announcement can leave the other instances' screens behind. On SQLite (one
instance) nothing is sent; the instance's own screens are told after the commit, as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.incidents.schema import Incident, Notification

CHANNEL = "careline_changes"
#: PostgreSQL refuses a notification payload of 8000 bytes or more; ids are split across several.
_IDS_PER_NOTIFY = 400
_CHANGED = "careline_changed_incidents"
_NOTIFIED = "careline_changed_notifications"


@dataclass(frozen=True, slots=True)
class Change:
    """What one committed transaction of another instance changed."""

    instance: str
    incidents: tuple[int, ...]
    #: Incidents whose notifications (escalation progress) changed.
    notifications: tuple[int, ...]


def track(sessions: sessionmaker[Session], instance: str) -> None:
    """Collect the changed incident ids of every transaction of `sessions` and notify them on commit."""
    event.listen(sessions, "after_flush", _collect)
    event.listen(sessions, "before_commit", lambda session: _notify(session, instance))
    event.listen(sessions, "after_rollback", _forget)


def _collect(session: Session, _context: Any) -> None:
    incidents: set[int] = session.info.setdefault(_CHANGED, set())
    notified: set[int] = session.info.setdefault(_NOTIFIED, set())
    for row in (*session.new, *session.dirty):
        if isinstance(row, Incident) and row.id is not None:
            incidents.add(row.id)
        elif isinstance(row, Notification) and row.incident_id is not None and _shown_changed(row):
            notified.add(row.incident_id)


def _shown_changed(row: Notification) -> bool:
    """Whether the screens would see a difference: a new notification or a new status, not the
    bookkeeping of an attempt (its mark, its owner)."""
    state = inspect(row)
    return state.pending or any(state.attrs[name].history.has_changes() for name in ("status", "attempts"))


def _forget(session: Session) -> None:
    session.info.pop(_CHANGED, None)
    session.info.pop(_NOTIFIED, None)


def _notify(session: Session, instance: str) -> None:
    session.flush()  # what is still pending is changed too
    incidents = sorted(session.info.pop(_CHANGED, ()))
    notified = sorted(session.info.pop(_NOTIFIED, ()))
    if not (incidents or notified) or session.get_bind().dialect.name != "postgresql":
        return
    for payload in payloads(instance, incidents, notified):
        session.execute(select(func.pg_notify(CHANNEL, payload)))


def payloads(instance: str, incidents: list[int], notified: list[int]) -> Iterator[str]:
    for start in range(0, max(len(incidents), len(notified)), _IDS_PER_NOTIFY):
        chunk = slice(start, start + _IDS_PER_NOTIFY)
        yield json.dumps({"from": instance, "i": incidents[chunk], "n": notified[chunk]})


def parse(payload: str) -> Change | None:
    """A notification's payload; None for one this version cannot read (counted by the caller)."""
    try:
        body = json.loads(payload)
        return Change(
            str(body["from"]),
            tuple(int(i) for i in body["i"]),
            tuple(int(i) for i in body["n"]),
        )
    except (ValueError, KeyError, TypeError):
        return None
