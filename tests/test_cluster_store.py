"""What several gateway instances share through the store, instance by instance (docs/scaling.md).

Two `IncidentStore`s on one database stand for two instances. The tests of concurrent writers run on
PostgreSQL whatever backend the suite uses (several instances need PostgreSQL); the rest run on the
suite's backend.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cluster_fixtures import cluster_database
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from stores import store_url

from devices.model import DeviceEvent, DeviceType, EventKind
from gateway.clock import FakeClock
from gateway.config import CarelineConfig
from gateway.directory import Directory
from gateway.escalation.store import EscalationStore, PlannedNotification
from gateway.incidents import changes
from gateway.incidents.audit import AUDIT_TAIL_LOCK
from gateway.incidents.db import make_engine
from gateway.incidents.migrate import upgrade
from gateway.incidents.schema import AuditEntry, Escalation, Incident, Notification
from gateway.incidents.store import AlarmBatch, IncidentStore, RuledDecision
from rules.model import AlarmDecision, Severity

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
CONFIG = CarelineConfig.model_validate(
    {
        "sites": [{"id": "sunrise", "name": "Sunrise", "rooms": [{"id": f"r{n}"} for n in range(50)]}],
        "residents": [
            {"id": f"res{n}", "name": f"Resident {n}", "site": "sunrise", "room": f"r{n}"} for n in range(50)
        ],
        "responders": [{"id": "carer", "name": "Carer", "phone": "+8613800000001", "roles": ["carer"]}],
        "escalation": {
            "policies": [
                {
                    "id": "all",
                    "repeat": "stop",
                    "tiers": [{"targets": [{"role": "carer"}], "channels": ["sms"], "wait_s": 60}],
                }
            ],
        },
    }
)


def press(n: int, *, key: str | None = None, message_key: str | None = None) -> AlarmDecision:
    event = DeviceEvent(
        device_id=f"pendant{n}",
        device_type=DeviceType.SOS_BUTTON,
        site="sunrise",
        room=f"r{n}",
        resident=f"res{n}",
        kind=EventKind.SOS,
        value=None,
        ts=START,
        received_at=START,
        message_key=message_key or f"careline:pendant{n}:{threading.get_ident()}:{n}",
    )
    return AlarmDecision("sos", Severity.CRITICAL, key or f"sos:sunrise:res{n}", event, {})


def timer_decision(n: int, at: datetime) -> AlarmDecision:
    """A wellbeing timer's decision as each instance makes it: its own tick time in its message key."""
    decision = press(
        n, key=f"inactivity:sunrise:res{n}", message_key=f"rule:inactivity:res{n}:{at.isoformat()}"
    )
    return AlarmDecision("inactivity", Severity.HIGH, decision.incident_key, decision.event, {})


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(store_url(tmp_path / "careline.db"))
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres() -> Iterator[Engine]:
    with cluster_database() as url:
        engine = make_engine(url)
        upgrade(engine)
        yield engine
        engine.dispose()


def instance(engine: Engine, name: str) -> IncidentStore:
    return IncidentStore(engine, Directory(CONFIG), FakeClock(START).now, instance=name)


def test_a_replicated_decision_counts_once_whichever_instance_commits_first(engine: Engine) -> None:
    a, b = instance(engine, "gw-a"), instance(engine, "gw-b")
    from_event = press(1, key="vitals:sunrise:res1", message_key="zigbee:bed-1:abc")
    tick_a, tick_b = timer_decision(2, START), timer_decision(2, START + timedelta(seconds=0.7))
    first = a.apply(AlarmBatch([RuledDecision(d, False, replicated=True) for d in (from_event, tick_a)]))
    second = b.apply(AlarmBatch([RuledDecision(d, False, replicated=True) for d in (from_event, tick_b)]))
    assert (first.opened, first.duplicates) == (2, 0)
    assert (second.opened, second.duplicates, second.changed) == (0, 2, [])
    with a.reading() as session:
        assert sorted(i.trigger_count for i in session.scalars(select(Incident))) == [1, 1]


def test_the_same_decision_not_replicated_still_joins_the_open_incident(engine: Engine) -> None:
    """One instance alone: a second reading out of range joins the incident (counted), as before."""
    store = instance(engine, "gw-a")
    store.apply(AlarmBatch([RuledDecision(timer_decision(3, START), False)]))
    later = store.apply(AlarmBatch([RuledDecision(timer_decision(3, START + timedelta(minutes=5)), False)]))
    assert [view.trigger_count for view in later.changed] == [2]


def test_a_commit_tells_every_instance_which_incidents_changed(postgres: Engine) -> None:
    import psycopg

    url = postgres.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as listener:
        listener.execute(f"LISTEN {changes.CHANNEL}")
        result = instance(postgres, "gw-a").apply(
            AlarmBatch([RuledDecision(press(n), False) for n in range(3)])
        )
        received = [changes.parse(n.payload) for n in listener.notifies(timeout=5, stop_after=1)]
    assert received == [changes.Change("gw-a", tuple(v.id for v in result.changed), ())]


