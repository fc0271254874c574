"""Missed check-in: Wang promised to press "I am OK" every morning before 10:00."""

from __future__ import annotations

from datetime import datetime, timedelta

from test_wellbeing_support import alarms, context, event, local, wellbeing

from devices.model import DeviceEvent, DeviceType, EventKind
from rules import Severity
from rules.wellbeing import MissedCheckInRule

WANG_CHECKS_IN = {"residents": {"wang": {"check_in": {"enabled": True, "by": "10:00"}}}}


def rule(start: datetime = local(0)) -> MissedCheckInRule:
    return MissedCheckInRule(context(), wellbeing(WANG_CHECKS_IN), start)


def check_in(at: datetime) -> DeviceEvent:
    return event(
        EventKind.CHECK_IN,
        at,
        device="pendant-wang",
        device_type=DeviceType.SOS_BUTTON,
        room=None,
        resident="wang",
    )


def keys_due(rule: MissedCheckInRule, *ticks: datetime) -> list[str]:
    return [a.incident_key for at in ticks for a in alarms(rule.on_tick(at))]


def test_a_check_in_before_the_deadline_raises_nothing() -> None:
    check_ins = rule()
    check_ins.on_event(check_in(local(8, 30)), local(8, 30))

    assert keys_due(check_ins, local(10), local(12), local(23, 59)) == []


def test_no_check_in_by_the_deadline_raises_one_medium_alarm() -> None:
    check_ins = rule()

    assert keys_due(check_ins, local(9, 59)) == []
    [alarm] = alarms(check_ins.on_tick(local(10)))

    assert alarm.severity is Severity.MEDIUM
    assert alarm.rule == "missed_check_in"
    assert alarm.incident_key == "check_in:sunrise:resident:wang"
    assert alarm.event.received_at == local(10)
    assert alarm.event.device_id == "(none)"
    assert alarm.evidence["due_by"] == "10:00"
    assert keys_due(check_ins, local(10, 5), local(12), local(23)) == []


def test_a_missed_check_in_is_raised_again_the_next_day() -> None:
    check_ins = rule()
    ticks = [local(0) + timedelta(minutes=30 * n) for n in range(2 * 48)]

    assert keys_due(check_ins, *ticks) == ["check_in:sunrise:resident:wang"] * 2


def test_yesterdays_check_in_does_not_count_for_today() -> None:
    check_ins = rule()
    check_ins.on_event(check_in(local(9)), local(9))

    assert keys_due(check_ins, local(10), local(10, day=7)) == ["check_in:sunrise:resident:wang"]


def test_a_late_check_in_ends_the_days_alarms_and_tomorrow_is_judged_afresh() -> None:
    check_ins = rule()
    assert keys_due(check_ins, local(10)) == ["check_in:sunrise:resident:wang"]
    check_ins.on_event(check_in(local(10, 20)), local(10, 20))

    assert keys_due(check_ins, local(11)) == []
    assert keys_due(check_ins, local(10, day=7)) == ["check_in:sunrise:resident:wang"]


def test_a_day_whose_deadline_passed_before_the_gateway_started_is_not_judged() -> None:
    check_ins = rule(start=local(11))

    assert keys_due(check_ins, local(12), local(23)) == []
    assert keys_due(check_ins, local(10, day=7)) == ["check_in:sunrise:resident:wang"]


def test_residents_who_did_not_agree_to_check_in_are_never_alarmed() -> None:
    check_ins = rule()
    check_ins.on_event(check_in(local(8)), local(8))

    assert all(":resident:wang" in key for key in keys_due(check_ins, local(11), local(11, day=7)))
