"""The daily calls in the incident store: one row per resident, day and attempt; every step audited.

Each method is one transaction; the writes run on the store's writer thread (`IncidentService.write`),
the reads on its read pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.escalation.model import Delivery
from gateway.incidents.schema import Incident, ReassuranceAttempt
from gateway.incidents.store import IncidentStore
from gateway.reassurance.plan import (
    ENDED_UNANSWERED,
    AttemptState,
    Outcome,
    Subscriber,
    answer_of_digits,
    answer_of_reply,
)

ACTOR = "reassurance"
_ENDED = ENDED_UNANSWERED
#: An SMS from a resident's number is read as the answer to their daily SMS for this long after it.
SMS_ANSWER_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class AttemptView:
    id: int
    resident_id: str
    site: str
    day: str
    attempt: int
    channel: str
    phone: str
    scheduled_at: datetime
    placed_at: datetime | None
    provider_sid: str | None
    status: str
    detail: str | None
    digits: str | None
    reply: str | None
    answered_at: datetime | None
    outcome: str | None
    decided_at: datetime | None
    incident_id: int | None

    @classmethod
    def of(cls, row: ReassuranceAttempt) -> AttemptView:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})

    @property
    def answer(self) -> Outcome | None:
        if self.digits:
            return answer_of_digits(self.digits)
        return answer_of_reply(self.reply) if self.reply else None

    def state(self) -> AttemptState:
        return AttemptState(
            self.attempt, self.scheduled_at, self.status, self.answer, cast(Outcome | None, self.outcome)
        )


class ReassuranceRecords:
    def __init__(self, store: IncidentStore) -> None:
        self._store = store

    # -- writes (writer thread) -----------------------------------------------------------------------

    def reserve(self, subscriber: Subscriber, day: str, attempt: int, scheduled_at: datetime) -> int | None:
        """The attempt's row, committed BEFORE the call is placed: None when it exists already (placed
        before a restart, or by another instance), so no attempt is ever placed twice."""
        now = self._store.now()
        settings = subscriber.settings
        row = ReassuranceAttempt(
            resident_id=subscriber.resident_id,
            site=subscriber.site,
            day=day,
            attempt=attempt,
            channel=settings.channel,
            phone=settings.phone,
            scheduled_at=scheduled_at,
            status="placing",
            updated_at=now,
        )
        try:
            with self._store.transaction() as session:
                session.add(row)
                session.flush()
                self._audit(session, "reassurance.placing", row, now, scheduled_at=scheduled_at.isoformat())
                return row.id
        except IntegrityError:
            return None

    def placed(self, attempt_id: int, delivery: Delivery) -> None:
        now = self._store.now()
        with self._store.transaction() as session:
            row = session.get_one(ReassuranceAttempt, attempt_id)
            row.placed_at = now
            row.provider_sid = delivery.provider_id
            # A callback may have come first (the call rang before Twilio's answer reached us).
            if row.status == "placing":
                row.status = "queued" if delivery.ok else "failed"
            row.detail = None if delivery.ok else delivery.detail[:300]
            row.updated_at = now
            action = "reassurance.placed" if delivery.ok else "reassurance.failed"
            self._audit(session, action, row, now, sid=delivery.provider_id, detail=row.detail)

    def status(self, attempt_id: int, status: str) -> AttemptView | None:
        """Twilio's progress report; a state once final is kept (callbacks may arrive out of order)."""
        now = self._store.now()
        with self._store.transaction() as session:
            row = session.get(ReassuranceAttempt, attempt_id)
            if row is None:
                return None
            status = "answered" if status == "in-progress" else status
            progress_only = status in ("initiated", "queued", "ringing", "sent", "delivered")
            if row.status not in _ENDED and not (row.status == "answered" and progress_only):
                row.status = status[:16]
                row.updated_at = now
                if status in _ENDED:
                    self._audit(session, "reassurance.call_ended", row, now, status=status)
            return AttemptView.of(row)

    def answered(
        self, attempt_id: int, *, digits: str | None = None, reply: str | None = None
    ) -> AttemptView:
        now = self._store.now()
        with self._store.transaction() as session:
            row = session.get_one(ReassuranceAttempt, attempt_id)
            if digits is not None:
                row.digits = digits[:8]
            if reply is not None:
                row.reply = reply[:1600]
            row.answered_at = now
            if row.status in ("placing", "queued", "ringing", "sent", "delivered"):
                row.status = "answered"
            row.updated_at = now
            self._audit(session, "reassurance.answered", row, now, digits=digits, reply=reply)
            return AttemptView.of(row)

    def decided(self, attempt_id: int, outcome: Outcome, incident_id: int | None) -> AttemptView:
        now = self._store.now()
        with self._store.transaction() as session:
            row = session.get_one(ReassuranceAttempt, attempt_id)
            row.outcome = outcome
            row.decided_at = now
            row.incident_id = incident_id
            row.updated_at = now
            self._audit(session, "reassurance.decided", row, now, outcome=outcome, incident=incident_id)
            return AttemptView.of(row)

    def _audit(
        self, session: Session, action: str, row: ReassuranceAttempt, at: datetime, **more: Any
    ) -> None:
        details = {
            "resident": row.resident_id,
            "day": row.day,
            "attempt": row.attempt,
            "channel": row.channel,
        }
        details.update({key: value for key, value in more.items() if value is not None})
        self._store.audit.append(session, at=at, actor=ACTOR, action=action, details=details)

    # -- reads (read pool) ------------------------------------------------------------------------------

    def attempt(self, attempt_id: int) -> AttemptView | None:
        with self._store.reading() as session:
            row = session.get(ReassuranceAttempt, attempt_id)
            return AttemptView.of(row) if row else None

    def of_days(self, days: Iterable[str]) -> list[AttemptView]:
        """Every attempt of these site-local days, by resident then attempt."""
        query = select(ReassuranceAttempt).where(ReassuranceAttempt.day.in_(sorted(set(days))))
        with self._store.reading() as session:
            rows = session.scalars(query.order_by(ReassuranceAttempt.resident_id, ReassuranceAttempt.attempt))
            return [AttemptView.of(row) for row in rows]

    def latest_sms_to(self, phone: str, now: datetime) -> AttemptView | None:
        """The newest SMS attempt to this number within `SMS_ANSWER_WINDOW`: its answer is a reply."""
        query = (
            select(ReassuranceAttempt)
            .where(
                ReassuranceAttempt.phone == phone,
                ReassuranceAttempt.channel == "sms",
                ReassuranceAttempt.scheduled_at >= now - SMS_ANSWER_WINDOW,
            )
            .order_by(ReassuranceAttempt.scheduled_at.desc(), ReassuranceAttempt.attempt.desc())
            .limit(1)
        )
        with self._store.reading() as session:
            row = session.scalar(query)
            return AttemptView.of(row) if row else None

    def active_incident(self, key: str) -> int | None:
        query = select(Incident.id).where(Incident.key == key, Incident.status != "resolved")
        with self._store.reading() as session:
            return session.scalar(query.order_by(Incident.id.desc()).limit(1))


def day_outcome(attempts: Sequence[AttemptView]) -> AttemptView | None:
    """The attempt that decided the day, if any."""
    return next((a for a in attempts if a.outcome is not None), None)