def test_a_rolled_back_transaction_tells_nobody(postgres: Engine) -> None:
    import psycopg

    url = postgres.url.set(drivername="postgresql").render_as_string(hide_password=False)
    store = instance(postgres, "gw-a")
    with psycopg.connect(url, autocommit=True) as listener:
        listener.execute(f"LISTEN {changes.CHANNEL}")
        with pytest.raises(RuntimeError, match="never happens"):
            _add_and_fail(store)
        assert list(listener.notifies(timeout=1, stop_after=1)) == []


def _add_and_fail(store: IncidentStore) -> None:
    with store.transaction() as session:
        session.add(Incident(**_incident_fields("sos:sunrise:res9")))
        session.flush()
        raise RuntimeError("the commit never happens")


def _incident_fields(key: str) -> dict[str, object]:
    return {
        "key": key,
        "rule": "sos",
        "severity": "critical",
        "status": "open",
        "site": "sunrise",
        "device_id": "pendant9",
        "opened_at": START,
        "last_triggered_at": START,
        "trigger_count": 1,
        "evidence": {},
    }


def test_the_same_key_pressed_on_two_instances_at_once_is_one_incident(postgres: Engine) -> None:
    """Both look, find nothing, insert: the unique index refuses the second, which looks again and
    joins the first. Run many times over, so the race is really met."""
    a, b = instance(postgres, "gw-a"), instance(postgres, "gw-b")
    for n in range(30):
        barrier = threading.Barrier(2)

        def on(store: IncidentStore, n: int = n, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            store.apply(AlarmBatch([RuledDecision(press(n % 50, key=f"sos:race:{n}"), False)]))

        threads = [threading.Thread(target=on, args=(store,)) for store in (a, b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    with a.reading() as session:
        counts = {i.key: i.trigger_count for i in session.scalars(select(Incident))}
    assert counts == {f"sos:race:{n}": 2 for n in range(30)}


def test_the_audit_chain_stays_one_chain_with_two_instances_writing_at_once(postgres: Engine) -> None:
    a, b = instance(postgres, "gw-a"), instance(postgres, "gw-b")

    def presses(store: IncidentStore, offset: int) -> None:
        for n in range(40):
            store.apply(AlarmBatch([RuledDecision(press(n % 50, key=f"sos:{offset}:{n}"), False)]))

    threads = [threading.Thread(target=presses, args=(s, o)) for s, o in ((a, 0), (b, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    chain = a.audit_chain()
    assert chain.intact, chain
    with a.reading() as session:
        assert len(session.scalars(select(AuditEntry)).all()) >= 80


def test_a_due_step_is_claimed_by_one_instance_only(postgres: Engine) -> None:
    a, b = instance(postgres, "gw-a"), instance(postgres, "gw-b")
    a.apply(AlarmBatch([RuledDecision(press(n), False) for n in range(50)]))
    stores = [EscalationStore(a, CONFIG), EscalationStore(b, CONFIG)]
    claimed: dict[str, list[int]] = {}
    barrier = threading.Barrier(2)

    def claim(name: str, escalations: EscalationStore) -> None:
        barrier.wait()
        planned: list[int] = []
        while batch := escalations.claim_due(START + timedelta(seconds=1)):
            planned += [p.incident_id for p in batch]
        claimed[name] = planned

    threads = [threading.Thread(target=claim, args=(n, s)) for n, s in zip(("a", "b"), stores, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = claimed["a"] + claimed["b"]
    assert sorted(every) == sorted(set(every))
    assert len(every) == 50
    with a.reading() as session:
        owners = {row.incident_id: row.owner for row in session.scalars(select(Notification))}
    assert {owners[i] for i in claimed["a"]} <= {"gw-a"}
    assert {owners[i] for i in claimed["b"]} <= {"gw-b"}


def test_an_escalation_claim_locks_the_audit_chain_only_for_its_commit(
    postgres: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chain's lock serialises every instance's writer: a claim stepping many escalations must not
    hold it from its first step's audit row on, or the other instances' alarms wait for all its steps."""
    a = instance(postgres, "gw-a")
    a.apply(AlarmBatch([RuledDecision(press(n), False) for n in range(3)]))
    escalations = EscalationStore(a, CONFIG)
    step = escalations._step
    held_at_steps: list[bool] = []

    def watched(session: Session, escalation: Escalation, now: datetime) -> list[PlannedNotification]:
        with postgres.connect() as other:
            free = other.scalar(select(func.pg_try_advisory_xact_lock(AUDIT_TAIL_LOCK)))
            other.rollback()
        held_at_steps.append(not free)
        return step(session, escalation, now)

    monkeypatch.setattr(escalations, "_step", watched)
    planned = escalations.claim_due(START + timedelta(seconds=1))
    assert len(planned) == 3
    assert held_at_steps == [False, False, False]
    chain = a.audit_chain()
    assert chain.intact, chain
    with a.reading() as session:
        tiers = session.scalars(select(AuditEntry).where(AuditEntry.action == "escalation.tier")).all()
    assert len(tiers) == 3


def test_a_dead_instances_unsent_notifications_are_taken_over_once_and_marked_in_doubt(
    postgres: Engine,
) -> None:
    a, b, c = (instance(postgres, name) for name in ("gw-a", "gw-b", "gw-c"))
    a.apply(AlarmBatch([RuledDecision(press(n), False) for n in range(5)]))
    planned = EscalationStore(a, CONFIG).claim_due(START + timedelta(seconds=1))
    assert len(planned) == 5  # and then gw-a died before sending any of them
    takers = {"b": EscalationStore(b, CONFIG), "c": EscalationStore(c, CONFIG)}
    taken = {name: s.take_over(START + timedelta(seconds=20), ["gw-a"]) for name, s in takers.items()}
    assert sorted(p.notification_id for p in taken["b"] + taken["c"]) == sorted(
        p.notification_id for p in planned
    )
    assert all(p.in_doubt for p in taken["b"] + taken["c"])
    with b.reading() as session:
        actions = [
            e.action for e in session.scalars(select(AuditEntry)) if e.action.startswith("notification.")
        ]
    assert actions.count("notification.in_doubt") == 5
    assert actions.count("notification.taken_over") == 5


def door(kind: EventKind, at: datetime, device: str = "door-r1") -> DeviceEvent:
    return DeviceEvent(
        device_id=device,
        device_type=DeviceType.DOOR_SENSOR,
        site="sunrise",
        room="r1",
        resident=None,
        kind=kind,
        value=None,
        ts=at,
        received_at=at,
        message_key=f"careline:{device}:{kind.value}:{at.isoformat()}",
    )


def door_alarm(rule: str, opening: DeviceEvent) -> RuledDecision:
    key = f"{rule}:sunrise:{opening.device_id}"
    return RuledDecision(AlarmDecision(rule, Severity.MEDIUM, key, opening, {}), False)


def test_a_door_another_instance_saw_close_is_not_reported_left_open(engine: Engine) -> None:
    a, b = instance(engine, "gw-a"), instance(engine, "gw-b")
    opened = door(EventKind.DOOR_OPEN, START)
    a.record_doors([opened])
    b.record_doors([door(EventKind.DOOR_CLOSED, START + timedelta(minutes=2))])
    # A never heard the close: its timer comes due ten minutes after the opening.
    late = a.apply(AlarmBatch([door_alarm("door_left_open", opened)]))
    assert (late.opened, late.duplicates) == (0, 1)


def test_a_door_still_open_is_reported_once_whichever_instance_times_it(engine: Engine) -> None:
    a, b = instance(engine, "gw-a"), instance(engine, "gw-b")
    opened, repeated = (
        door(EventKind.DOOR_OPEN, START),
        door(EventKind.DOOR_OPEN, START + timedelta(minutes=1)),
    )
    a.record_doors([opened])
    b.record_doors([repeated])  # Zigbee2MQTT repeats "open" in its periodic report
    first = a.apply(AlarmBatch([door_alarm("door_left_open", opened)]))
    second = b.apply(AlarmBatch([door_alarm("door_left_open", repeated)]))
    assert (first.opened, second.opened, second.duplicates) == (1, 0, 1)


def test_a_repeated_open_report_is_not_a_new_opening_at_night(engine: Engine) -> None:
    a, b = instance(engine, "gw-a"), instance(engine, "gw-b")
    opened, repeated = (
        door(EventKind.DOOR_OPEN, START),
        door(EventKind.DOOR_OPEN, START + timedelta(minutes=1)),
    )
    first = a.apply(AlarmBatch([door_alarm("door_night", opened)]))
    a.record_doors([opened])
    second = b.apply(AlarmBatch([door_alarm("door_night", repeated)]))
    b.record_doors([repeated])
    assert (first.opened, second.opened, second.duplicates) == (1, 0, 1)
    # Closed, then opened again: a new opening, reported.
    a.record_doors([door(EventKind.DOOR_CLOSED, START + timedelta(minutes=2))])
    again = door(EventKind.DOOR_OPEN, START + timedelta(minutes=3))
    third = b.apply(AlarmBatch([door_alarm("door_night", again)]))
    assert (third.duplicates, [v.trigger_count for v in third.changed]) == (0, [2])


def test_a_door_report_delivered_late_changes_nothing(engine: Engine) -> None:
    a, b = instance(engine, "gw-a"), instance(engine, "gw-b")
    opened = door(EventKind.DOOR_OPEN, START)
    a.record_doors([door(EventKind.DOOR_CLOSED, START + timedelta(minutes=2))])
    b.record_doors([opened])  # older than the close A recorded
    timed = b.apply(AlarmBatch([door_alarm("door_left_open", opened)]))
    assert timed.opened == 0


def test_without_recorded_reports_a_door_rule_is_believed(engine: Engine) -> None:
    """One instance alone records nothing: its rules' memory is the whole truth."""
    result = instance(engine, "gw-a").apply(
        AlarmBatch([door_alarm("door_left_open", door(EventKind.DOOR_OPEN, START))])
    )
    assert result.opened == 1


def test_each_instance_keeps_and_restores_its_own_rules_state(engine: Engine) -> None:
    from gateway.rule_state import ALARM, TELEMETRY, load_rule_state, save_rule_state

    store = instance(engine, "gw-a")
    save_rule_state(store, {ALARM: '{"single": 1}', TELEMETRY: '{"single": 2}'}, START)  # one gateway, before
    save_rule_state(store, {ALARM: '{"a": 1}'}, START, "gw-a")
    save_rule_state(store, {ALARM: '{"b": 1}', TELEMETRY: '{"b": 2}'}, START, "gw-b")
    assert load_rule_state(store, "gw-a") == {ALARM: '{"a": 1}', TELEMETRY: '{"single": 2}'}
    assert load_rule_state(store, "gw-b") == {ALARM: '{"b": 1}', TELEMETRY: '{"b": 2}'}
    assert load_rule_state(store, "gw-new") == {ALARM: '{"single": 1}', TELEMETRY: '{"single": 2}'}
    assert load_rule_state(store) == {ALARM: '{"single": 1}', TELEMETRY: '{"single": 2}'}


def test_consoles_open_on_one_instance_are_counted_by_the_others(postgres: Engine) -> None:
    """The duty watch of gw-b must not call a site unstaffed when its operator's screen is on gw-a."""
    from gateway.cluster import beat, leave, register, survey
    from gateway.duty import ConsoleSeat

    a, b = instance(postgres, "gw-a"), instance(postgres, "gw-b")
    register(a, "gw-a", "gw-a-alarm")
    register(b, "gw-b", "gw-b-alarm")
    beat(a, "gw-a", [ConsoleSeat("night-operator", frozenset({"sunrise"})), ConsoleSeat("manager", None)])
    seen = survey(b, "gw-b", timeout_s=10)
    assert set(seen.peer_seats) == {
        ConsoleSeat("night-operator", frozenset({"sunrise"})),
        ConsoleSeat("manager", None),
    }
    assert (seen.alive, seen.adopted) == (2, ())
    # Gone (a clean stop here): its consoles no longer count, and gw-b adopts it.
    leave(a, "gw-a")
    after = survey(b, "gw-b", timeout_s=10)
    assert (after.peer_seats, after.adopted, after.alive) == ((), ("gw-a",), 1)
    # Back: gw-b lets go of it at its next look.
    register(a, "gw-a", "gw-a-alarm")
    assert survey(b, "gw-b", timeout_s=10).adopted == ()


def test_two_survivors_never_both_adopt_one_dead_instance(postgres: Engine) -> None:
    from gateway.cluster import leave, register, survey

    stores = {name: instance(postgres, name) for name in ("gw-a", "gw-b", "gw-c")}
    for name, store in stores.items():
        register(store, name, f"{name}-alarm")
    leave(stores["gw-a"], "gw-a")
    barrier = threading.Barrier(2)
    found: dict[str, tuple[str, ...]] = {}

    def look(name: str) -> None:
        barrier.wait()
        found[name] = survey(stores[name], name, timeout_s=10).adopted

    threads = [threading.Thread(target=look, args=(name,)) for name in ("gw-b", "gw-c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(found.values()) == [(), ("gw-a",)]


def test_every_instances_wellbeing_rules_hear_the_alarm_topics_too() -> None:
    """Each alarm reaches one instance, but a door opening is a sign of life for every instance's
    inactivity rule: with a cluster the telemetry lane hears the native alarm topics, unshared."""
    from gateway.directory import telemetry_lane_topics

    alone = CarelineConfig.model_validate({})
    shared = CarelineConfig.model_validate(
        {
            "broker": {"url": "mqtt://127.0.0.1:1883"},
            "storage": {"url": "postgresql://careline@127.0.0.1/careline"},
            "cluster": {"share_group": "careline"},
        }
    )
    assert telemetry_lane_topics(alone) == ["careline/+/+/telemetry", "zigbee2mqtt/#"]
    assert telemetry_lane_topics(shared) == ["careline/+/+/telemetry", "zigbee2mqtt/#", "careline/+/+/alarm"]
