"""Tables of the incident store. Alembic migrations in gateway/migrations create them; keep both in step
(tests compare the migrated database with these models)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the incident store")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class IncidentStatus(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Outcome(enum.StrEnum):
    ASSISTED_ON_SITE = "assisted_on_site"
    EMERGENCY_SERVICES_CALLED = "emergency_services_called"
    FALSE_ALARM = "false_alarm"
    CANCELLED_BY_RESIDENT = "cancelled_by_resident"
    TECHNICAL_FAULT = "technical_fault"
    OTHER = "other"
    #: The resident did not answer. Never closes an incident quietly: someone must have been sent first.
    NO_RESPONSE = "no_response"
    #: A test press answered as such (weekly button tests); it records a device test for the device.
    TEST_CALL = "test_call"
    #: A repositioning task done: the carer marked it, or the bed sensor saw the resident's position change.
    REPOSITIONED = "repositioned"


#: Row ids and the columns naming them: 64-bit on both backends. SQLite's INTEGER PRIMARY KEY is already
#: 64-bit (and must stay spelled INTEGER to be the rowid); PostgreSQL's INTEGER is 32-bit, which a flood
#: of dead letters would exhaust, hence BIGINT there.
ROW_ID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime(), dict[str, Any]: JSON()}


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (
        # At most one active incident per key, even with several gateway instances writing.
        Index(
            "uq_incidents_active_key",
            "key",
            unique=True,
            sqlite_where=text("status != 'resolved'"),
            postgresql_where=text("status != 'resolved'"),
        ),
        Index("ix_incidents_status_opened", "status", "opened_at"),
        # The managers' reports read periods, of every site or of one.
        Index("ix_incidents_opened_at", "opened_at"),
        Index("ix_incidents_site_opened", "site", "opened_at"),
    )

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    rule: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    site: Mapped[str] = mapped_column(String(64))
    room: Mapped[str | None] = mapped_column(String(64))
    resident: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[datetime]
    last_triggered_at: Mapped[datetime]
    trigger_count: Mapped[int] = mapped_column(Integer, default=1)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The operator working it now (user name), so no two work the same alarm unknowingly.
    taken_by: Mapped[str | None] = mapped_column(String(64))
    taken_at: Mapped[datetime | None]
    #: When someone was first sent to the resident (gateway/incidents/console.py).
    dispatched_at: Mapped[datetime | None]


class AlarmEvent(Base):
    """Every alarm-lane event that touched an incident: the first trigger, repeats, cancels."""

    __tablename__ = "alarm_events"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    message_key: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[str] = mapped_column(String(64))
    value: Mapped[str | None] = mapped_column(String(200))
    event_ts: Mapped[datetime]
    received_at: Mapped[datetime]
    recorded_at: Mapped[datetime]
    effect: Mapped[str] = mapped_column(String(32))


class AuditEntry(Base):
    """Append-only and hash-chained: each row's hash covers the previous row's hash."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    incident_id: Mapped[int | None] = mapped_column(ROW_ID, index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    #: Each lane's newest rows are found by it when the oldest beyond the cap are deleted.
    __table_args__ = (Index("ix_dead_letters_lane_id", "lane", "id"),)

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    lane: Mapped[str] = mapped_column(String(16))
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(Text)
    device_id: Mapped[str | None] = mapped_column(String(64))
    #: Size of the message as received; `payload` holds only a bounded prefix of it.
    payload_size: Mapped[int | None] = mapped_column(Integer)


class DeviceTest(Base):
    """The last test of an alarm device (a smoke detector's self-test, a test press): proof it works."""

    __tablename__ = "device_tests"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    last_test_at: Mapped[datetime]
    test_count: Mapped[int] = mapped_column(Integer, default=0)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime]
    disabled: Mapped[bool] = mapped_column(default=False)
    #: The sites this user may see and edit; empty means every site (admins always see every site).
    sites: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))


