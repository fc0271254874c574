"""The incident store: one transaction per alarm batch, audited, durable before anyone is told.

Synchronous on purpose: the async `IncidentService` runs it on a single dedicated thread, which also
serialises writers (SQLite has one writer; the audit chain needs one tail).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, Engine, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from devices.model import DEAD_LETTER_PREFIX_BYTES, DeviceEvent, DeviceType, RawMessage
from gateway.directory import Directory
from gateway.incidents import changes, doors, fever
from gateway.incidents.audit import AuditTrail, ChainBreak, find_break, verify_chain
from gateway.incidents.db import read_only, relaxed
from gateway.incidents.schema import (
    AlarmEvent,
    AuditEntry,
    DeadLetter,
    DeviceTest,
    DeviceTestMode,
    Escalation,
    Incident,
    IncidentStatus,
    Outcome,
)
from gateway.incidents.views import AuditChainView, AuditView, DeviceTestView, IncidentView
from rules.model import (
    AlarmDecision,
    CancelDecision,
    Decision,
    DeviceTestDecision,
    Severity,
    TemperatureTaken,
)

log = logging.getLogger(__name__)

#: Attempts at an alarm batch that meets another instance's commit of the same incident key.
_UNIQUE_RETRIES = 3

ACTIVE = (IncidentStatus.OPEN.value, IncidentStatus.ACKNOWLEDGED.value)


def under_key(key: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """Where the active incident under `key` is: `status != 'resolved'` (the same set as ACTIVE) is the
    partial unique index's own condition, so the database finds the incident through that index. With
    `status IN (open, acknowledged)` SQLite could not use it and searched every active incident on each
    press (EXPLAIN QUERY PLAN, tests/test_store.py)."""
    return Incident.key == key, Incident.status != IncidentStatus.RESOLVED.value


#: Faults kept in an incident's evidence; a device repeating the same fault adds it once.
MAX_INCIDENT_FAULTS = 20
DEAD_LETTERS_MAX = 10_000
#: MQTT allows 64 KiB topics; a dead letter keeps enough of one to tell where it came from.
_TOPIC_MAX_CHARS = 512
#: Told, after the commit, how many of a lane's oldest dead letters were deleted to stay within the cap.
EvictionListener = Callable[[str, int], None]
#: The sites a user sees (None: every site); an incident of another site is "not found" for them.
Scope = frozenset[str] | None


def _stop_escalation(session: Session, incident_id: int, reason: str, now: datetime) -> None:
    """A human has it (or it is over): every pending escalation step is cancelled."""
    escalation = session.get(Escalation, incident_id)
    if escalation is not None and escalation.state == "active":
        escalation.state, escalation.stop_reason = "stopped", reason
        escalation.next_step_at, escalation.updated_at = None, now


class IncidentNotFoundError(LookupError):
    pass


class IncidentConflictError(RuntimeError):
    """The transition is not allowed from the incident's current state."""


class DispatchRequiredError(IncidentConflictError):
    """ "No response from the resident" closes nothing quietly: someone must have been sent first."""


class NotATestCallError(IncidentConflictError):
    """Only an SOS call can be a button's test press: a fall or smoke closed as a test would mark its
    device as tested, and the device board would then trust a device nobody tested."""


#: The rules whose incidents a test press raises.
TESTABLE_BY_CALL = frozenset({"sos"})
#: The rules whose alarm a device in test mode turns into a test (docs/duty.md): a press of an SOS
#: pendant or pull cord, a fall sensor's alarm. Smoke has its own test button and stays as it is.
TEST_MODE_RULES = frozenset({"sos", "fall"})


@dataclass(frozen=True, slots=True)
class ArmedPress:
    """A press taken as a test because its device was in test mode: told to the tester, live."""

    device_id: str
    site: str
    armed_by: str
    at: datetime
    test_count: int


@dataclass(frozen=True, slots=True)
class RuledDecision:
    decision: Decision
    #: True when the message may be a redelivery we already recorded (device-given id or MQTT DUP flag).
    check_duplicate: bool
    #: Made by every gateway instance alike (the wellbeing rules hear all telemetry on each instance,
    #: docs/scaling.md): the first instance's commit counts, the others' copies are duplicates.
    replicated: bool = False


