"""The rules under a directory applied live: new facts at once, their own state kept, newcomers timed from
when they came, devices that left forgotten."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from test_rules import config as door_config
from test_rules import door
from test_wellbeing_support import SITE, alarms, careline, event, local, motion, wellbeing

from devices.model import DeviceType, EventKind
from gateway.config import DeviceConfig, ResidentConfig
from gateway.directory import rule_context
from rules import Decision, DoorLeftOpenRule, RuleContext
from rules.wellbeing import ActivityBaselineRule, DeviceHealthRule, InactivityRule, MissedCheckInRule

CHEN = ResidentConfig(id="chen", name="Chen", site=SITE, room="102")
CHEN_PENDANT = DeviceConfig(id="pendant-chen", type="sos_button", site=SITE, resident="chen")


def live_context() -> RuleContext:
    return rule_context(careline())


def update(
    context: RuleContext,
    at: datetime,
    *,
    residents: Iterable[ResidentConfig] = (),
    devices: Iterable[DeviceConfig] = (),
    without: frozenset[str] = frozenset(),
) -> None:
    base = careline()
    context.update(
        base.sites,
        [*base.residents, *residents],
        [*(d for d in base.devices if d.id not in without), *devices],
        at=at,
    )


def keys(decisions: Sequence[Decision]) -> list[str]:
    return [a.incident_key for a in alarms(decisions)]


def test_new_facts_are_taken_at_once_and_newcomers_are_known_from_when_they_came() -> None:
    context = live_context()
    assert context.resident("chen") is None
    update(context, local(12), residents=[CHEN], devices=[CHEN_PENDANT])
    assert [r.id for r in context.residents_watched_by(SITE, "102", None)] == ["li", "chen"]
    assert context.device("pendant-chen") == CHEN_PENDANT
    assert (context.resident_joined("chen"), context.device_joined("pendant-chen")) == (local(12), local(12))
    assert context.resident_joined("wang") is None
    update(context, local(13), without=frozenset({"door-101"}))
    assert context.resident("chen") is None
    assert context.device_left("door-101")
    assert context.devices_joined() == []
    update(context, local(14), residents=[CHEN])
    assert context.resident_joined("chen") == local(14)  # back again: watched from its return


def test_a_resident_added_live_is_timed_from_then_not_from_the_gateways_start() -> None:
    context = live_context()
    inactivity = InactivityRule(context, wellbeing({"inactivity": {"hours": 4}}), local(6))
    update(context, local(12), residents=[CHEN])
    # Six hours after the start, but Chen arrived just now.
    assert [k for k in keys(inactivity.on_tick(local(12, 1))) if "chen" in k] == []
    assert [k for k in keys(inactivity.on_tick(local(15, 59))) if "chen" in k] == []
    [alarm] = [a for a in alarms(inactivity.on_tick(local(16))) if a.event.resident == "chen"]
    assert alarm.evidence["last_sign_of_life"] == "2026-01-06T12:00:00+08:00"
    # The others keep what the rule knew of them.
    inactivity.on_event(motion(local(15)), local(15))
    assert inactivity.last_sign_of_life("wang") == local(15)


def test_a_resident_added_after_todays_check_in_deadline_is_judged_from_tomorrow() -> None:
    context = live_context()
    check_ins = MissedCheckInRule(
        context, wellbeing({"check_in": {"enabled": True, "by": "10:00"}}), local(0)
    )
    update(context, local(11), residents=[CHEN])
    assert [k for k in keys(check_ins.on_tick(local(11, 1))) if "chen" in k] == []
    assert "check_in:sunrise:resident:chen" in keys(check_ins.on_tick(local(10, day=7)))


def test_a_resident_added_part_way_through_a_day_does_not_count_that_day_in_their_baseline() -> None:
    context = live_context()
    baseline = ActivityBaselineRule(context, wellbeing(), local(0))
    update(context, local(12, 30), residents=[CHEN])
    baseline.on_tick(local(13))
    baseline.on_tick(local(1, day=8))
    # Day 6 was watched only from 13:00; day 7 in full.
    assert baseline.history("chen").shape[0] == 1


def test_a_device_bound_live_is_timed_from_then_and_a_removed_one_is_forgotten() -> None:
    context = live_context()
    health = DeviceHealthRule(
        context, wellbeing({"device_health": {"heartbeat_interval_s": 3600}}), local(8), devices=()
    )
    door_report = event(
        EventKind.DOOR_CLOSED, local(8), device="door-101", device_type=DeviceType.DOOR_SENSOR
    )
    health.on_event(door_report, local(8))
    update(context, local(10), residents=[CHEN], devices=[CHEN_PENDANT], without=frozenset({"door-101"}))
    # Grace factor 2: silent after two hours, counted from when each device was bound or last heard.
    assert keys(health.on_tick(local(11, 59))) == []
    assert keys(health.on_tick(local(12))) == ["device_health:sunrise:pendant-chen:silent"]
    assert keys(health.on_tick(local(14))) == []  # the removed door is never called silent


def test_a_door_whose_sensor_left_the_directory_while_open_is_no_longer_timed() -> None:
    sensor = DeviceConfig(id="door-101", type="door_sensor", site=SITE, room="101")
    fitted = door_config().model_copy(update={"devices": (sensor,)})
    outcome = {}
    for leaves in (False, True):
        context = rule_context(fitted)
        rule = DoorLeftOpenRule(context)
        rule.on_event(door(EventKind.DOOR_OPEN, local(10)), local(10))
        context.update(fitted.sites, fitted.residents, () if leaves else (sensor,), at=local(10, 5))
        outcome[leaves] = [a.incident_key for a in alarms(rule.on_tick(local(10, 10)))]
    assert outcome == {False: ["door_left_open:sunrise:door-101"], True: []}