class UserSession(Base):
    __tablename__ = "user_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class Escalation(Base):
    """Where an incident's escalation stands. Written in the transaction that opens the incident, so an
    alarm can never be durable without its escalation; timers are rows, so they survive restarts."""

    __tablename__ = "escalations"

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), primary_key=True)
    policy_id: Mapped[str | None] = mapped_column(String(64))
    #: The tier to run when `next_step_at` comes (0-based); `round` counts passes through the policy.
    next_tier: Mapped[int] = mapped_column(Integer, default=0)
    round: Mapped[int] = mapped_column(Integer, default=1)
    next_step_at: Mapped[datetime | None] = mapped_column(index=True)
    state: Mapped[str] = mapped_column(String(16), default="active")
    stop_reason: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime]


class Notification(Base):
    """One attempt to reach one responder through one channel, and what became of it."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    tier: Mapped[int] = mapped_column(Integer)
    round: Mapped[int] = mapped_column(Integer)
    responder_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(24))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_id: Mapped[str | None] = mapped_column(String(64), index=True)
    ack_token: Mapped[str] = mapped_column(String(64), unique=True)
    #: When the acknowledge link (e-mail, webhook) was used: it works once.
    ack_used_at: Mapped[datetime | None]
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: The gateway instance that sends it (`broker.client_id`); a live instance takes over a dead one's.
    owner: Mapped[str | None] = mapped_column(String(64))
    #: Set while it is in its sender's hands (planned, or a retry coming), cleared with its final outcome:
    #: still set on a dead instance's notification, it may or may not have gone out (docs/scaling.md).
    attempt_started_at: Mapped[datetime | None]


# -- The directory (gateway/directory/store.py) ------------------------------------------------------
# One table per kind: the columns lists search, filter and page on, indexed; `body` is the whole
# validated entry as JSON, so a new field needs no migration and a row reads back as exactly what was
# validated. `position` keeps the order the directory was given in (first-match escalation policies).


class DirectorySite(Base):
    __tablename__ = "directory_sites"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Sites, responders and policies left out of an import are withdrawn, never deleted.
    removed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class DirectoryResident(Base):
    __tablename__ = "directory_residents"
    __table_args__ = (Index("ix_directory_residents_site_status_name", "site", "status", "name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    site: Mapped[str] = mapped_column(String(64))
    room: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(16))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The key-safe code, Fernet-encrypted (never in `body`, never in the audit log).
    key_safe: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]


class DirectoryDevice(Base):
    __tablename__ = "directory_devices"
    __table_args__ = (Index("ix_directory_devices_site_state", "site", "state"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    site: Mapped[str] = mapped_column(String(64))
    room: Mapped[str | None] = mapped_column(String(64))
    resident: Mapped[str | None] = mapped_column(String(64), index=True)
    type: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime]


class DirectoryResponder(Base):
    __tablename__ = "directory_responders"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200), index=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    removed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class DirectoryPolicy(Base):
    __tablename__ = "directory_policies"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    removed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class DirectoryHistory(Base):
    """Which audit entries are about which directory entry (or user): an entity's history is one indexed
    lookup. The audited details name the entry too, so this index can be rebuilt from the hashed trail."""

    __tablename__ = "directory_history"
    __table_args__ = (Index("ix_directory_history_entity", "kind", "entity_id"),)

    audit_id: Mapped[int] = mapped_column(ForeignKey("audit_log.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[str] = mapped_column(String(64))


# -- The operators' console (gateway/incidents/console.py) -------------------------------------------


class IncidentNote(Base):
    """What an operator wrote down while working an incident."""

    __tablename__ = "incident_notes"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    at: Mapped[datetime]
    author: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)


class Dispatch(Base):
    """Someone sent to the resident: a responder of the directory, or another person named in `who`."""

    __tablename__ = "dispatches"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    at: Mapped[datetime]
    by: Mapped[str] = mapped_column(String(64))
    responder_id: Mapped[str | None] = mapped_column(String(64))
    #: The responder's name when sent (names change; the record keeps whom the operator saw).
    responder_name: Mapped[str | None] = mapped_column(String(200))
    who: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")


class ResponseScript(Base):
    """What the operator does for one alarm type, at one site (`site` None: every site). At most one row
    per (rule, site); the console's writer keeps it so (one writer thread)."""

    __tablename__ = "response_scripts"
    __table_args__ = (Index("ix_response_scripts_rule_site", "rule", "site"),)

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    rule: Mapped[str] = mapped_column(String(64))
    site: Mapped[str | None] = mapped_column(String(64))
    #: {"en": [...], "zh-CN": [...]}: the same steps in every language.
    steps: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(64))


