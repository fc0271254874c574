"""Rule state across a restart, on pure rules and explicit times: a scripted day and night is played
straight through and again with the gateway "restarted" (fresh rules, restored from a JSON snapshot) at
many points; the decisions must be the same. Sites run on Asia/Shanghai (UTC+8)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from test_rules import config as door_config
from test_wellbeing_support import careline, event, local, motion, wellbeing

from devices.model import DeviceEvent, DeviceType, EventKind
from gateway.directory import active_devices, rule_context
from gateway.metrics import Metrics
from gateway.rule_state import count_restore
from gateway.telemetry_lane import DeviceHealth
from rules import AlarmDecision, Decision, DoorAtNightRule, DoorLeftOpenRule, Rule, RuleEngine
from rules.state import FORMAT, parsed, restore_rules, snapshot_rules
from rules.wellbeing import ActivityBaselineRule, InactivityRule, wellbeing_rules

Step = tuple[datetime, DeviceEvent | None]  # an event, or a tick (None)
RulesAt = Callable[[datetime], list[Rule]]

CONFIG = wellbeing(
    {
        "inactivity": {"hours": 4},
        "check_in": {"enabled": True, "by": "10:00"},
        "vitals": {"for_s": 120},
        "residents": {"li": {"baseline": {"enabled": False}}, "zhang": {"baseline": {"enabled": False}}},
    }
)
#: Wang's usual mornings: 5 signs of life an hour from 08:00 to 12:00, for ten days.
USUAL = np.zeros((10, 24))
USUAL[:, 8:12] = 5.0


def wellbeing_at(start: datetime) -> list[Rule]:
    config = careline()
    rules = wellbeing_rules(rule_context(config), CONFIG, start, devices=active_devices(config))
    baseline = next(rule for rule in rules if isinstance(rule, ActivityBaselineRule))
    baseline.seed("wang", USUAL)
    return rules


def doors_at(start: datetime) -> list[Rule]:
    context = rule_context(door_config())
    return [DoorAtNightRule(context), DoorLeftOpenRule(context)]


def ticks(start: datetime, end: datetime, every: timedelta) -> list[Step]:
    steps: list[Step] = []
    while start <= end:
        steps.append((start, None))
        start += every
    return steps


def script(*events: DeviceEvent, start: datetime, end: datetime, every_min: int = 15) -> list[Step]:
    steps = ticks(start, end, timedelta(minutes=every_min)) + [(e.received_at, e) for e in events]
    return sorted(steps, key=lambda step: (step[0], step[1] is None))


Outcome = list[tuple[str, str, datetime, dict[str, Any]]]


def outcome(decisions: Sequence[Decision], at: datetime) -> Outcome:
    """The alarms decided at `at`: rule, incident key, when, evidence."""
    alarms = [d for d in decisions if isinstance(d, AlarmDecision)]
    # A spell that spans the restart says so; everything else must be the same.
    return [(a.rule, a.incident_key, at, _without(a.evidence, "gateway_restarted_at")) for a in alarms]


def _without(evidence: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in evidence.items() if k != key}


def play(
    rules_at: RulesAt, steps: list[Step], restart_before: int | None = None, *, restore: bool = True
) -> Outcome:
    """Decisions of `steps`, with the gateway restarted before step `restart_before` (its snapshot taken
    then and, if `restore`, given to the new rules after a round trip through JSON text)."""
    engine = RuleEngine(rules_at(steps[0][0]))
    decided: Outcome = []
    for index, (at, happening) in enumerate(steps):
        if index == restart_before:
            snapshot = json.loads(json.dumps(snapshot_rules(engine.rules, at)))
            engine = RuleEngine(rules_at(at))
            if restore:
                report = restore_rules(engine.rules, snapshot, at)
                assert report.ignored == {}
        decided += outcome(engine.tick(at) if happening is None else engine.handle(happening, at), at)
    return decided


def heart_rate(at: datetime, bpm: float) -> DeviceEvent:
    return event(
        EventKind.HEART_RATE, at, device="watch-wang", device_type=DeviceType.VITALS_MONITOR,
        room=None, resident="wang", value=bpm,
    )  # fmt: skip


def battery(at: datetime, percent: float) -> DeviceEvent:
    return event(
        EventKind.BATTERY, at, device="watch-wang", device_type=DeviceType.VITALS_MONITOR,
        room=None, resident="wang", value=percent,
    )  # fmt: skip


def bed(at: datetime, occupied: bool) -> DeviceEvent:
    return event(
        EventKind.BED_OCCUPIED, at, device="bed-wang", device_type=DeviceType.BED_SENSOR,
        room=None, resident="wang", value=occupied,
    )  # fmt: skip


def door(kind: EventKind, at: datetime) -> DeviceEvent:
    return event(kind, at, device="door-101", device_type=DeviceType.DOOR_SENSOR)


# --- the same decisions with and without a restart -------------------------------------------------------

DAY_AND_NIGHT = script(
    motion(local(7)),
    battery(local(7, 30), 10),
    heart_rate(local(8), 130),
    heart_rate(local(8, 1), 131),
    heart_rate(local(8, 2, second=30), 132),
    battery(local(8, 5), 9),
    bed(local(23), True),
    bed(local(2, day=7), False),
    bed(local(2, 10, day=7), False),  # the periodic report repeats the state
    start=local(6),
    end=local(12, day=7),
)


def test_every_wellbeing_rule_decides_the_same_whether_or_not_the_gateway_restarted() -> None:
    straight = play(wellbeing_at, DAY_AND_NIGHT)
    assert {rule for rule, *_ in straight} == {
        "inactivity",
        "missed_check_in",
        "bed_exit",
        "vitals",
        "device_health",
        "activity_baseline",
    }

    for restart in range(1, len(DAY_AND_NIGHT), 3):
        assert play(wellbeing_at, DAY_AND_NIGHT, restart) == straight, f"restarted before step {restart}"


def test_without_a_restored_snapshot_a_restart_would_change_the_decisions() -> None:
    """The comparison above can fail: a restart in the vitals excursion loses its alarm, one after the
    battery alarm raises it twice, one after the bed exit loses the night's alarm."""
    straight = play(wellbeing_at, DAY_AND_NIGHT)
    restart = next(i for i, (at, e) in enumerate(DAY_AND_NIGHT) if e is not None and at == local(8, 1))

    forgotten = play(wellbeing_at, DAY_AND_NIGHT, restart + 1, restore=False)

    assert "vitals" in {r for r, *_ in straight}
    assert "vitals" not in {r for r, *_ in forgotten}
    battery_alarms = [key for rule, key, *_ in forgotten if key.endswith(":battery_low")]
    assert len(battery_alarms) == 2


