"""Visits in the incident store: planned occurrences, check-in and check-out, the checklist, missed.

Every change is made on the store's writer thread in one transaction with its audit entry. A carer
checking in after a visit was missed makes it late and writes on its incident's timeline that the carer
arrived; it never raises a second alarm.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.config import CarelineConfig
from gateway.incidents.schema import Incident, IncidentNote, Visit
from gateway.incidents.store import IncidentStore
from gateway.incidents.views import IncidentView
from gateway.visits.schedule import CHECKLIST, CHECKLIST_ANSWERS, Occurrence

#: The actor of the scheduler's own changes in the audit trail.
SCHEDULER = "system:visits"
#: A carer may check in this long before the planned start (early is fine; a day early is a mistake).
EARLY_CHECK_IN = timedelta(hours=2)
#: A door tag pressed this long after a visit's start still checks the carer in to it (late).
TAG_REACHES_BACK = timedelta(hours=12)

Status = Literal["planned", "in_progress", "done", "late", "missed"]
STATUSES: tuple[Status, ...] = ("planned", "in_progress", "done", "late", "missed")
#: A second press of the same tag this soon is the same press (a double press, a redelivery).
TAG_REPEAT = timedelta(minutes=2)
#: Visits a carer may still check in to.
_OPEN: tuple[Status, ...] = ("planned", "missed")
ErrorCode = Literal["not_found", "not_yours", "too_early", "not_started", "finished", "bad_checklist"]


class VisitError(Exception):
    """A check-in, check-out or record refused; `code` names its text (`visits.error.<code>`)."""

    def __init__(self, code: ErrorCode, visit_id: int | None = None) -> None:
        super().__init__(f"visit {visit_id}: {code}")
        self.code = code


@dataclass(frozen=True, slots=True)
class VisitView:
    id: int
    site: str
    resident: str
    plan: str
    carer: str
    planned_at: datetime
    due_by: datetime
    status: str
    late: bool
    checked_in_at: datetime | None
    checked_in_via: str | None
    checked_out_at: datetime | None
    checked_out_via: str | None
    checklist: dict[str, str] = field(default_factory=dict)
    notes: str = ""
    incident_id: int | None = None

    @classmethod
    def of(cls, row: Visit) -> VisitView:
        return cls(
            row.id,
            row.site,
            row.resident,
            row.plan,
            row.carer,
            row.planned_at,
            row.due_by,
            row.status,
            row.late,
            row.checked_in_at,
            row.checked_in_via,
            row.checked_out_at,
            row.checked_out_via,
            dict(row.checklist or {}),
            row.notes,
            row.incident_id,
        )

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        return data


@dataclass(frozen=True, slots=True)
class PlanChanges:
    additions: list[Occurrence]
    #: Ids of planned rows to withdraw.
    withdrawals: list[int]

    def __bool__(self) -> bool:
        return bool(self.additions or self.withdrawals)

    def chunks(self, size: int) -> list[PlanChanges]:
        """Withdrawals first, then additions, at most `size` each: no transaction holds the writer long."""
        parts = [
            PlanChanges([], self.withdrawals[n : n + size]) for n in range(0, len(self.withdrawals), size)
        ]
        return parts + [
            PlanChanges(self.additions[n : n + size], []) for n in range(0, len(self.additions), size)
        ]


@dataclass(frozen=True, slots=True)
class Arrival:
    """What a check-in did: the visit, and the missed-visit incident it wrote on (to announce)."""

    visit: VisitView
    incident: IncidentView | None = None


def _repeat(row: Visit, via: str, at: datetime) -> bool:
    return any(
        done_via == via and done_at is not None and abs(at - done_at) <= TAG_REPEAT
        for done_via, done_at in (
            (row.checked_in_via, row.checked_in_at),
            (row.checked_out_via, row.checked_out_at),
        )
    )


def valid_checklist(answers: Mapping[str, str]) -> dict[str, str]:
    if any(item not in CHECKLIST or answer not in CHECKLIST_ANSWERS for item, answer in answers.items()):
        raise VisitError("bad_checklist")
    return dict(answers)


class VisitStore:
    def __init__(self, store: IncidentStore, current_config: Callable[[], CarelineConfig]) -> None:
        self._store = store
        self._config = current_config

    def _audit(self, session: Session, actor: str, action: str, visit: Visit, **details: Any) -> None:
        self._store.audit.append(
            session,
            at=self._store.now(),
            actor=actor,
            action=action,
            incident_id=visit.incident_id,
            details={"visit": visit.id, "resident": visit.resident, "site": visit.site, **details},
        )

    # -- the scheduler --------------------------------------------------------------------------------------

    def materialise(self, planned: Iterable[Occurrence], start: datetime, end: datetime) -> int:
        """`changes` then `apply` at once (the demo's history; the scheduler reads and writes apart)."""
        return self.apply(self.changes(planned, start, end))

    def changes(self, planned: Iterable[Occurrence], start: datetime, end: datetime) -> PlanChanges:
        """What makes the rows of `planned` (visits due after `start`, planned before `end`) exist:
        occurrences to add, and planned rows of the period the plans no longer hold (a plan changed or
        gone, a resident discharged) to withdraw. A read (a reader thread): a quiet tick writes nothing."""
        wanted = {(o.resident, o.plan, o.planned_at): o for o in planned if o.due_by > start}
        with self._store.reading() as session:
            rows = session.execute(
                select(
                    Visit.id,
                    Visit.resident,
                    Visit.plan,
                    Visit.planned_at,
                    Visit.carer,
                    Visit.due_by,
                    Visit.status,
                ).where(Visit.planned_at >= start - TAG_REACHES_BACK, Visit.planned_at < end)
            ).all()
        have = {(r.resident, r.plan, r.planned_at): r for r in rows}
        withdrawals = []
        for key, row in have.items():
            kept = wanted.get(key)
            stale = kept is None or (kept.carer, kept.due_by) != (row.carer, row.due_by)
            if row.status == "planned" and row.due_by > start and stale:
                withdrawals.append(row.id)
        withdrawn = set(withdrawals)
        additions = [o for key, o in wanted.items() if key not in have or have[key].id in withdrawn]
        return PlanChanges(additions, withdrawals)

    def apply(self, changes: PlanChanges) -> int:
        """Withdraw, then add (writer thread; one transaction). A row a carer checked in to meanwhile is
        not withdrawn. Returns the rows added."""
        with self._store.transaction() as session:
            for visit_id in changes.withdrawals:
                row = session.get(Visit, visit_id)
                if row is not None and row.status == "planned":
                    self._audit(session, SCHEDULER, "visit.withdrawn", row, plan=row.plan)
                    session.delete(row)
            session.flush()
            rows = [
                Visit(
                    site=o.site,
                    resident=o.resident,
                    plan=o.plan,
                    carer=o.carer,
                    planned_at=o.planned_at,
                    due_by=o.due_by,
                    status="planned",
                    late=False,
                    checklist={},
                    notes="",
                    updated_at=self._store.now(),
                )
                for o in changes.additions
            ]
            session.add_all(rows)
            session.flush()
            for row in rows:
                self._audit(
                    session, SCHEDULER, "visit.planned", row, carer=row.carer, at=row.planned_at.isoformat()
                )
            return len(rows)

    def overdue(self, now: datetime) -> list[VisitView]:
        """Visits whose due-by has passed with no check-in (on a reader thread)."""
        with self._store.reading() as session:
            rows = session.scalars(
                select(Visit).where(Visit.status == "planned", Visit.due_by <= now).order_by(Visit.due_by)
            ).all()
            return [VisitView.of(row) for row in rows]

    def mark_missed(self, visit_id: int, incident_key: str) -> VisitView | None:
        """After the missed-visit alarm was committed: the visit is missed, linked to its incident. A
        carer who checked in meanwhile keeps the visit (None: nothing marked)."""
        with self._store.transaction() as session:
            row = session.get(Visit, visit_id)
            if row is None or row.status != "planned":
                return None
            row.incident_id = session.scalar(
                select(Incident.id).where(Incident.key == incident_key).order_by(Incident.id.desc()).limit(1)
            )
            row.status, row.updated_at = "missed", self._store.now()
            self._audit(session, SCHEDULER, "visit.missed", row, due_by=row.due_by.isoformat())
            return VisitView.of(row)

    # -- the carer (writer thread) ----------------------------------------------------------------------

    def check_in(self, visit_id: int, carer: str, via: str, at: datetime) -> Arrival:
        with self._store.transaction() as session:
            row = self._carers(session, visit_id, carer)
            if row.status not in _OPEN:
                raise VisitError("finished", visit_id)
            if at < row.planned_at - EARLY_CHECK_IN:
                raise VisitError("too_early", visit_id)
            return self._arrive(session, row, carer, via, at)

    def _arrive(self, session: Session, row: Visit, carer: str, via: str, at: datetime) -> Arrival:
        was_missed = row.status == "missed"
        row.status, row.late = "in_progress", at > row.due_by
        row.checked_in_at, row.checked_in_via, row.updated_at = at, via, self._store.now()
        self._audit(session, f"responder:{carer}", "visit.checked_in", row, via=via, late=row.late)
        if not was_missed or row.incident_id is None:
            return Arrival(VisitView.of(row))
        incident = session.get(Incident, row.incident_id)
        if incident is None:
            return Arrival(VisitView.of(row))
        # The coordinator's incident says the carer came; the incident stays theirs to close.
        local = at.astimezone(self._config().site(row.site).zone).strftime("%H:%M")
        text = f"{carer} arrived (visit checked in at {local}, via {via})"
        session.add(IncidentNote(incident_id=incident.id, at=self._store.now(), author=SCHEDULER, text=text))
        self._audit(session, f"responder:{carer}", "visit.carer_arrived", row, via=via, text=text)
        return Arrival(VisitView.of(row), IncidentView.of(incident, self._store.directory))

    def check_out(
        self,
        visit_id: int,
        carer: str,
        via: str,
        at: datetime,
        checklist: Mapping[str, str],
        notes: str | None,
    ) -> VisitView:
        answers = valid_checklist(checklist)
        with self._store.transaction() as session:
            row = self._carers(session, visit_id, carer)
            if row.status != "in_progress":
                raise VisitError("not_started" if row.status in _OPEN else "finished", visit_id)
            row.status = "late" if row.late else "done"
            row.checked_out_at, row.checked_out_via = max(at, row.checked_in_at or at), via
            row.updated_at = self._store.now()
            row.checklist = {**row.checklist, **answers}
            if notes is not None:
                row.notes = notes
            self._audit(
                session,
                f"responder:{carer}",
                "visit.checked_out",
                row,
                via=via,
                checklist=row.checklist,
                notes=row.notes,
            )
            return VisitView.of(row)

    def record(self, visit_id: int, carer: str, checklist: Mapping[str, str], notes: str | None) -> VisitView:
        """The checklist and notes while there (or corrected after): no status change."""
        answers = valid_checklist(checklist)
        with self._store.transaction() as session:
            row = self._carers(session, visit_id, carer)
            if row.status in _OPEN:
                raise VisitError("not_started", visit_id)
            row.checklist = {**row.checklist, **answers}
            if notes is not None:
                row.notes = notes
            row.updated_at = self._store.now()
            self._audit(
                session, f"responder:{carer}", "visit.recorded", row, checklist=row.checklist, notes=row.notes
            )
            return VisitView.of(row)

    def tag_pressed(self, resident: str, carer: str, device_id: str, at: datetime) -> Arrival | None:
        """The door tag: checks the carer in to their nearest open visit of this resident, or out of the
        one under way. None when there is nothing to check in to (audited). A repeat of a press within
        `TAG_REPEAT` (a double press, a broker redelivery) changes nothing."""
        via = f"tag:{device_id}"
        with self._store.transaction() as session:
            rows = session.scalars(
                select(Visit)
                .where(
                    Visit.resident == resident,
                    Visit.carer == carer,
                    Visit.planned_at <= at + EARLY_CHECK_IN,
                    Visit.planned_at >= at - TAG_REACHES_BACK,
                )
                .order_by(Visit.planned_at)
            ).all()
            if any(_repeat(row, via, at) for row in rows):
                return None
            under_way = [row for row in rows if row.status == "in_progress"]
            if under_way:
                row = under_way[-1]
                row.status = "late" if row.late else "done"
                row.checked_out_at, row.checked_out_via, row.updated_at = at, via, self._store.now()
                self._audit(session, f"responder:{carer}", "visit.checked_out", row, via=via)
                return Arrival(VisitView.of(row))
            open_visits = [row for row in rows if row.status in _OPEN]
            if not open_visits:
                self._store.audit.append(
                    session,
                    at=self._store.now(),
                    actor=f"responder:{carer}",
                    action="visit.tag_unplanned",
                    details={"resident": resident, "device": device_id, "at": at.isoformat()},
                )
                return None
            return self._arrive(
                session, min(open_visits, key=lambda r: abs(r.planned_at - at)), carer, via, at
            )

    @staticmethod
    def _carers(session: Session, visit_id: int, carer: str) -> Visit:
        row = session.get(Visit, visit_id)
        if row is None:
            raise VisitError("not_found", visit_id)
        if row.carer != carer:
            raise VisitError("not_yours", visit_id)
        return row

    # -- reads (reader threads) -------------------------------------------------------------------------

    def reading(self) -> AbstractContextManager[Session]:
        return self._store.reading()

    def of_carer(self, carer: str, start: datetime, end: datetime) -> list[VisitView]:
        """A carer's visits planned in [start, end), and any still under way from before."""
        with self._store.reading() as session:
            rows = session.scalars(
                select(Visit)
                .where(
                    Visit.carer == carer,
                    ((Visit.planned_at >= start) & (Visit.planned_at < end))
                    | (Visit.status == "in_progress"),
                )
                .order_by(Visit.planned_at)
            ).all()
            return [VisitView.of(row) for row in rows]

    def visit(self, visit_id: int) -> VisitView | None:
        with self._store.reading() as session:
            row = session.get(Visit, visit_id)
            return VisitView.of(row) if row is not None else None

    def in_period(self, sites: Sequence[str] | None, start: datetime, end: datetime) -> list[VisitView]:
        with self._store.reading() as session:
            query = select(Visit).where(Visit.planned_at >= start, Visit.planned_at < end)
            if sites is not None:
                query = query.where(Visit.site.in_(sorted(sites)))
            return [VisitView.of(row) for row in session.scalars(query.order_by(Visit.planned_at))]
