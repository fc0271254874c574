"""Device health: offline, silent, low battery and tamper, each raised once per device until it recovers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from test_wellbeing_support import alarms, careline, context, event, local, wellbeing

from devices.model import DeviceEvent, DeviceType, EventKind
from rules import AlarmDecision, Severity
from rules.wellbeing import DeviceHealthRule

START = local(8)


def rule(
    *, expected: bool = False, intervals: Mapping[str, float] | None = None, **settings: object
) -> DeviceHealthRule:
    devices = careline().devices if expected else ()
    config = wellbeing({"device_health": settings})
    return DeviceHealthRule(context(), config, START, devices=devices, intervals=intervals)


def report(
    kind: EventKind, at: datetime, value: float | bool | None = None, device: str = "door-101"
) -> DeviceEvent:
    return event(kind, at, device=device, device_type=DeviceType.DOOR_SENSOR, value=value)


def feed(health: DeviceHealthRule, *events: DeviceEvent) -> list[AlarmDecision]:
    return [a for e in events for a in alarms(health.on_event(e, e.received_at))]


def keys(decisions: list[AlarmDecision]) -> list[str]:
    return [d.incident_key for d in decisions]


def test_a_device_reported_offline_raises_one_low_alarm_until_it_is_back() -> None:
    health = rule()

    [offline] = feed(health, report(EventKind.AVAILABILITY, local(9), False))
    assert offline.severity is Severity.LOW
    assert offline.incident_key == "device_health:sunrise:door-101:offline"
    assert offline.evidence["problem"] == "device offline"

    assert feed(health, report(EventKind.AVAILABILITY, local(9, 5), False)) == []
    assert feed(health, report(EventKind.AVAILABILITY, local(9, 10), True)) == []
    assert keys(feed(health, report(EventKind.AVAILABILITY, local(9, 15), False))) == [
        "device_health:sunrise:door-101:offline"
    ]


def test_a_device_silent_for_twice_its_interval_raises_one_low_alarm() -> None:
    health = rule()
    feed(health, report(EventKind.DOOR_CLOSED, local(8)))

    assert health.on_tick(local(9, 59)) == []
    [silent] = alarms(health.on_tick(local(10)))

    assert silent.severity is Severity.LOW
    assert silent.incident_key == "device_health:sunrise:door-101:silent"
    assert silent.event.device_id == "door-101"
    assert silent.event.received_at == local(10)
    assert silent.evidence["silent_for_s"] == 7200
    assert health.on_tick(local(11)) == []


def test_a_silent_device_that_reports_again_is_watched_afresh() -> None:
    health = rule()
    feed(health, report(EventKind.DOOR_CLOSED, local(8)))
    assert len(alarms(health.on_tick(local(10)))) == 1

    feed(health, report(EventKind.LINK_QUALITY, local(10, 30), 80))
    assert health.on_tick(local(12, 29)) == []
    assert keys(alarms(health.on_tick(local(12, 30)))) == ["device_health:sunrise:door-101:silent"]


def test_configured_devices_never_heard_from_are_timed_from_the_start() -> None:
    health = rule(expected=True)

    assert health.on_tick(local(9, 59)) == []
    silent = alarms(health.on_tick(local(10)))

    assert len(silent) == len(careline().devices)
    assert {d.event.device_id for d in silent} == {d.id for d in careline().devices}
    assert all(d.evidence["heard_since_start"] is False for d in silent)


def test_a_per_device_interval_overrides_the_default() -> None:
    health = rule(intervals={"door-101": 600})
    feed(health, report(EventKind.DOOR_CLOSED, local(8)))

    assert health.on_tick(local(8, 19)) == []
    assert keys(alarms(health.on_tick(local(8, 20)))) == ["device_health:sunrise:door-101:silent"]


def test_an_interval_set_in_the_configuration_applies_too() -> None:
    health = rule(interval_overrides_s={"door-101": 300}, grace_factor=3)
    feed(health, report(EventKind.DOOR_CLOSED, local(8)))

    assert health.on_tick(local(8, 14)) == []
    assert len(alarms(health.on_tick(local(8, 15)))) == 1


def test_a_low_battery_is_raised_once_until_it_recovers_above_the_threshold_plus_five() -> None:
    health = rule()

    def battery(percent: float, minute: int) -> list[str]:
        return keys(feed(health, report(EventKind.BATTERY, local(9, minute), percent)))

    assert battery(40, 0) == []
    assert battery(15, 1) == ["device_health:sunrise:door-101:battery_low"]
    assert battery(12, 2) == []
    assert battery(19, 3) == []
    assert battery(14, 4) == []
    assert battery(21, 5) == []
    assert battery(14, 6) == ["device_health:sunrise:door-101:battery_low"]


def test_a_battery_low_flag_raises_once_too() -> None:
    health = rule()

    [low] = feed(health, report(EventKind.BATTERY_LOW, local(9), True))
    assert low.incident_key == "device_health:sunrise:door-101:battery_low"
    assert low.evidence["problem"] == "battery low"
    assert feed(health, report(EventKind.BATTERY_LOW, local(9, 30), None)) == []


def test_tamper_raises_a_medium_alarm_repeated_at_most_hourly() -> None:
    health = rule()

    [tamper] = feed(health, report(EventKind.TAMPER, local(9), True))
    assert tamper.severity is Severity.MEDIUM
    assert tamper.incident_key == "device_health:sunrise:door-101:tamper"
    assert feed(health, report(EventKind.TAMPER, local(9, 30), None)) == []
    assert len(feed(health, report(EventKind.TAMPER, local(10), True))) == 1

    feed(health, report(EventKind.TAMPER, local(10, 5), False))
    assert len(feed(health, report(EventKind.TAMPER, local(10, 6), True))) == 1


def test_each_device_has_its_own_incidents() -> None:
    health = rule()
    at = local(9)

    raised = feed(
        health,
        report(EventKind.BATTERY, at, 5, device="door-101"),
        report(EventKind.BATTERY, at + timedelta(seconds=1), 5, device="motion-101"),
    )

    assert keys(raised) == [
        "device_health:sunrise:door-101:battery_low",
        "device_health:sunrise:motion-101:battery_low",
    ]


def test_a_disabled_device_health_rule_raises_nothing() -> None:
    health = rule(expected=True, enabled=False)

    assert feed(health, report(EventKind.AVAILABILITY, local(9), False)) == []
    assert health.on_tick(local(23)) == []
