"""Inactivity: no sign of life for hours, inside the resident's active hours."""

from __future__ import annotations

from datetime import datetime, timedelta

from test_wellbeing_support import (
    HOME,
    alarms,
    context,
    event,
    local,
    motion,
    wellbeing,
)

from devices.model import DeviceType, EventKind
from rules import Severity
from rules.wellbeing import InactivityRule

START = local(6)  # 2026-01-06 06:00 in Shanghai


def rule(start: datetime = START, **inactivity: object) -> InactivityRule:
    """Wang is watched after 4 quiet hours, everyone else after the site's (default 12)."""
    config = wellbeing({"inactivity": inactivity, "residents": {"wang": {"inactivity": {"hours": 4}}}})
    return InactivityRule(context(), config, start)


def keys_due(inactivity: InactivityRule, at: datetime, who: str | None = "wang") -> list[str]:
    """Incident keys raised by a tick at `at`, for `who` (None: everyone)."""
    keys = [a.incident_key for a in alarms(inactivity.on_tick(at))]
    return [key for key in keys if who is None or key.endswith(f":resident:{who}")]


def test_inactivity_raises_a_high_alarm_after_the_set_hours_inside_active_hours() -> None:
    inactivity = rule()
    inactivity.on_event(motion(local(10)), local(10))

    assert keys_due(inactivity, local(13, 59)) == []
    [alarm] = alarms(inactivity.on_tick(local(14)))

    assert alarm.severity is Severity.HIGH
    assert alarm.rule == "inactivity"
    assert alarm.incident_key == "inactivity:sunrise:resident:wang"
    assert alarm.event.device_id == "motion-101"
    assert alarm.event.received_at == local(14)
    assert alarm.evidence["hours_without_sign_of_life"] == 4.0
    assert alarm.evidence["last_sign_of_life"] == "2026-01-06T10:00:00+08:00"


def test_inactivity_is_not_raised_outside_active_hours_but_once_they_begin() -> None:
    inactivity = rule()
    inactivity.on_event(motion(local(19)), local(19))

    for at in (local(23), local(2, day=7), local(6, 59, day=7)):
        assert keys_due(inactivity, at) == []
    assert keys_due(inactivity, local(7, day=7)) == ["inactivity:sunrise:resident:wang"]


def test_motion_resets_the_timer() -> None:
    inactivity = rule()
    inactivity.on_event(motion(local(10)), local(10))
    inactivity.on_event(motion(local(13)), local(13))

    assert keys_due(inactivity, local(14)) == []
    assert keys_due(inactivity, local(16, 59)) == []
    assert keys_due(inactivity, local(17)) == ["inactivity:sunrise:resident:wang"]


def test_inactivity_alarms_once_per_quiet_spell_and_again_after_a_new_sign_of_life() -> None:
    inactivity = rule()
    inactivity.on_event(motion(local(8)), local(8))

    ticks = [local(12) + timedelta(minutes=15 * n) for n in range(12)]
    raised = [key for at in ticks for key in keys_due(inactivity, at)]
    assert raised == ["inactivity:sunrise:resident:wang"]

    inactivity.on_event(motion(local(15, 30)), local(15, 30))
    assert keys_due(inactivity, local(19, 29)) == []
    assert keys_due(inactivity, local(19, 30)) == ["inactivity:sunrise:resident:wang"]


def test_residents_not_heard_from_since_the_start_are_timed_from_the_start() -> None:
    inactivity = rule(start=local(8))

    assert keys_due(inactivity, local(12), who=None) == ["inactivity:sunrise:resident:wang"]
    assert keys_due(inactivity, local(19, 59), who=None) == []
    li, zhang = alarms(inactivity.on_tick(local(20)))

    assert li.incident_key == "inactivity:sunrise:resident:li"
    assert zhang.incident_key == "inactivity:zhang-home:resident:zhang"
    alarm = li
    assert alarm.event.device_id == "(none)"
    assert alarm.evidence["since_gateway_start"] is True


def test_bed_door_and_check_in_events_are_signs_of_life_too() -> None:
    inactivity = rule()
    inactivity.on_event(motion(local(8)), local(8))
    signs = [
        event(EventKind.BED_OCCUPIED, local(9), device="bed-wang", room=None, resident="wang", value=False),
        event(EventKind.DOOR_OPEN, local(10), device="door-101", device_type=DeviceType.DOOR_SENSOR),
        event(EventKind.CHECK_IN, local(11), device="pendant-wang", room=None, resident="wang"),
    ]
    for sign in signs:
        inactivity.on_event(sign, sign.received_at)

    assert inactivity.last_sign_of_life("wang") == local(11)
    assert keys_due(inactivity, local(14, 59)) == []
    assert keys_due(inactivity, local(15)) == ["inactivity:sunrise:resident:wang"]


def test_a_door_reported_closed_again_and_again_is_not_a_sign_of_life() -> None:
    inactivity = rule()
    for hour in (9, 10, 11, 12):
        closed = event(
            EventKind.DOOR_CLOSED, local(hour), device="door-101", device_type=DeviceType.DOOR_SENSOR
        )
        inactivity.on_event(closed, local(hour))

    assert keys_due(inactivity, local(13)) == ["inactivity:sunrise:resident:wang"]


def test_another_residents_motion_does_not_count_for_wang() -> None:
    inactivity = rule()
    inactivity.on_event(motion(local(10)), local(10))
    inactivity.on_event(motion(local(13), device="motion-102", room="102"), local(13))

    assert keys_due(inactivity, local(14)) == ["inactivity:sunrise:resident:wang"]


def test_a_hall_sensor_counts_for_the_resident_of_a_private_home() -> None:
    inactivity = rule(start=local(7))
    flat = event(EventKind.MOTION, local(15), device="flat-motion", site=HOME, room=None, value=True)
    inactivity.on_event(flat, local(15))

    assert keys_due(inactivity, local(19), who="zhang") == []
    assert inactivity.last_sign_of_life("zhang") == local(15)


def test_a_disabled_inactivity_rule_raises_nothing() -> None:
    inactivity = InactivityRule(context(), wellbeing({"inactivity": {"enabled": False}}), START)

    assert keys_due(inactivity, local(21, day=8), who=None) == []