class ShiftHandover(Base):
    """A shift handed over: its summary frozen as it was signed; `signature` is the hash of the audit
    entry `handover.signed`, which covers the summary's digest and the notes."""

    __tablename__ = "shift_handovers"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    signed_by: Mapped[str] = mapped_column(String(64), index=True)
    signed_at: Mapped[datetime] = mapped_column(index=True)
    shift_start: Mapped[datetime]
    shift_end: Mapped[datetime]
    notes: Mapped[str] = mapped_column(Text)
    #: The sites the signer saw (None: every site): who else may read it.
    sites: Mapped[list[str] | None] = mapped_column(JSON)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    audit_id: Mapped[int | None] = mapped_column(ROW_ID)
    signature: Mapped[str | None] = mapped_column(String(64))


# -- rule state (issue 11, item 6: rule state survives restarts) ------------------------------------------


class RuleState(Base):
    """The latest snapshot of one lane's rules (`rules/state.py`): the alarm lane's door timers, the
    telemetry process's wellbeing rules. One row per lane, replaced whole in one transaction, so a crash
    mid-write leaves the previous snapshot, never half of two."""

    __tablename__ = "rule_state"

    #: The lane, and with several instances the instance too ("alarm@gw-a"): each keeps its own.
    lane: Mapped[str] = mapped_column(String(128), primary_key=True)
    saved_at: Mapped[datetime]
    #: The envelope's format (`rules.state.FORMAT`) when written; each rule's own version is inside.
    format: Mapped[int] = mapped_column(Integer)
    #: JSON text, kept as text: the gateway hands the telemetry process's snapshot back to it unparsed
    #: (megabytes for hundreds of residents), never decoding it on the alarm lane's interpreter.
    snapshot: Mapped[str] = mapped_column(Text)


# --- duty: test mode of alarm devices, device faults escalated to the technician (docs/duty.md) ----------


class DeviceTestMode(Base):
    """A tester armed test mode for one alarm device: its next press within the window is a test. The row
    is deleted by the press that uses it (in the alarm's own transaction) or when disarmed; an expired
    row is ignored, so a press after the window is a real alarm whatever the row says."""

    __tablename__ = "device_test_modes"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    armed_by: Mapped[str] = mapped_column(String(64))
    armed_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class FaultEscalation(Base):
    """A device fault still unresolved 2 hours after it was raised, escalated to the technicians on duty:
    one row per incident, so it is escalated once, even across restarts."""

    __tablename__ = "fault_escalations"

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), primary_key=True)
    escalated_at: Mapped[datetime]
    #: The responders reached (ids), as planned at the moment of the escalation.
    technicians: Mapped[list[str]] = mapped_column(JSON)


# -- Daily reassurance calls (gateway/reassurance/) --------------------------------------------------


class ReassuranceAttempt(Base):
    """One call (or SMS) of a resident's daily reassurance: one row per resident, site-local day and
    attempt, written before the call is placed so that a restart never places the same attempt twice."""

    __tablename__ = "reassurance_attempts"
    __table_args__ = (
        Index("uq_reassurance_attempts_day", "resident_id", "day", "attempt", unique=True),
        Index("ix_reassurance_attempts_site_day", "site", "day"),
    )

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    resident_id: Mapped[str] = mapped_column(String(64))
    site: Mapped[str] = mapped_column(String(64))
    #: The site-local day, "YYYY-MM-DD".
    day: Mapped[str] = mapped_column(String(10))
    #: 1 for the day's first call, then one more per retry.
    attempt: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(8))
    phone: Mapped[str] = mapped_column(String(20))
    scheduled_at: Mapped[datetime]
    placed_at: Mapped[datetime | None]
    #: Twilio's CallSid / MessageSid.
    provider_sid: Mapped[str | None] = mapped_column(String(64), index=True)
    #: placing, queued, ringing, answered, completed, no-answer, busy, failed (sms: sent, delivered).
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(String(300))
    digits: Mapped[str | None] = mapped_column(String(8))
    reply: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None]
    #: well, needs_help, no_answer: set on the attempt that decided the day.
    outcome: Mapped[str | None] = mapped_column(String(16))
    decided_at: Mapped[datetime | None]
    incident_id: Mapped[int | None] = mapped_column(ROW_ID)
    updated_at: Mapped[datetime]