def test_a_door_left_open_before_a_restart_alarms_when_it_was_first_due() -> None:
    steps = script(door(EventKind.DOOR_OPEN, local(14)), start=local(14), end=local(14, 30), every_min=1)
    restart = next(i for i, (at, _) in enumerate(steps) if at == local(14, 4))

    straight = play(doors_at, steps)
    assert [(rule, at) for rule, _, at, _ in straight] == [("door_left_open", local(14, 10))]
    assert play(doors_at, steps, restart) == straight
    assert play(doors_at, steps, restart, restore=False) == []


def test_a_door_that_came_due_while_the_gateway_was_down_alarms_at_the_first_tick() -> None:
    rules = doors_at(local(14))
    rules[1].on_event(door(EventKind.DOOR_OPEN, local(14)), local(14))
    snapshot = snapshot_rules(rules, local(14, 1))
    restarted = doors_at(local(14, 25))

    restore_rules(restarted, snapshot, local(14, 25))

    [alarm] = outcome(RuleEngine(restarted).tick(local(14, 25)), local(14, 25))
    assert alarm[1] == "door_left_open:sunrise:door-101"
    assert alarm[3]["open_minutes"] == 25.0


def test_a_door_still_open_after_a_restart_at_night_is_not_a_new_opening() -> None:
    steps = script(
        door(EventKind.DOOR_OPEN, local(2)),
        door(EventKind.DOOR_OPEN, local(2, 5)),
        start=local(2),
        end=local(2, 9),
        every_min=1,
    )
    restart = next(i for i, (at, _) in enumerate(steps) if at == local(2, 3))

    straight = play(doors_at, steps)
    assert [rule for rule, *_ in straight] == ["door_night"]
    assert play(doors_at, steps, restart) == straight
    assert [rule for rule, *_ in play(doors_at, steps, restart, restore=False)] == ["door_night"] * 2