@dataclass(slots=True)
class AlarmBatch:
    decisions: list[RuledDecision] = field(default_factory=list)
    dead_letters: list[tuple[RawMessage, str, str | None]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.decisions or self.dead_letters)


@dataclass(slots=True)
class BatchResult:
    changed: list[IncidentView] = field(default_factory=list)
    duplicates: int = 0
    opened: int = 0
    #: Device tests recorded (no incident).
    tested: int = 0
    #: Presses taken as tests by test mode (counted in `tested` too).
    test_presses: list[ArmedPress] = field(default_factory=list)


class IncidentStore:
    def __init__(
        self,
        database: Engine,
        directory: Directory,
        clock: Callable[[], datetime],
        *,
        dead_letters_max: int = DEAD_LETTERS_MAX,
        on_evicted: EvictionListener | None = None,
        instance: str = "careline-gateway",
    ) -> None:
        self._dead_letters_max = dead_letters_max
        self._on_evicted = on_evicted
        self._sessions = sessionmaker(database, expire_on_commit=False)
        self._reads = sessionmaker(read_only(database), expire_on_commit=False)
        self._bookkeeping = sessionmaker(relaxed(database), expire_on_commit=False)
        #: This gateway instance's name (`broker.client_id`): the other instances' screens follow its
        #: commits (gateway/incidents/changes.py), and its notifications are its own to send.
        self.instance = instance
        for sessions in (self._sessions, self._bookkeeping):
            changes.track(sessions, instance)
        self.directory = directory
        self._now = clock
        self.audit = AuditTrail()

    def now(self) -> datetime:
        return self._now()

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Session]:
        """One unit of work; call only from the service's writer thread. `durable=False` (escalation
        bookkeeping) skips this commit's own fsync on SQLite; see incidents/db.py."""
        with (self._sessions if durable else self._bookkeeping)() as session:
            try:
                with session.begin():
                    yield session
            except BaseException:
                self.audit.forget_cache()
                raise

    # -- the alarm path -------------------------------------------------------------------------------

    def apply(self, batch: AlarmBatch) -> BatchResult:
        for attempt in range(1, _UNIQUE_RETRIES + 1):
            try:
                return self._apply_once(batch)
            except IntegrityError:
                # Another instance committed the same key's incident (or the same alarm) between our
                # look and our insert; the unique index refused ours. Looked at again, it is found and
                # joined: one incident per alarm whichever instance took it.
                if attempt == _UNIQUE_RETRIES:
                    raise
                log.info("alarm batch met another instance's commit (attempt %d); ruling it again", attempt)
        raise AssertionError("unreachable")

    def _apply_once(self, batch: AlarmBatch) -> BatchResult:
        result = BatchResult()
        changed: dict[int, Incident] = {}
        with self.transaction() as session:
            evicted = self._add_dead_letters(session, batch.dead_letters)
            for ruled in batch.decisions:
                if (
                    (ruled.check_duplicate and self._already_recorded(session, ruled.decision.event))
                    or (ruled.replicated and self._made_elsewhere(session, ruled.decision))
                    or self._door_stale(session, ruled.decision)
                ):
                    result.duplicates += 1
                    continue
                incident = self._decide(session, ruled.decision, result)
                if incident is not None:
                    changed[incident.id] = incident
        result.changed = [IncidentView.of(incident, self.directory) for incident in changed.values()]
        if self._on_evicted is not None:
            for lane, count in evicted.items():
                self._on_evicted(lane, count)
        return result

    def _add_dead_letters(
        self, session: Session, letters: Sequence[tuple[RawMessage, str, str | None]]
    ) -> dict[str, int]:
        """Keep each letter with a bounded prefix of its payload and its size; then delete each lane's
        oldest beyond the cap, so no publisher can fill the disk. Returns the deletions per lane."""
        if not letters:
            return {}
        for raw, reason, device_id in letters:
            session.add(
                DeadLetter(
                    received_at=raw.received_at,
                    lane=raw.lane.value,
                    topic=raw.topic[:_TOPIC_MAX_CHARS],
                    payload=raw.prefix(DEAD_LETTER_PREFIX_BYTES).payload,
                    payload_size=raw.size,
                    reason=reason,
                    device_id=device_id,
                )
            )
        session.flush()
        evicted: dict[str, int] = {}
        for lane in sorted({raw.lane.value for raw, _, _ in letters}):
            newest_kept = (
                select(DeadLetter.id)
                .where(DeadLetter.lane == lane)
                .order_by(DeadLetter.id.desc())
                .offset(self._dead_letters_max - 1)
                .limit(1)
                .scalar_subquery()
            )
            outcome = session.execute(
                delete(DeadLetter).where(DeadLetter.lane == lane, DeadLetter.id < newest_kept)
            )
            deleted = outcome.rowcount if isinstance(outcome, CursorResult) else 0
            if deleted:
                evicted[lane] = deleted
        return evicted

    def _already_recorded(self, session: Session, event: DeviceEvent) -> bool:
        found = session.scalar(
            select(AlarmEvent.id).where(AlarmEvent.message_key == event.message_key).limit(1)
        )
        return found is not None

    def _made_elsewhere(self, session: Session, decision: Decision) -> bool:
        """A replicated decision another instance has committed already. One made on a message carries
        that message's key, the same on every instance; one made by a timer carries its own instance's
        tick time, so it is recognised by the active incident it would join."""
        if self._already_recorded(session, decision.event):
            return True
        timer = decision.event.message_key.startswith(f"rule:{decision.rule}:")
        return (
            timer
            and isinstance(decision, AlarmDecision)
            and self._active(session, decision.incident_key) is not None
        )

    def record_doors(self, reports: Sequence[DeviceEvent]) -> None:
        """Door reports for every instance's door rules (gateway/incidents/doors.py): bookkeeping, in one
        transaction for all the reports of a moment, never on an alarm's commit."""
        with self.transaction(durable=False) as session:
            doors.record(session, reports)

    def _door_stale(self, session: Session, decision: Decision) -> bool:
        if not isinstance(decision, AlarmDecision) or decision.rule not in doors.RULES:
            return False
        raised = self._active(session, decision.incident_key) is not None
        return doors.stale(session, decision, already_raised=raised)

    def _decide(self, session: Session, decision: Decision, result: BatchResult) -> Incident | None:
        if isinstance(decision, AlarmDecision):
            press = self._in_test_mode(session, decision)
            if press is not None:
                result.tested += 1
                result.test_presses.append(press)
                return None
            return self._raise_alarm(session, decision, result)
        if isinstance(decision, DeviceTestDecision):
            self._record_test(session, decision)
            result.tested += 1
            return None
        if isinstance(decision, TemperatureTaken):
            return self._take_temperature(session, decision, result)
        return self._cancel(session, decision)

    def _take_temperature(
        self, session: Session, taken: TemperatureTaken, result: BatchResult
    ) -> Incident | None:
        """Keep a body temperature (audited) and raise or join the site's fever cluster it makes."""
        event = taken.event
        self.audit.append(
            session,
            at=self._now(),
            actor=taken.recorded_by,
            action="temperature.recorded",
            details={
                "site": event.site,
                "resident": event.resident,
                "celsius": event.value,
                "fever": taken.fever,
                "taken_at": event.received_at.isoformat(),
            },
        )
        cluster = fever.keep(session, taken)
        return self._raise_alarm(session, cluster, result) if cluster is not None else None

    def _raise_alarm(self, session: Session, decision: AlarmDecision, result: BatchResult) -> Incident:
        event = decision.event
        incident = self._active(session, decision.incident_key)
        if incident is None:
            incident = Incident(
                key=decision.incident_key,
                rule=decision.rule,
                severity=decision.severity.value,
                status=IncidentStatus.OPEN.value,
                site=event.site,
                room=event.room,
                resident=event.resident,
                device_id=event.device_id,
                opened_at=event.received_at,
                last_triggered_at=event.received_at,
                trigger_count=1,
                evidence=_with_faults(decision.evidence, event.faults),
            )
            session.add(incident)
            session.flush()
            # Same transaction: an alarm is never durable without its escalation.
            session.add(
                Escalation(
                    incident_id=incident.id,
                    next_tier=0,
                    round=1,
                    next_step_at=self._now(),
                    state="active",
                    updated_at=self._now(),
                )
            )
            result.opened += 1
            effect = "opened"
        else:
            incident.trigger_count += 1
            incident.last_triggered_at = max(incident.last_triggered_at, event.received_at)
            if decision.severity.rank < Severity(incident.severity).rank:
                incident.severity = decision.severity.value
            if event.faults:
                # Assigned anew: the JSON column does not notice changes made inside the old dict.
                incident.evidence = _with_faults(incident.evidence, event.faults)
            effect = "joined"
        self._record_event(session, incident, event, effect)
        details: dict[str, Any] = {
            "rule": decision.rule,
            "severity": decision.severity.value,
            "event": event.kind.value,
            "message_key": event.message_key,
            "evidence": dict(decision.evidence),
        }
        if event.faults:
            details["faults"] = list(event.faults)
        self.audit.append(
            session,
            at=self._now(),
            actor=f"device:{event.device_id}",
            action=f"incident.{effect}",
            incident_id=incident.id,
            details=details,
        )
        return incident

    def _in_test_mode(self, session: Session, decision: AlarmDecision) -> ArmedPress | None:
        """The press as a test when its device's test mode is armed and not expired: the mode is used up
        here, in the alarm's own transaction, so exactly one press is a test and every later one is an
        alarm. A press joining an alarm still open under its key is that alarm, never a test."""
        event = decision.event
        if decision.rule not in TEST_MODE_RULES:
            return None
        mode = session.get(DeviceTestMode, event.device_id)
        if mode is None or mode.expires_at <= self._now() or mode.site != event.site:
            return None
        if self._active(session, decision.incident_key) is not None:
            return None
        session.delete(mode)
        test = self._count_test(session, event.device_id, event.site, "test_mode", event.received_at)
        self._audit_self_test(session, decision.rule, event, test, test_mode_armed_by=mode.armed_by)
        return ArmedPress(event.device_id, event.site, mode.armed_by, event.received_at, test.test_count)

    def _record_test(self, session: Session, decision: DeviceTestDecision) -> None:
        """The device's last test and how many there were: proof for a manager that it works."""
        event = decision.event
        # The gateway's receive time: a detector's clock is rarely set, and often not there at all.
        test = self._count_test(session, event.device_id, event.site, event.kind.value, event.received_at)
        self._audit_self_test(session, decision.rule, event, test)

    def _audit_self_test(
        self, session: Session, rule: str, event: DeviceEvent, test: DeviceTest, **more: str
    ) -> None:
        """`device.tested` by the device itself (a detector's test button, a press in test mode): what the
        device board and the weekly test compliance (gateway/reports/quality.py) count."""
        self.audit.append(
            session,
            at=self._now(),
            actor=f"device:{event.device_id}",
            action="device.tested",
            details={
                "rule": rule,
                "site": event.site,
                "event": event.kind.value,
                "message_key": event.message_key,
                "test_count": test.test_count,
                **more,
            },
        )

    @staticmethod
    def _count_test(session: Session, device_id: str, site: str, kind: str, at: datetime) -> DeviceTest:
        test = session.get(DeviceTest, device_id)
        if test is None:
            test = DeviceTest(device_id=device_id, last_test_at=at, test_count=0)
            session.add(test)
        test.site, test.kind = site, kind
        test.last_test_at = max(test.last_test_at, at)
        test.test_count += 1
        return test

    def _cancel(self, session: Session, decision: CancelDecision) -> Incident | None:
        event = decision.event
        incident = self._active(session, decision.incident_key)
        # A position change the bed saw closes a repositioning task as the sensor's, not the resident's.
        by_resident = event.resident and decision.reason == Outcome.CANCELLED_BY_RESIDENT
        actor = f"resident:{event.resident}" if by_resident else f"device:{event.device_id}"
        if incident is not None and not self._may_cancel(session, incident, event):
            return self._refuse_cancel(session, incident, decision)
        if incident is None or incident.last_triggered_at < decision.triggered_after:
            # Too late (or nothing to cancel): a human must still attend; keep the attempt on record.
            self.audit.append(
                session,
                at=self._now(),
                actor=actor,
                action="incident.cancel_ignored",
                incident_id=incident.id if incident else None,
                details={
                    "rule": decision.rule,
                    "message_key": event.message_key,
                    "why": "outside the cancel window" if incident else "no open incident",
                },
            )
            if incident is not None:
                self._record_event(session, incident, event, "cancel_too_late")
            return incident
        now = self._now()
        incident.status = IncidentStatus.RESOLVED.value
        _stop_escalation(session, incident.id, "resolved", self._now())
        incident.resolved_at = now
        incident.resolved_by = actor
        incident.outcome = _cancel_outcome(decision.reason).value
        incident.taken_by = incident.taken_at = None
        self._record_event(session, incident, event, "cancelled")
        self.audit.append(
            session,
            at=now,
            actor=actor,
            action="incident.cancelled",
            incident_id=incident.id,
            details={"rule": decision.rule, "message_key": event.message_key, "outcome": incident.outcome},
        )
        return incident

    @staticmethod
    def _may_cancel(session: Session, incident: Incident, event: DeviceEvent) -> bool:
        """Only the device that raised the alarm, or the resident's own pendant, may call it off: a
        cancel from any other device (another home's hub, a neighbour's sensor) must not close a fall."""
        if event.device_type is DeviceType.SOS_BUTTON and event.resident is not None:
            return event.resident == incident.resident
        raised = select(AlarmEvent.id).where(
            AlarmEvent.incident_id == incident.id,
            AlarmEvent.device_id == event.device_id,
            AlarmEvent.effect.in_(("opened", "joined")),
        )
        return event.device_id == incident.device_id or session.scalar(raised.limit(1)) is not None

    def _refuse_cancel(self, session: Session, incident: Incident, decision: CancelDecision) -> Incident:
        event = decision.event
        self.audit.append(
            session,
            at=self._now(),
            actor=f"device:{event.device_id}",
            action="incident.cancel_refused",
            incident_id=incident.id,
            details={
                "rule": decision.rule,
                "message_key": event.message_key,
                "why": "the cancel came from a device that did not raise the alarm",
            },
        )
        self._record_event(session, incident, event, "cancel_refused")
        return incident

    def _record_event(self, session: Session, incident: Incident, event: DeviceEvent, effect: str) -> None:
        value = None if event.value is None else str(event.value)[:200]
        session.add(
            AlarmEvent(
                incident_id=incident.id,
                message_key=event.message_key,
                kind=event.kind.value,
                device_id=event.device_id,
                value=value,
                event_ts=event.ts,
                received_at=event.received_at,
                recorded_at=self._now(),
                effect=effect,
            )
        )

    @staticmethod
    def _active(session: Session, key: str) -> Incident | None:
        return session.scalar(select(Incident).where(*under_key(key)))

    # -- operators ------------------------------------------------------------------------------------

    def acknowledge(self, incident_id: int, actor: str, scope: Scope = None) -> IncidentView:
        with self.transaction() as session:
            view, late = self.acknowledge_in(session, incident_id, actor, scope)
        if late:
            raise IncidentConflictError(f"incident {incident_id} is already resolved")
        return view

    def acknowledge_in(
        self, session: Session, incident_id: int, actor: str, scope: Scope = None
    ) -> tuple[IncidentView, bool]:
        """Acknowledge within the caller's transaction: the incident, and whether the answer came late
        (already resolved: kept on record, changes nothing). A dashboard user who acknowledges an
        incident nobody holds takes it too: the others see at once who is on it."""
        incident = self.get_in(session, incident_id, scope)
        if incident.status == IncidentStatus.RESOLVED.value:
            # A late answer is evidence of response time.
            self.audit.append(
                session, at=self._now(), actor=actor, action="incident.late_ack", incident_id=incident.id
            )
            return IncidentView.of(incident, self.directory), True
        user = actor.removeprefix("user:") if actor.startswith("user:") else None
        takes = user is not None and incident.taken_by is None
        if takes:
            incident.taken_by, incident.taken_at = user, self._now()
        if incident.status == IncidentStatus.OPEN.value:
            incident.status = IncidentStatus.ACKNOWLEDGED.value
            _stop_escalation(session, incident.id, "acknowledged", self._now())
            incident.acknowledged_at = self._now()
            incident.acknowledged_by = actor
            self.audit.append(
                session,
                at=incident.acknowledged_at,
                actor=actor,
                action="incident.acknowledged",
                incident_id=incident.id,
                details={"taken": True} if takes else None,
            )
        elif takes:
            self.audit.append(
                session,
                at=self._now(),
                actor=actor,
                action="incident.taken",
                incident_id=incident.id,
                details={"by_acknowledging": True},
            )
        return IncidentView.of(incident, self.directory), False

    def record(self, actor: str, action: str, details: dict[str, Any]) -> None:
        """One audit row of its own, about no incident (e.g. a login lock)."""
        with self.transaction() as session:
            self.audit.append(session, at=self._now(), actor=actor, action=action, details=details)

    def resolve(
        self, incident_id: int, actor: str, outcome: Outcome, note: str, scope: Scope = None
    ) -> IncidentView:
        with self.transaction() as session:
            incident = self.get_in(session, incident_id, scope)
            if incident.status == IncidentStatus.RESOLVED.value:
                raise IncidentConflictError(f"incident {incident_id} is already resolved")
            if outcome == Outcome.NO_RESPONSE and incident.dispatched_at is None:
                raise DispatchRequiredError(f"incident {incident_id}: nobody has been sent yet")
            if outcome == Outcome.TEST_CALL and incident.rule not in TESTABLE_BY_CALL:
                raise NotATestCallError(
                    f"incident {incident_id} is a {incident.rule} alarm, not a test press"
                )
            now = self._now()
            if incident.acknowledged_at is None:
                # Resolving implies somebody attended: it counts as the acknowledgement too.
                incident.acknowledged_at, incident.acknowledged_by = now, actor
            incident.status = IncidentStatus.RESOLVED.value
            _stop_escalation(session, incident.id, "resolved", self._now())
            incident.resolved_at, incident.resolved_by = now, actor
            incident.outcome, incident.note = outcome.value, note
            incident.taken_by = incident.taken_at = None
            self.audit.append(
                session,
                at=now,
                actor=actor,
                action="incident.resolved",
                incident_id=incident.id,
                details={"outcome": outcome.value, "note": note},
            )
            if outcome == Outcome.TEST_CALL:
                self._record_test_call(session, incident, actor, now)
            return IncidentView.of(incident, self.directory)

    def _record_test_call(self, session: Session, incident: Incident, actor: str, now: datetime) -> None:
        """A test press the operator answered as one: the button is proven to work, like a self-test.
        Only an operator says so, so a real press is never swallowed as a test."""
        test = self._count_test(session, incident.device_id, incident.site, Outcome.TEST_CALL.value, now)
        self.audit.append(
            session,
            at=now,
            actor=actor,
            action="device.tested",
            incident_id=incident.id,
            details={
                "rule": incident.rule,
                "site": incident.site,
                "device": incident.device_id,
                "event": Outcome.TEST_CALL.value,
                "test_count": test.test_count,
            },
        )

    @staticmethod
    def get_in(session: Session, incident_id: int, scope: Scope = None) -> Incident:
        """The incident, within the caller's session; "not found" as well when its site is outside `scope`."""
        incident = session.get(Incident, incident_id)
        if incident is None or (scope is not None and incident.site not in scope):
            raise IncidentNotFoundError(f"no incident {incident_id}")
        return incident

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session (no write lock); safe on the reader threads."""
        with self._reads() as session:
            yield session

    # -- reads ----------------------------------------------------------------------------------------

    def incidents(self, statuses: Sequence[str], limit: int = 500, scope: Scope = None) -> list[IncidentView]:
        query = select(Incident).where(Incident.status.in_(statuses))
        if scope is not None:
            query = query.where(Incident.site.in_(sorted(scope)))
        with self.reading() as session:
            rows = session.scalars(query.order_by(Incident.opened_at.desc()).limit(limit))
            return [IncidentView.of(row, self.directory) for row in rows]

    def incidents_between(
        self,
        start: datetime,
        end: datetime,
        site: str | None = None,
        resident: str | None = None,
        device: str | None = None,
        room: str | None = None,
    ) -> list[IncidentView]:
        """Incidents opened in a period, for managers' review (newest first)."""
        query = select(Incident).where(Incident.opened_at >= start, Incident.opened_at < end)
        for column, value in (
            (Incident.site, site),
            (Incident.resident, resident),
            (Incident.device_id, device),
            (Incident.room, room),
        ):
            if value is not None:
                query = query.where(column == value)
        with self.reading() as session:
            rows = session.scalars(query.order_by(Incident.opened_at.desc()).limit(5000))
            return [IncidentView.of(row, self.directory) for row in rows]

    def incidents_with_ids(self, ids: Sequence[int]) -> list[IncidentView]:
        """The incidents another gateway instance just committed (gateway/cluster.py)."""
        with self.reading() as session:
            rows = session.scalars(select(Incident).where(Incident.id.in_(list(ids))).order_by(Incident.id))
            return [IncidentView.of(row, self.directory) for row in rows]

    def site_of(self, incident_id: int) -> str | None:
        with self.reading() as session:
            return session.scalar(select(Incident.site).where(Incident.id == incident_id))

    def incident(self, incident_id: int, scope: Scope = None) -> IncidentView:
        with self.reading() as session:
            return IncidentView.of(self.get_in(session, incident_id, scope), self.directory)

    def audit_trail(self, incident_id: int | None = None) -> list[AuditView]:
        with self.reading() as session:
            query = select(AuditEntry).order_by(AuditEntry.id)
            if incident_id is not None:
                query = query.where(AuditEntry.incident_id == incident_id)
            return [AuditView.model_validate(e) for e in session.scalars(query)]

    def verify_audit_chain(self) -> int | None:
        with self.reading() as session:
            return verify_chain(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))

    def audit_chain(self) -> AuditChainView:
        """The whole chain recomputed, streamed in pages so a long trail is not held in memory at once."""
        with self.reading() as session:
            # Closed even when the break is found early: on PostgreSQL `yield_per` reads through a
            # server-side cursor, which must end before its transaction does.
            with contextlib.closing(
                session.scalars(select(AuditEntry).order_by(AuditEntry.id).execution_options(yield_per=1000))
            ) as entries:
                found = find_break(entries)
            if not isinstance(found, ChainBreak):
                return AuditChainView(intact=True, verified=found)
            return AuditChainView(
                intact=False,
                verified=found.intact_before,
                first_broken_id=found.entry.id,
                first_broken_at=found.entry.at,
                first_broken_action=found.entry.action,
                reason=found.reason,
            )

    def active_count(self) -> int:
        with self.reading() as session:
            return session.scalar(select(func.count(Incident.id)).where(Incident.status.in_(ACTIVE))) or 0

    def dead_letter_count(self) -> int:
        with self.reading() as session:
            return session.scalar(select(func.count(DeadLetter.id))) or 0

    def device_tests(self) -> list[DeviceTestView]:
        """Every device's last test, the one tested longest ago (the most due) first."""
        with self.reading() as session:
            rows = session.scalars(select(DeviceTest).order_by(DeviceTest.last_test_at, DeviceTest.device_id))
            return [DeviceTestView.of(row, self.directory) for row in rows]

    def dead_letters(self, limit: int = 100, devices: frozenset[str] | None = None) -> list[DeadLetter]:
        """Newest first; only those of `devices` when given (a letter of no known device has none)."""
        query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
        if devices is not None:
            query = query.where(DeadLetter.device_id.in_(sorted(devices)))
        with self.reading() as session:
            return list(session.scalars(query))


def _cancel_outcome(reason: str) -> Outcome:
    """The outcome a rule's cancel records: its reason when that is an outcome (a fall cancelled by the
    resident, a task the bed saw done), else the resident's cancel."""
    try:
        return Outcome(reason)
    except ValueError:
        return Outcome.CANCELLED_BY_RESIDENT


def _with_faults(evidence: Mapping[str, Any], faults: Sequence[str]) -> dict[str, Any]:
    """A copy of `evidence` with `faults` added to those kept, each once, at most `MAX_INCIDENT_FAULTS`."""
    if not faults:
        return dict(evidence)
    kept = list(evidence.get("faults", []))
    kept += [fault for fault in dict.fromkeys(faults) if fault not in kept]
    return {**evidence, "faults": kept[:MAX_INCIDENT_FAULTS]}
