"""The incident store on a real SQLite file, migrated by Alembic: incidents, cancels, operators, audit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError
from stores import POSTGRESQL, disable_append_only, store_execute, store_rows, store_url

from devices.model import DeviceEvent, DeviceType, EventKind, Lane, RawMessage
from gateway.clock import FakeClock
from gateway.config import CarelineConfig
from gateway.directory import Directory
from gateway.incidents.db import make_engine
from gateway.incidents.migrate import upgrade
from gateway.incidents.schema import AlarmEvent, Base, DeviceTest, Incident, IncidentStatus, Outcome
from gateway.incidents.store import (
    MAX_INCIDENT_FAULTS,
    AlarmBatch,
    BatchResult,
    IncidentConflictError,
    IncidentNotFoundError,
    IncidentStore,
    RuledDecision,
    under_key,
)
from gateway.incidents.views import IncidentView
from rules.model import AlarmDecision, CancelDecision, Decision, DeviceTestDecision, Severity

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
CONFIG = CarelineConfig.model_validate(
    {
        "sites": [{"id": "sunrise", "name": "Sunrise Care Home", "rooms": [{"id": "101"}]}],
        "residents": [{"id": "wang", "name": "王秀英", "site": "sunrise", "room": "101"}],
    }
)
FALL_KEY = "fall:sunrise:resident:wang"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "careline.db"


@pytest.fixture
def engine(db_path: Path) -> Iterator[Engine]:
    engine = make_engine(store_url(db_path))
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def store(engine: Engine, clock: FakeClock) -> IncidentStore:
    return IncidentStore(engine, Directory(CONFIG), clock.now)


_serial = iter(range(1_000_000))


def event(
    kind: EventKind = EventKind.SOS,
    *,
    at: datetime = START,
    key: str | None = None,
    device: str = "pendant-wang",
    device_type: DeviceType = DeviceType.SOS_BUTTON,
    faults: tuple[str, ...] = (),
    resident: str = "wang",
) -> DeviceEvent:
    return DeviceEvent(
        device_id=device,
        device_type=device_type,
        site="sunrise",
        room="101",
        resident=resident,
        kind=kind,
        value=None,
        ts=at,
        received_at=at,
        message_key=key or f"msg-{next(_serial)}",
        faults=faults,
    )


def alarm(
    key: str = FALL_KEY,
    severity: Severity = Severity.CRITICAL,
    *,
    at: datetime = START,
    message_key: str | None = None,
    faults: tuple[str, ...] = (),
) -> AlarmDecision:
    return AlarmDecision(
        "fall", severity, key, event(EventKind.FALL, at=at, key=message_key, faults=faults), {"why": "test"}
    )


def cancel(at: datetime, triggered_after: datetime, **source: Any) -> CancelDecision:
    called_off = event(EventKind.FALL_CANCEL, at=at, **source)
    return CancelDecision("fall", FALL_KEY, called_off, "cancelled_by_resident", triggered_after)


def fall_from(device: str, at: datetime = START) -> AlarmDecision:
    raised = event(EventKind.FALL, at=at, device=device, device_type=DeviceType.FALL_SENSOR)
    return AlarmDecision("fall", Severity.CRITICAL, FALL_KEY, raised, {"why": "test"})


def apply(store: IncidentStore, *decisions: Decision, check_duplicate: bool = False) -> BatchResult:
    return store.apply(AlarmBatch(decisions=[RuledDecision(d, check_duplicate) for d in decisions]))


def one(result: BatchResult) -> IncidentView:
    [incident] = result.changed
    return incident


def actions(store: IncidentStore, incident_id: int | None = None) -> list[str]:
    return [entry.action for entry in store.audit_trail(incident_id)]


# --- raising and joining ------------------------------------------------------------------------


def test_an_alarm_opens_an_incident(store: IncidentStore) -> None:
    result = apply(store, alarm())

    incident = one(result)
    assert result.opened == 1
    assert incident.status == IncidentStatus.OPEN
    assert incident.key == FALL_KEY
    assert incident.severity == "critical"
    assert incident.trigger_count == 1
    assert incident.opened_at == START
    assert incident.site_name == "Sunrise Care Home"
    assert incident.resident_name == "王秀英"
    assert actions(store, incident.id) == ["incident.opened"]


def test_an_alarm_with_the_same_key_joins_the_open_incident(store: IncidentStore) -> None:
    first = one(apply(store, alarm()))
    later = START + timedelta(minutes=2)

    result = apply(store, alarm(at=later))

    joined = one(result)
    assert result.opened == 0
    assert joined.id == first.id
    assert joined.trigger_count == 2
    assert joined.last_triggered_at == later
    assert joined.opened_at == START
    assert actions(store, first.id) == ["incident.opened", "incident.joined"]


def test_a_higher_severity_upgrades_the_joined_incident_and_a_lower_one_does_not(
    store: IncidentStore,
) -> None:
    opened = one(apply(store, alarm(severity=Severity.MEDIUM)))

    upgraded = one(apply(store, alarm(severity=Severity.CRITICAL)))
    kept = one(apply(store, alarm(severity=Severity.LOW)))

    assert opened.severity == "medium"
    assert upgraded.severity == kept.severity == "critical"
    assert kept.trigger_count == 3


def test_after_resolving_the_same_key_opens_a_new_incident(store: IncidentStore) -> None:
    first = one(apply(store, alarm()))
    store.resolve(first.id, "user:alice", Outcome.ASSISTED_ON_SITE, "helped up")

    result = apply(store, alarm(at=START + timedelta(minutes=5)))

    second = one(result)
    assert result.opened == 1
    assert second.id != first.id
    assert second.trigger_count == 1
    assert store.incident(first.id).status == IncidentStatus.RESOLVED


# --- faults of the device messages -------------------------------------------------------------

TS_FAULT = "ts: Value error, is before 2000-01-01; receive time used"


def test_an_alarm_read_despite_faults_opens_an_incident_showing_them(store: IncidentStore) -> None:
    opened = one(apply(store, alarm(faults=(TS_FAULT,))))

    assert opened.faults == [TS_FAULT]
    [entry] = store.audit_trail(opened.id)
    assert entry.details["faults"] == [TS_FAULT]
    assert entry.details["evidence"] == {"why": "test"}


def test_a_clean_alarm_has_no_faults_and_none_in_its_audit(store: IncidentStore) -> None:
    opened = one(apply(store, alarm()))

    assert opened.faults == []
    assert "faults" not in store.audit_trail(opened.id)[0].details


def test_faults_of_later_triggers_are_added_to_the_incident_once_each(
    store: IncidentStore, engine: Engine
) -> None:
    one(apply(store, alarm(faults=(TS_FAULT,))))
    apply(store, alarm())
    joined = one(apply(store, alarm(faults=(TS_FAULT, "v: unsupported; read as version 1"))))

    assert joined.faults == [TS_FAULT, "v: unsupported; read as version 1"]
    assert store.incident(joined.id).faults == joined.faults
    assert [e.details.get("faults") for e in store.audit_trail(joined.id)] == [
        [TS_FAULT],
        None,
        [TS_FAULT, "v: unsupported; read as version 1"],
    ]
    with engine.connect() as connection:
        evidence = connection.execute(select(Incident.evidence).where(Incident.id == joined.id)).scalar_one()
    assert evidence == {"why": "test", "faults": joined.faults}


def test_the_faults_kept_on_an_incident_are_bounded(store: IncidentStore) -> None:
    for n in range(MAX_INCIDENT_FAULTS + 5):
        latest = one(apply(store, alarm(faults=(f"fault {n}",))))

    assert latest.faults == [f"fault {n}" for n in range(MAX_INCIDENT_FAULTS)]


# --- device tests -------------------------------------------------------------------------------


def smoke_test(device: str = "smoke-kitchen", *, at: datetime = START) -> DeviceTestDecision:
    tested = event(EventKind.SMOKE, at=at, device=device, device_type=DeviceType.SMOKE_DETECTOR)
    return DeviceTestDecision("smoke", tested)


def test_a_device_test_is_recorded_with_its_time_and_count_and_opens_no_incident(
    store: IncidentStore, engine: Engine
) -> None:
    later = START + timedelta(days=30)

    first = apply(store, smoke_test())
    second = apply(store, smoke_test(at=later))

    assert (first.tested, second.tested, first.changed, second.changed) == (1, 1, [], [])
    assert store.incidents(("open", "acknowledged", "resolved")) == []
    [row] = store.device_tests()
    assert (row.device_id, row.site, row.site_name, row.kind) == (
        "smoke-kitchen",
        "sunrise",
        "Sunrise Care Home",
        "smoke",
    )
    assert (row.last_test_at, row.test_count) == (later, 2)
    assert actions(store) == ["device.tested", "device.tested"]
    assert store.audit_trail()[-1].details["test_count"] == 2
    assert store.verify_audit_chain() is None
    with engine.connect() as connection:
        assert connection.execute(select(DeviceTest.test_count)).scalars().all() == [2]


def test_a_late_arriving_older_test_does_not_move_the_last_test_back(store: IncidentStore) -> None:
    apply(store, smoke_test(at=START + timedelta(hours=1)))
    apply(store, smoke_test(at=START))

    [row] = store.device_tests()
    assert (row.last_test_at, row.test_count) == (START + timedelta(hours=1), 2)


def test_device_tests_are_listed_longest_untested_first(store: IncidentStore) -> None:
    apply(store, smoke_test("smoke-recent", at=START + timedelta(days=2)), smoke_test("smoke-old"))

    assert [row.device_id for row in store.device_tests()] == ["smoke-old", "smoke-recent"]


# --- redeliveries -------------------------------------------------------------------------------


def test_a_possible_redelivery_already_recorded_is_not_counted_again(store: IncidentStore) -> None:
    first = one(apply(store, alarm(message_key="evt-1")))

    result = apply(store, alarm(message_key="evt-1"), check_duplicate=True)

    assert result.duplicates == 1
    assert result.changed == []
    assert store.incident(first.id).trigger_count == 1


def test_a_message_not_flagged_as_a_possible_redelivery_is_counted_even_with_a_known_key(
    store: IncidentStore,
) -> None:
    first = one(apply(store, alarm(message_key="evt-1")))

    result = apply(store, alarm(message_key="evt-1"), check_duplicate=False)

    assert result.duplicates == 0
    assert one(result).id == first.id
    assert store.incident(first.id).trigger_count == 2


def test_a_redelivery_check_with_a_new_key_is_counted(store: IncidentStore) -> None:
    apply(store, alarm(message_key="evt-1"))

    result = apply(store, alarm(message_key="evt-2"), check_duplicate=True)

    assert result.duplicates == 0
    assert one(result).trigger_count == 2


# --- cancels ------------------------------------------------------------------------------------


def test_a_cancel_within_the_window_resolves_the_incident_as_cancelled_by_the_resident(
    store: IncidentStore, clock: FakeClock
) -> None:
    opened = one(apply(store, alarm()))
    cancelled_at = clock.advance(20)

    cancelled = one(apply(store, cancel(cancelled_at, triggered_after=cancelled_at - timedelta(seconds=60))))

    assert cancelled.id == opened.id
    assert cancelled.status == IncidentStatus.RESOLVED
    assert cancelled.outcome == Outcome.CANCELLED_BY_RESIDENT
    assert cancelled.resolved_by == "resident:wang"
    assert cancelled.resolved_at == cancelled_at
    assert actions(store, opened.id) == ["incident.opened", "incident.cancelled"]


def test_a_cancel_outside_the_window_leaves_the_incident_open_and_is_audited(
    store: IncidentStore, clock: FakeClock
) -> None:
    opened = one(apply(store, alarm()))
    late = clock.advance(120)

    result = apply(store, cancel(late, triggered_after=late - timedelta(seconds=60)))

    assert one(result).status == IncidentStatus.OPEN
    assert store.incident(opened.id).status == IncidentStatus.OPEN
    assert store.incident(opened.id).outcome is None
    assert actions(store, opened.id) == ["incident.opened", "incident.cancel_ignored"]
    ignored = store.audit_trail(opened.id)[-1]
    assert ignored.actor == "resident:wang"
    assert ignored.details["why"] == "outside the cancel window"


@pytest.mark.parametrize(
    ("source", "accepted"),
    [
        ({"device": "radar-bedroom", "device_type": DeviceType.FALL_SENSOR}, True),
        ({"device": "radar-hall", "device_type": DeviceType.FALL_SENSOR}, True),  # joined the incident
        ({"device": "pendant-wang", "device_type": DeviceType.SOS_BUTTON}, True),  # the resident's own
        ({"device": "radar-bathroom", "device_type": DeviceType.FALL_SENSOR}, False),
        ({"device": "pendant-li", "device_type": DeviceType.SOS_BUTTON, "resident": "li"}, False),
        ({"device": "door-101", "device_type": DeviceType.DOOR_SENSOR}, False),
    ],
)
def test_only_the_device_that_raised_the_fall_or_the_residents_pendant_may_cancel_it(
    store: IncidentStore, clock: FakeClock, source: dict[str, Any], accepted: bool
) -> None:
    opened = one(apply(store, fall_from("radar-bedroom")))
    apply(store, fall_from("radar-hall", at=clock.advance(2)))
    at = clock.advance(10)

    after = one(apply(store, cancel(at, triggered_after=at - timedelta(seconds=60), **source)))

    assert after.id == opened.id
    if accepted:
        assert (after.status, after.outcome) == (IncidentStatus.RESOLVED, Outcome.CANCELLED_BY_RESIDENT)
        assert actions(store, opened.id)[-1] == "incident.cancelled"
    else:
        assert (after.status, after.outcome) == (IncidentStatus.OPEN, None)
        refused = store.audit_trail(opened.id)[-1]
        assert (refused.action, refused.actor) == ("incident.cancel_refused", f"device:{source['device']}")


def test_a_cancel_with_nothing_open_changes_nothing_but_is_audited(store: IncidentStore) -> None:
    result = apply(store, cancel(START, triggered_after=START - timedelta(seconds=60)))

    assert result.changed == []
    assert actions(store) == ["incident.cancel_ignored"]


# --- operators ----------------------------------------------------------------------------------


def test_acknowledging_is_idempotent(store: IncidentStore, clock: FakeClock) -> None:
    opened = one(apply(store, alarm()))
    first_ack_at = clock.advance(30)

    first = store.acknowledge(opened.id, "user:alice")
    clock.advance(30)
    second = store.acknowledge(opened.id, "user:bob")

    assert first.status == second.status == IncidentStatus.ACKNOWLEDGED
    assert second.acknowledged_at == first_ack_at
    assert second.acknowledged_by == "user:alice"
    assert actions(store, opened.id) == ["incident.opened", "incident.acknowledged"]


def test_acknowledging_a_resolved_incident_is_a_conflict(store: IncidentStore) -> None:
    opened = one(apply(store, alarm()))
    store.resolve(opened.id, "user:alice", Outcome.FALSE_ALARM, "pressed by mistake")

    with pytest.raises(IncidentConflictError):
        store.acknowledge(opened.id, "user:bob")
    assert store.incident(opened.id).status == IncidentStatus.RESOLVED


def test_a_late_acknowledgement_is_kept_in_the_audit_trail(store: IncidentStore) -> None:
    opened = one(apply(store, alarm()))
    store.resolve(opened.id, "user:alice", Outcome.FALSE_ALARM, "pressed by mistake")

    with pytest.raises(IncidentConflictError):
        store.acknowledge(opened.id, "user:bob")

    assert actions(store, opened.id)[-1] == "incident.late_ack"


def test_resolving_an_open_incident_counts_as_acknowledging_it(
    store: IncidentStore, clock: FakeClock
) -> None:
    opened = one(apply(store, alarm()))
    resolved_at = clock.advance(90)

    resolved = store.resolve(opened.id, "user:alice", Outcome.ASSISTED_ON_SITE, "helped up")

    assert resolved.status == IncidentStatus.RESOLVED
    assert resolved.acknowledged_at == resolved.resolved_at == resolved_at
    assert resolved.acknowledged_by == resolved.resolved_by == "user:alice"
    assert resolved.outcome == Outcome.ASSISTED_ON_SITE
    assert resolved.note == "helped up"
    assert actions(store, opened.id) == ["incident.opened", "incident.resolved"]


def test_resolving_keeps_an_earlier_acknowledgement(store: IncidentStore, clock: FakeClock) -> None:
    opened = one(apply(store, alarm()))
    acked_at = clock.advance(10)
    store.acknowledge(opened.id, "user:alice")
    clock.advance(60)

    resolved = store.resolve(opened.id, "user:bob", Outcome.ASSISTED_ON_SITE, "")

    assert resolved.acknowledged_at == acked_at
    assert resolved.acknowledged_by == "user:alice"
    assert resolved.resolved_by == "user:bob"


def test_resolving_twice_is_a_conflict(store: IncidentStore) -> None:
    opened = one(apply(store, alarm()))
    store.resolve(opened.id, "user:alice", Outcome.FALSE_ALARM, "")

    with pytest.raises(IncidentConflictError):
        store.resolve(opened.id, "user:bob", Outcome.OTHER, "again")
    assert store.incident(opened.id).resolved_by == "user:alice"


def test_an_unknown_incident_is_not_found(store: IncidentStore) -> None:
    with pytest.raises(IncidentNotFoundError):
        store.acknowledge(4242, "user:alice")
    with pytest.raises(IncidentNotFoundError):
        store.resolve(4242, "user:alice", Outcome.OTHER, "")
    with pytest.raises(IncidentNotFoundError):
        store.incident(4242)


# --- dead letters -------------------------------------------------------------------------------


def test_dead_letters_are_stored_with_topic_payload_and_reason_and_counted(store: IncidentStore) -> None:
    raw = RawMessage("careline/sunrise/ghost/alarm", b"\xff not json", START, Lane.ALARM)
    other = RawMessage("zigbee2mqtt/nobody", b"{}", START, Lane.TELEMETRY)

    store.apply(AlarmBatch(dead_letters=[(raw, "not JSON", None), (other, "unknown device", "nobody")]))

    assert store.dead_letter_count() == 2
    newest, oldest = store.dead_letters()
    assert (oldest.topic, oldest.payload, oldest.reason, oldest.lane) == (
        "careline/sunrise/ghost/alarm",
        b"\xff not json",
        "not JSON",
        "alarm",
    )
    assert oldest.received_at == START
    assert (newest.topic, newest.reason, newest.device_id) == (
        "zigbee2mqtt/nobody",
        "unknown device",
        "nobody",
    )


def test_a_dead_letter_keeps_a_bounded_prefix_of_its_payload_and_the_real_size(
    store: IncidentStore, db_path: Path
) -> None:
    """13 messages of 9 MB once filled a 120 MB volume: each was kept whole."""
    huge = b"x" * (9 * 1024 * 1024)
    letters = [
        (RawMessage("careline/sunrise/pendant-wang/alarm", huge, START, Lane.ALARM), "too large", None)
        for _ in range(13)
    ]
    store.apply(AlarmBatch(dead_letters=letters))

    kept = store.dead_letters()
    assert len(kept) == 13
    assert {(len(row.payload), row.payload_size) for row in kept} == {(4096, 9 * 1024 * 1024)}
    if POSTGRESQL:
        (on_disk,) = store_rows(store_url(db_path), "SELECT pg_total_relation_size('dead_letters')")[0]
    else:
        on_disk = db_path.stat().st_size + db_path.with_name(db_path.name + "-wal").stat().st_size
    assert on_disk < 1024 * 1024


def test_each_lane_keeps_its_newest_dead_letters_up_to_the_cap_and_the_deletions_are_told(
    engine: Engine, clock: FakeClock
) -> None:
    evicted: list[tuple[str, int]] = []
    store = IncidentStore(
        engine, Directory(CONFIG), clock.now, dead_letters_max=100, on_evicted=lambda *e: evicted.append(e)
    )

    def letter(lane: Lane, n: int) -> tuple[RawMessage, str, str | None]:
        return RawMessage(f"t/{n}", b"bad", START, lane), "bad", None

    store.apply(AlarmBatch(dead_letters=[letter(Lane.ALARM, n) for n in range(5)]))
    for start in range(0, 300, 60):
        store.apply(AlarmBatch(dead_letters=[letter(Lane.TELEMETRY, n) for n in range(start, start + 60)]))

    rows = store.dead_letters(limit=1000)
    telemetry = [row.topic for row in rows if row.lane == "telemetry"]
    # A flood of bad telemetry cannot push out the alarm lane's dead letters.
    assert [row.topic for row in rows if row.lane == "alarm"] == [f"t/{n}" for n in reversed(range(5))]
    assert telemetry == [f"t/{n}" for n in reversed(range(200, 300))]
    assert evicted == [("telemetry", 20), ("telemetry", 60), ("telemetry", 60), ("telemetry", 60)]


def test_alarm_events_are_recorded_for_every_trigger(store: IncidentStore, engine: Engine) -> None:
    opened = one(apply(store, alarm(message_key="evt-1")))
    apply(store, alarm(message_key="evt-2"))

    with engine.connect() as connection:
        rows = connection.execute(
            select(AlarmEvent.message_key, AlarmEvent.effect).where(AlarmEvent.incident_id == opened.id)
        ).all()
    assert [tuple(row) for row in rows] == [("evt-1", "opened"), ("evt-2", "joined")]


# --- the audit trail ----------------------------------------------------------------------------


def _busy_store(store: IncidentStore, clock: FakeClock) -> int:
    opened = one(apply(store, alarm()))
    clock.advance(5)
    apply(store, alarm())
    clock.advance(5)
    store.acknowledge(opened.id, "user:alice")
    clock.advance(5)
    store.resolve(opened.id, "user:alice", Outcome.ASSISTED_ON_SITE, "ok")
    return opened.id


def test_an_intact_audit_chain_verifies(store: IncidentStore, clock: FakeClock) -> None:
    _busy_store(store, clock)

    assert len(store.audit_trail()) == 4
    assert store.verify_audit_chain() is None


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET actor = 'user:mallory' WHERE id = 2", "DELETE FROM audit_log WHERE id = 2"],
    ids=["update", "delete"],
)
def test_the_database_refuses_to_change_or_delete_audit_rows(
    store: IncidentStore, clock: FakeClock, db_path: Path, statement: str
) -> None:
    _busy_store(store, clock)

    with pytest.raises(DBAPIError, match="append-only"):
        store_execute(store_url(db_path), statement)
    assert [entry.actor for entry in store.audit_trail()][1] == "device:pendant-wang"
    assert len(store.audit_trail()) == 4


def test_an_edited_audit_row_is_found_by_verifying_the_chain(
    store: IncidentStore, clock: FakeClock, db_path: Path
) -> None:
    _busy_store(store, clock)
    tampered = store.audit_trail()[2].id

    url = store_url(db_path)
    disable_append_only(url)
    store_execute(url, "UPDATE audit_log SET actor = 'user:mallory' WHERE id = :id", id=tampered)

    assert store.verify_audit_chain() == tampered


def test_a_deleted_audit_row_is_found_by_verifying_the_chain(
    store: IncidentStore, clock: FakeClock, db_path: Path
) -> None:
    _busy_store(store, clock)
    entries = store.audit_trail()

    url = store_url(db_path)
    disable_append_only(url)
    store_execute(url, "DELETE FROM audit_log WHERE id = :id", id=entries[1].id)

    assert store.verify_audit_chain() == entries[2].id


def test_a_new_store_on_the_same_database_continues_the_chain(
    store: IncidentStore, engine: Engine, clock: FakeClock
) -> None:
    _busy_store(store, clock)

    restarted = IncidentStore(engine, Directory(CONFIG), clock.now)
    apply(restarted, alarm(at=clock.advance(60)))

    assert len(restarted.audit_trail()) == 5
    assert restarted.verify_audit_chain() is None


# --- the schema ---------------------------------------------------------------------------------


def test_the_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_the_migration_creates_the_append_only_triggers(db_path: Path, engine: Engine) -> None:
    url = store_url(db_path)
    if POSTGRESQL:
        triggers = {
            row[0]
            for row in store_rows(
                url,
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass AND NOT tgisinternal",
            )
        }
        assert triggers == {"audit_log_append_only"}
    else:
        triggers = {row[0] for row in store_rows(url, "SELECT name FROM sqlite_master WHERE type='trigger'")}
        assert {"audit_log_no_update", "audit_log_no_delete"} <= triggers


def test_the_writer_serves_a_queued_alarm_before_queued_bookkeeping() -> None:
    import threading

    from gateway.incidents.writer import ALARM, BOOKKEEPING, PriorityWriter

    writer = PriorityWriter("test-writer")
    writer.start()
    gate, order = threading.Event(), []
    writer.submit(gate.wait, BOOKKEEPING)  # occupies the thread while the others queue up
    later = [writer.submit(lambda n=n: order.append(f"bookkeeping-{n}"), BOOKKEEPING) for n in range(3)]
    alarm = writer.submit(lambda: order.append("alarm"), ALARM)
    gate.set()
    alarm.result(5)
    for future in later:
        future.result(5)
    writer.shutdown()
    assert order == ["alarm", "bookkeeping-0", "bookkeeping-1", "bookkeeping-2"]


def test_a_press_finds_its_open_incident_through_the_key_index(engine: Engine) -> None:
    """The alarm path looks up the open incident under a key on every press; it must be an index search
    on the key (the partial unique index), not a search of every open incident."""
    query = select(Incident).where(*under_key("sos:night:resident:li"))
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        if POSTGRESQL:
            # An empty table is read whole whatever the indexes; with sequential scans priced out the
            # plan shows whether the partial index answers this query at all (its predicate matches).
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = " ".join(str(row[0]) for row in connection.exec_driver_sql(f"EXPLAIN {sql}"))
            assert "Index Scan using uq_incidents_active_key" in plan, plan
            assert "Index Cond: ((key)::text = 'sos:night:resident:li'::text)" in plan, plan
            return
        plan = " ".join(str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
    assert "USING INDEX uq_incidents_active_key (key=?)" in plan, plan
