"""Bed exit at night: Wang's bed sensor reports empty after 22:00 and nobody comes back within 30 minutes."""

from __future__ import annotations

from datetime import datetime, timedelta

from test_wellbeing_support import alarms, context, event, local, wellbeing

from devices.model import DeviceEvent, DeviceType, EventKind
from rules import Severity
from rules.wellbeing import BedExitRule


def rule(**bed_exit: object) -> BedExitRule:
    return BedExitRule(context(), wellbeing({"bed_exit": bed_exit}))


def bed(occupied: bool, at: datetime) -> DeviceEvent:
    return event(
        EventKind.BED_OCCUPIED,
        at,
        device="bed-wang",
        device_type=DeviceType.BED_SENSOR,
        room=None,
        resident="wang",
        value=occupied,
    )


def feed(bed_exit: BedExitRule, *events: DeviceEvent) -> None:
    for reading in events:
        assert bed_exit.on_event(reading, reading.received_at) == ()


def keys_due(bed_exit: BedExitRule, *ticks: datetime) -> list[str]:
    return [a.incident_key for at in ticks for a in alarms(bed_exit.on_tick(at))]


def test_leaving_bed_at_night_and_staying_away_raises_a_high_alarm() -> None:
    bed_exit = rule()
    feed(bed_exit, bed(True, local(22, day=5)), bed(False, local(2)))

    assert keys_due(bed_exit, local(2, 29)) == []
    [alarm] = alarms(bed_exit.on_tick(local(2, 30)))

    assert alarm.severity is Severity.HIGH
    assert alarm.incident_key == "bed_exit:sunrise:resident:wang"
    assert alarm.event.device_id == "bed-wang"
    assert alarm.event.received_at == local(2, 30)
    assert alarm.evidence == {"left_bed_at": "02:00", "minutes_out_of_bed": 30.0}


def test_coming_back_to_bed_in_time_cancels_the_timer() -> None:
    bed_exit = rule()
    feed(bed_exit, bed(True, local(1)), bed(False, local(2)), bed(True, local(2, 20)))

    assert keys_due(bed_exit, local(2, 30), local(4)) == []


def test_leaving_bed_by_day_raises_nothing() -> None:
    bed_exit = rule()
    feed(bed_exit, bed(True, local(13)), bed(False, local(14)))

    assert keys_due(bed_exit, local(14, 30), local(18)) == []


def test_the_alarm_is_raised_once_and_repeated_empty_reports_do_not_restart_the_timer() -> None:
    bed_exit = rule()
    feed(bed_exit, bed(False, local(2)), bed(False, local(2, 20)))

    assert keys_due(bed_exit, local(2, 25)) == []
    assert keys_due(bed_exit, local(2, 30)) == ["bed_exit:sunrise:resident:wang"]
    feed(bed_exit, bed(False, local(2, 40)))
    assert keys_due(bed_exit, *(local(2, 45) + timedelta(minutes=5 * n) for n in range(24))) == []


def test_a_second_night_time_exit_after_returning_raises_again() -> None:
    bed_exit = rule()
    feed(bed_exit, bed(False, local(1)))
    assert keys_due(bed_exit, local(1, 30)) == ["bed_exit:sunrise:resident:wang"]

    feed(bed_exit, bed(True, local(1, 45)), bed(False, local(3)))
    assert keys_due(bed_exit, local(3, 29)) == []
    assert keys_due(bed_exit, local(3, 30)) == ["bed_exit:sunrise:resident:wang"]


def test_the_night_window_and_minutes_are_configurable() -> None:
    bed_exit = rule(minutes=10, night={"start": "21:00", "end": "07:00"})
    feed(bed_exit, bed(False, local(21, 15)))

    assert keys_due(bed_exit, local(21, 24)) == []
    assert keys_due(bed_exit, local(21, 25)) == ["bed_exit:sunrise:resident:wang"]


def test_a_disabled_bed_exit_rule_raises_nothing() -> None:
    bed_exit = rule(enabled=False)
    feed(bed_exit, bed(False, local(2)))

    assert keys_due(bed_exit, local(4)) == []