# --- what a restored rule says, and what it keeps ----------------------------------------------------------


def test_an_inactivity_spanning_the_restart_is_timed_from_the_last_sign_before_it_and_says_so() -> None:
    before = InactivityRule(rule_context(careline()), CONFIG, local(6))
    before.on_event(motion(local(7)), local(7))
    after = InactivityRule(rule_context(careline()), CONFIG, local(9))

    restore_rules([after], snapshot_rules([before], local(8)), local(9))

    [alarm] = [
        d for d in after.on_tick(local(11)) if isinstance(d, AlarmDecision) and "wang" in d.incident_key
    ]
    assert alarm.evidence["last_sign_of_life"] == "2026-01-06T07:00:00+08:00"
    assert alarm.evidence["since_gateway_start"] is False
    assert alarm.evidence["gateway_restarted_at"] == "2026-01-06T09:00:00+08:00"


def test_a_long_restart_leaves_the_quiet_hours_it_was_down_out_of_the_activity_comparison() -> None:
    before = wellbeing_at(local(0))
    for minute in range(0, 60, 12):
        RuleEngine(before).handle(motion(local(8, minute)), local(8, minute))
    snapshot = snapshot_rules(before, local(8, 59))

    after = wellbeing_at(local(12, 30))
    restore_rules(after, snapshot, local(12, 30))
    baseline = RuleEngine([r for r in after if isinstance(r, ActivityBaselineRule)])

    # Hours 09-12 were not watched: no alarm for them, and none the hour after (13:00, 0 signs vs 5
    # is -5 standard deviations of the floor, so 14:00 would alarm if 09-12 counted as quiet).
    assert baseline.tick(local(13, 0)) == []
    assert baseline.tick(local(14, 0)) == []


def test_a_snapshot_keeps_no_state_of_a_discharged_resident_or_a_retired_device() -> None:
    config = careline()
    rules = wellbeing_rules(rule_context(config), CONFIG, local(6), devices=active_devices(config))
    engine = RuleEngine(rules)
    engine.handle(motion(local(7)), local(7))
    engine.handle(battery(local(7), 50), local(7))
    discharged = config.model_copy(
        update={
            "residents": tuple(r for r in config.residents if r.id != "wang"),
            "devices": tuple(d for d in config.devices if d.id != "watch-wang"),
        }
    )
    context = rules[0]._context  # type: ignore[attr-defined]
    context.update(discharged.sites, discharged.residents, discharged.devices, at=local(8))

    text = json.dumps(snapshot_rules(rules, local(8)))

    assert "wang" not in text.replace("motion-101", "")
    assert "watch-wang" not in text


# --- snapshots that cannot be taken back -------------------------------------------------------------------


def _inactivity_snapshot() -> dict[str, Any]:
    rule = InactivityRule(rule_context(careline()), CONFIG, local(6))
    rule.on_event(motion(local(7)), local(7))
    return snapshot_rules([rule, DoorLeftOpenRule(rule_context(careline()))], local(8))


def test_a_snapshot_of_another_version_is_ignored_and_reported_and_the_rule_starts_afresh() -> None:
    snapshot = _inactivity_snapshot()
    snapshot["rules"]["inactivity"]["version"] = 99
    rule = InactivityRule(rule_context(careline()), CONFIG, local(9))

    report = restore_rules([rule, DoorLeftOpenRule(rule_context(careline()))], snapshot, local(9))

    assert report.restored == ("door_left_open",)
    assert "version 99" in report.ignored["inactivity"]
    assert rule.last_sign_of_life("wang") == local(9)


