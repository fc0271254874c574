"""The daily reassurance calls for the managers' office: a day's calls per resident, and per site and
month how many calls were placed and answered and how the days ended (the service-quality indicators
are built on `reassurance_answered`). Days and months are the site-local ones the calls were made on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, Integer, and_, case, func, or_, select
from sqlalchemy.orm import Session

from gateway.incidents.schema import ReassuranceAttempt as Row


@dataclass(frozen=True, slots=True)
class ReassuranceMonth:
    site: str
    #: "YYYY-MM", site-local.
    month: str
    #: Calls and SMS Twilio accepted (a call refused by Twilio is not placed).
    placed: int
    #: Of those, answered by the resident: a key pressed or an SMS reply, whatever it said.
    answered: int
    #: Resident-days that ended "well", "needs help", "no answer".
    well: int
    help: int
    no_answer: int


def _counted(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0)).cast(Integer)


def reassurance_answered(
    session: Session, sites: frozenset[str] | None, start: date, end: date
) -> list[ReassuranceMonth]:
    """Per site and month, between the site-local days `start` and `end` (both included); by site then
    month. `sites` None: every site."""
    month = func.substr(Row.day, 1, 7).label("month")
    query = (
        select(
            Row.site,
            month,
            _counted(Row.provider_sid.is_not(None)),
            _counted(or_(Row.digits.is_not(None), Row.reply.is_not(None))),
            _counted(Row.outcome == "well"),
            _counted(Row.outcome == "needs_help"),
            _counted(Row.outcome == "no_answer"),
        )
        .where(and_(Row.day >= start.isoformat(), Row.day <= end.isoformat()))
        .group_by(Row.site, month)
        .order_by(Row.site, month)
    )
    if sites is not None:
        query = query.where(Row.site.in_(sorted(sites)))
    return [ReassuranceMonth(*row) for row in session.execute(query)]


@dataclass(frozen=True, slots=True)
class ReassuranceDay:
    """One resident's calls of one day."""

    resident: str
    site: str
    channel: str
    attempts: int
    first_at: datetime
    last_status: str
    #: well, needs_help, no_answer; None while the day's calls go on.
    outcome: str | None
    answered_at: datetime | None
    incident_id: int | None


def reassurance_day(session: Session, sites: frozenset[str] | None, day: date) -> list[ReassuranceDay]:
    query = select(Row).where(Row.day == day.isoformat()).order_by(Row.site, Row.resident_id, Row.attempt)
    if sites is not None:
        query = query.where(Row.site.in_(sorted(sites)))
    by_resident: dict[str, list[Row]] = {}
    for row in session.scalars(query):
        by_resident.setdefault(row.resident_id, []).append(row)
    return [_day(rows) for rows in by_resident.values()]


def _day(rows: list[Row]) -> ReassuranceDay:
    decided = next((r for r in rows if r.outcome is not None), None)
    answered = next((r.answered_at for r in rows if r.answered_at is not None), None)
    last = rows[-1]
    return ReassuranceDay(
        resident=last.resident_id,
        site=last.site,
        channel=last.channel,
        attempts=len(rows),
        first_at=rows[0].scheduled_at,
        last_status=last.status,
        outcome=decided.outcome if decided else None,
        answered_at=answered,
        incident_id=decided.incident_id if decided else None,
    )