# --- Risks (docs/risks.md): body temperatures for the epidemic early warning --------------------------


class BodyTemperature(Base):
    """A resident's body temperature kept for the fever count: every carer's entry, and a wearable's
    readings at or above the fever threshold (at most one per resident every few hours)."""

    __tablename__ = "body_temperatures"
    __table_args__ = (Index("ix_body_temperatures_site_taken", "site", "taken_at"),)

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    resident: Mapped[str] = mapped_column(String(64))
    celsius: Mapped[float] = mapped_column(Float)
    fever: Mapped[bool]
    taken_at: Mapped[datetime]
    #: "manual" (a carer's entry) or "wearable".
    source: Mapped[str] = mapped_column(String(16))
    #: The user who entered it, or `device:<id>`.
    recorded_by: Mapped[str] = mapped_column(String(200))


# -- Planned home visits (gateway/visits, docs/visits.md) ---------------------------------------------


class Visit(Base):
    """One planned occurrence of a resident's visit plan and what became of it. Status: planned →
    in_progress (checked in) → done, or late when checked in after `due_by`; missed when `due_by`
    passed with no check-in (its incident in `incident_id`; a check-in after it makes it in_progress,
    then late)."""

    __tablename__ = "visits"
    __table_args__ = (
        Index("ix_visits_occurrence", "resident", "plan", "planned_at", unique=True),
        Index("ix_visits_site_planned", "site", "planned_at"),
        Index("ix_visits_status_due", "status", "due_by"),
    )

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    resident: Mapped[str] = mapped_column(String(64))
    plan: Mapped[str] = mapped_column(String(64))
    carer: Mapped[str] = mapped_column(String(64), index=True)
    planned_at: Mapped[datetime]
    due_by: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    late: Mapped[bool] = mapped_column(default=False)
    checked_in_at: Mapped[datetime | None]
    #: "page" (the carer's phone page) or "tag" (the door tag), with the tag's device id.
    checked_in_via: Mapped[str | None] = mapped_column(String(80))
    checked_out_at: Mapped[datetime | None]
    checked_out_via: Mapped[str | None] = mapped_column(String(80))
    #: {item: "yes" | "no" | "concern"} over the catalogue's wellbeing checklist.
    checklist: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    notes: Mapped[str] = mapped_column(Text, default="")
    incident_id: Mapped[int | None] = mapped_column(ROW_ID)
    updated_at: Mapped[datetime]


# -- several gateway instances (issue 13, docs/scaling.md) -------------------------------------------------


class GatewayInstance(Base):
    """One gateway instance sharing this store: alive while its heartbeat is fresh. When it falls
    silent, one live instance adopts it (`adopted_by`): its broker session and its escalation work."""

    __tablename__ = "gateway_instances"

    instance: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The MQTT client id of its alarm lane, whose persistent session holds the alarms sent to it.
    alarm_client_id: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    adopted_by: Mapped[str | None] = mapped_column(String(64))
    adopted_at: Mapped[datetime | None]
    #: The consoles open on it at its last heartbeat, `[[user, [sites] or null], …]`: the duty watch of
    #: every instance counts them, so a site watched through another instance is not "unstaffed".
    consoles: Mapped[list[Any]] = mapped_column(JSON, default=list)


class DoorState(Base):
    """A door's last known state, kept in the store when several instances share the alarm lane: each
    instance's door rules see only the reports the broker gave it, so before their decision counts the
    store checks it against every instance's reports (gateway/incidents/doors.py)."""

    __tablename__ = "door_states"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    open: Mapped[bool] = mapped_column(Boolean)
    #: When it last changed between open and closed (the report's own time).
    changed_at: Mapped[datetime]
    #: Its newest report: an older one, delivered late through another instance, changes nothing.
    reported_at: Mapped[datetime]