def test_a_corrupt_rule_state_is_ignored_without_touching_the_rule_or_the_others() -> None:
    snapshot = _inactivity_snapshot()
    snapshot["rules"]["inactivity"]["state"]["last_sign"]["wang"]["received_at"] = "yesterday"
    snapshot["rules"]["inactivity"]["state"]["alarmed"] = ["li"]
    rule = InactivityRule(rule_context(careline()), CONFIG, local(9))

    report = restore_rules([rule], snapshot, local(9))

    assert list(report.ignored) == ["inactivity"]
    assert rule.last_sign_of_life("wang") == local(9)
    alarmed = {d.incident_key for d in rule.on_tick(local(13, 1)) if isinstance(d, AlarmDecision)}
    assert {"inactivity:sunrise:resident:wang", "inactivity:sunrise:resident:li"} <= alarmed


def test_a_snapshot_of_another_format_not_json_or_too_old_is_ignored_whole() -> None:
    rules = [InactivityRule(rule_context(careline()), CONFIG, local(9))]
    old_format = {**_inactivity_snapshot(), "format": FORMAT + 1}

    for snapshot in (old_format, "not a snapshot", {"format": FORMAT}, None):
        assert list(restore_rules(rules, snapshot, local(9)).ignored) == ["inactivity"]
    stale = restore_rules(rules, _inactivity_snapshot(), local(9, day=8), max_age=timedelta(hours=24))
    assert "older than" in stale.ignored["inactivity"]


# --- the baseline seeded from the sensor log -------------------------------------------------------------


def test_the_baseline_is_seeded_from_past_signs_of_life_counted_as_the_rule_counts_them() -> None:
    rules = wellbeing_at(local(6))
    baseline = next(rule for rule in rules if isinstance(rule, ActivityBaselineRule))
    fresh = ActivityBaselineRule(rule_context(careline()), CONFIG, local(6, day=20))
    past = [motion(local(9, minute, day=day)) for day in (10, 11, 13) for minute in (0, 20, 40)]
    past += [door(EventKind.DOOR_CLOSED, local(10, minute, day=13)) for minute in (0, 5, 10)]  # repeats
    past.append(motion(local(9, day=20)))  # today: not a whole day
    past.append(motion(local(9, day=2)))  # beyond the 14 days kept

    assert [r.id for r in fresh.without_history()] == ["wang"]
    assert fresh.seed_from_signs(reversed(past), local(6, day=20)) == {"wang": 3}
    history = fresh.history("wang")
    assert history.shape == (3, 24)
    assert history[:, 9].tolist() == [3.0, 3.0, 3.0]
    assert history[:, 10].tolist() == [0.0, 0.0, 1.0]
    assert fresh.without_history() == []
    assert baseline.seed_from_signs(past, local(6, day=20)) == {}, "a restored history is not replaced"


def test_the_device_board_keeps_since_when_a_device_is_offline_or_low_across_a_restart() -> None:
    board = DeviceHealth()
    board([battery(local(7), 9), event(EventKind.AVAILABILITY, local(8), device="door-101", value=False)])
    snapshot = json.loads(json.dumps(snapshot_rules([board], local(9))))
    restarted = DeviceHealth()

    assert restore_rules([restarted], snapshot, local(10)).restored == ("device_board",)
    assert restarted.devices == board.devices
    assert restarted.devices["door-101"].offline_since == local(8)
    assert restarted.devices["watch-wang"].battery_low_since == local(7)


def test_a_stored_snapshot_that_is_not_json_is_ignored_counted_and_the_rules_start_afresh() -> None:
    metrics = Metrics()
    rules = doors_at(local(14))

    count_restore(metrics, "alarm", restore_rules(rules, parsed('{"format": 1, "rules": {'), local(14)))

    for rule in ("door_night", "door_left_open"):
        assert metrics.rule_state_ignored.labels("alarm", rule)._value.get() == 1
        assert metrics.rule_state_restored.labels("alarm", rule)._value.get() == 0
    assert RuleEngine(rules).tick(local(15)) == []
