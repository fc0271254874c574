"""Shift handover: what happened on an operator's shift, what is still open, notes for the next shift.

Signing freezes the summary as it stood, in the handover's row and, by its SHA-256 digest, in the audit
entry `handover.signed`; that entry's hash (chained to every entry before it) is the signature. Changing
the stored summary or notes afterwards no longer matches the entry, and changing the entry breaks the
chain (`careline audit verify`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway.incidents.schema import AuditEntry, Incident, ShiftHandover
from gateway.incidents.store import ACTIVE, IncidentStore, Scope
from gateway.incidents.views import IncidentView

#: A shift summary looks back at most this far.
SHIFT_MAX = timedelta(hours=24)
#: Incidents listed per part of a summary (the counts stay exact).
LISTED_MAX = 500


class HandoverView(BaseModel):
    id: int
    signed_by: str
    signed_at: datetime
    shift_start: datetime
    shift_end: datetime
    notes: str
    sites: list[str] | None
    summary: dict[str, Any]
    audit_id: int | None
    signature: str | None
    #: The stored summary and notes still match the signed audit entry.
    verified: bool


def summary_digest(summary: dict[str, Any]) -> str:
    canonical = json.dumps(summary, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class HandoverStore:
    def __init__(self, store: IncidentStore) -> None:
        self._store = store

    # -- the draft ------------------------------------------------------------------------------------

    def draft(self, user: str, session_started: datetime | None, scope: Scope = None) -> dict[str, Any]:
        """What `user`'s handover would say if signed now."""
        with self._store.reading() as session:
            return self._summary(session, user, session_started, scope)

    def _summary(
        self, session: Session, user: str, session_started: datetime | None, scope: Scope
    ) -> dict[str, Any]:
        now = self._store.now()
        own_previous = session.scalar(
            select(ShiftHandover)
            .where(ShiftHandover.signed_by == user)
            .order_by(ShiftHandover.signed_at.desc())
            .limit(1)
        )
        begun = own_previous.shift_end if own_previous is not None else session_started or now - SHIFT_MAX
        start = max(begun, now - SHIFT_MAX)
        actor = f"user:{user}"
        opened = self._incidents(session, scope, Incident.opened_at >= start, Incident.opened_at <= now)
        handled = self._incidents(
            session,
            scope,
            or_(
                (Incident.acknowledged_by == actor) & (Incident.acknowledged_at >= start),
                (Incident.resolved_by == actor) & (Incident.resolved_at >= start),
            ),
        )
        still_open = self._incidents(session, scope, Incident.status.in_(ACTIVE))
        previous = self._latest_visible(session, scope)
        return {
            "shift_start": start.isoformat(),
            "shift_end": now.isoformat(),
            "counts": {"opened": len(opened), "handled": len(handled), "still_open": len(still_open)},
            "opened": opened[:LISTED_MAX],
            "handled": handled[:LISTED_MAX],
            "still_open": still_open[:LISTED_MAX],
            "previous_handover": None
            if previous is None
            else {
                "id": previous.id,
                "signed_by": previous.signed_by,
                "signed_at": previous.signed_at.isoformat(),
                "notes": previous.notes,
            },
        }

    def _incidents(self, session: Session, scope: Scope, *conditions: Any) -> list[dict[str, Any]]:
        query = select(Incident).where(*conditions)
        if scope is not None:
            query = query.where(Incident.site.in_(sorted(scope)))
        rows = session.scalars(query.order_by(Incident.opened_at))
        return [IncidentView.of(row, self._store.directory).model_dump(mode="json") for row in rows]

    # -- signing --------------------------------------------------------------------------------------

    def sign(self, user: str, notes: str, summary: dict[str, Any], scope: Scope = None) -> HandoverView:
        """Freeze `summary` (the draft, read just before on a reader thread: the writer thread, which
        every alarm's commit waits for, only inserts and signs) with the notes, signed by an audit entry."""
        with self._store.transaction() as session:
            sites = None if scope is None else sorted(scope)
            handover = ShiftHandover(
                signed_by=user,
                signed_at=self._store.now(),
                shift_start=datetime.fromisoformat(summary["shift_start"]),
                shift_end=datetime.fromisoformat(summary["shift_end"]),
                notes=notes,
                sites=sites,
                summary=summary,
            )
            session.add(handover)
            session.flush()
            entry = self._store.audit.append(
                session,
                at=handover.signed_at,
                actor=f"user:{user}",
                action="handover.signed",
                details=_signed_details(handover),
            )
            session.flush()
            handover.audit_id, handover.signature = entry.id, entry.hash
            return _view(handover, entry)

    # -- reading --------------------------------------------------------------------------------------

    def handovers(self, limit: int, scope: Scope = None) -> list[HandoverView]:
        """Newest first; a user with sites sees only handovers signed within those sites."""
        with self._store.reading() as session:
            visible = _newest_visible(session, scope, limit)
            return [_view(row, _entry(session, row)) for row in visible]

    def handover(self, handover_id: int, scope: Scope = None) -> HandoverView | None:
        with self._store.reading() as session:
            row = session.get(ShiftHandover, handover_id)
            if row is None or not _visible(row, scope):
                return None
            return _view(row, _entry(session, row))

    def latest(self, scope: Scope = None) -> HandoverView | None:
        with self._store.reading() as session:
            row = self._latest_visible(session, scope)
            return None if row is None else _view(row, _entry(session, row))

    @staticmethod
    def _latest_visible(session: Session, scope: Scope) -> ShiftHandover | None:
        return next(iter(_newest_visible(session, scope, 1)), None)


def _newest_visible(session: Session, scope: Scope, limit: int) -> list[ShiftHandover]:
    query = select(ShiftHandover).order_by(ShiftHandover.signed_at.desc(), ShiftHandover.id.desc())
    if scope is None:
        return list(session.scalars(query.limit(limit)))
    # Which sites a handover covers is a JSON list: filtered here, read in pages so it stays bounded.
    found: list[ShiftHandover] = []
    # Closed when the loop stops early: on PostgreSQL the pages come through a server-side cursor.
    with contextlib.closing(session.scalars(query.execution_options(yield_per=200))) as rows:
        for row in rows:
            if _visible(row, scope):
                found.append(row)
                if len(found) == limit:
                    break
    return found


def _visible(row: ShiftHandover, scope: Scope) -> bool:
    """Everyone who sees every site sees every handover; others those of their own sites only."""
    return scope is None or (row.sites is not None and set(row.sites) <= scope)


def _signed_details(handover: ShiftHandover) -> dict[str, Any]:
    return {
        "handover": handover.id,
        "shift_start": handover.shift_start.astimezone(UTC).isoformat(),
        "shift_end": handover.shift_end.astimezone(UTC).isoformat(),
        "notes": handover.notes,
        "sites": handover.sites,
        "summary_sha256": summary_digest(handover.summary),
    }


def _entry(session: Session, row: ShiftHandover) -> AuditEntry | None:
    return session.get(AuditEntry, row.audit_id) if row.audit_id is not None else None


def _view(row: ShiftHandover, entry: AuditEntry | None) -> HandoverView:
    verified = (
        entry is not None
        and entry.action == "handover.signed"
        and entry.hash == row.signature
        and entry.details == _signed_details(row)
    )
    return HandoverView(
        id=row.id,
        signed_by=row.signed_by,
        signed_at=row.signed_at,
        shift_start=row.shift_start,
        shift_end=row.shift_end,
        notes=row.notes,
        sites=row.sites,
        summary=row.summary,
        audit_id=row.audit_id,
        signature=row.signature,
        verified=verified,
    )
