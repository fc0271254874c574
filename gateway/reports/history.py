"""Every incident and the audit trail, filtered and paged for the managers' office (newest first)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import ColumnElement, Select, String, and_, cast, false, func, or_, select
from sqlalchemy.orm import Session

from gateway.incidents.schema import AuditEntry, Incident
from gateway.reports.sql import acted_by, all_of, escape_like, in_sites

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    total: int
    offset: int
    items: Sequence[T]


@dataclass(frozen=True, slots=True)
class IncidentFilter:
    start: datetime
    end: datetime
    sites: frozenset[str] | None = None
    #: The rooms of the wing asked for, per site (None: no wing filter; empty: no such wing).
    wing_rooms: Mapping[str, frozenset[str]] | None = None
    resident: str | None = None
    rule: str | None = None
    outcome: str | None = None
    #: Acknowledged or resolved by this actor ("user:li", "responder:r1").
    operator: str | None = None


@dataclass(frozen=True, slots=True)
class AuditFilter:
    start: datetime
    end: datetime
    #: A scoped manager sees only entries about incidents of these sites.
    sites: frozenset[str] | None = None
    actor: str | None = None
    action: str | None = None
    incident_id: int | None = None
    text: str | None = None


def _in_wing(wing_rooms: Mapping[str, frozenset[str]] | None) -> ColumnElement[bool] | None:
    if wing_rooms is None:
        return None
    per_site = [
        and_(Incident.site == site, Incident.room.in_(sorted(rooms)))
        for site, rooms in sorted(wing_rooms.items())
        if rooms
    ]
    return or_(*per_site) if per_site else false()


def _incident_conditions(filters: IncidentFilter) -> ColumnElement[bool]:
    return all_of(
        Incident.opened_at >= filters.start,
        Incident.opened_at < filters.end,
        in_sites(filters.sites),
        _in_wing(filters.wing_rooms),
        None if filters.resident is None else Incident.resident == filters.resident,
        None if filters.rule is None else Incident.rule == filters.rule,
        None if filters.outcome is None else Incident.outcome == filters.outcome,
        None
        if filters.operator is None
        else or_(
            acted_by(Incident.acknowledged_by, filters.operator),
            acted_by(Incident.resolved_by, filters.operator),
        ),
    )


def _page(session: Session, query: Select[T], offset: int, limit: int) -> Page[T]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    return Page(total, offset, list(session.scalars(query.offset(offset).limit(limit))))


def incident_history(session: Session, filters: IncidentFilter, offset: int, limit: int) -> Page[Incident]:
    query = (
        select(Incident)
        .where(_incident_conditions(filters))
        .order_by(Incident.opened_at.desc(), Incident.id.desc())
    )
    return _page(session, query, offset, limit)


def _audit_conditions(filters: AuditFilter) -> ColumnElement[bool]:
    text = None
    if filters.text:
        pattern = f"%{escape_like(filters.text)}%"
        # The details are JSON with non-ASCII written as \uXXXX escapes: look for that spelling too.
        escaped = f"%{escape_like(json.dumps(filters.text)[1:-1])}%"
        text = or_(
            cast(AuditEntry.details, String).like(pattern, escape="\\"),
            cast(AuditEntry.details, String).like(escaped, escape="\\"),
            AuditEntry.actor.like(pattern, escape="\\"),
            AuditEntry.action.like(pattern, escape="\\"),
        )
    scope = None
    if filters.sites is not None:
        scope = AuditEntry.incident_id.in_(select(Incident.id).where(all_of(in_sites(filters.sites))))
    return all_of(
        AuditEntry.at >= filters.start,
        AuditEntry.at < filters.end,
        scope,
        None if filters.actor is None else acted_by(AuditEntry.actor, filters.actor),
        None if filters.action is None else AuditEntry.action == filters.action,
        None if filters.incident_id is None else AuditEntry.incident_id == filters.incident_id,
        text,
    )


def audit_history(session: Session, filters: AuditFilter, offset: int, limit: int) -> Page[AuditEntry]:
    query = select(AuditEntry).where(_audit_conditions(filters)).order_by(AuditEntry.id.desc())
    return _page(session, query, offset, limit)
