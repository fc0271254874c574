"""The alarm rules: pure decisions from `DeviceEvent`s and an injected time, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from devices.model import DeviceEvent, DeviceType, EventKind
from gateway.config import CarelineConfig
from gateway.directory import rule_context
from rules import (
    AlarmDecision,
    CancelDecision,
    Decision,
    DeviceTestDecision,
    DoorAtNightRule,
    DoorLeftOpenRule,
    FallRule,
    RuleEngine,
    Severity,
    SmokeRule,
    SosRule,
    default_rules,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
SITE = "sunrise"


def local(hour: int, minute: int = 0, day: int = 6) -> datetime:
    """A UTC instant at which the site (Asia/Shanghai, UTC+8) reads `hour:minute`."""
    return datetime(2026, 1, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


NIGHT = local(2)  # 2026-01-05 18:00 UTC
DAY = local(14)  # 2026-01-06 06:00 UTC


def config(**rules: Any) -> CarelineConfig:
    """One site in Asia/Shanghai: room 101 has a resident at risk of wandering, room 102 does not."""
    return CarelineConfig.model_validate(
        {
            "broker": {"url": "mqtt://127.0.0.1:1883"},
            "storage": {"url": "sqlite:///unused.db"},
            "sites": [
                {
                    "id": SITE,
                    "name": "Sunrise",
                    "timezone": "Asia/Shanghai",
                    "rooms": [{"id": "101"}, {"id": "102"}, {"id": "corridor"}],
                    "rules": {
                        "fall_cancel_window_s": 45,
                        "door_left_open_minutes": 10,
                        "night": {"start": "22:00", "end": "06:00"},
                        **rules,
                    },
                }
            ],
            "residents": [
                {"id": "wang", "name": "Wang", "site": SITE, "room": "101", "wandering_risk": True},
                {"id": "li", "name": "Li", "site": SITE, "room": "102"},
            ],
        }
    )


def calm_config() -> CarelineConfig:
    """A site where nobody is at risk of wandering."""
    return CarelineConfig.model_validate(
        {
            "sites": [{"id": SITE, "name": "Calm", "timezone": "Asia/Shanghai", "rooms": [{"id": "102"}]}],
            "residents": [{"id": "li", "name": "Li", "site": SITE, "room": "102"}],
        }
    )


def event(
    kind: EventKind,
    *,
    device: str = "dev-1",
    device_type: DeviceType = DeviceType.SOS_BUTTON,
    room: str | None = None,
    resident: str | None = None,
    value: float | bool | str | None = None,
    at: datetime = DAY,
    key: str | None = None,
    test: bool = False,
) -> DeviceEvent:
    return DeviceEvent(
        device_id=device,
        device_type=device_type,
        site=SITE,
        room=room,
        resident=resident,
        kind=kind,
        value=value,
        ts=at,
        received_at=at,
        message_key=key or f"{device}:{kind}:{at.isoformat()}",
        test=test,
    )


def door(kind: EventKind, at: datetime, *, device: str = "door-101", room: str | None = "101") -> DeviceEvent:
    return event(kind, device=device, device_type=DeviceType.DOOR_SENSOR, room=room, at=at)


def alarms(decisions: Sequence[Decision]) -> list[AlarmDecision]:
    assert all(isinstance(d, AlarmDecision) for d in decisions)
    return [d for d in decisions if isinstance(d, AlarmDecision)]


# --- SOS ----------------------------------------------------------------------------------------


def test_an_sos_is_a_critical_alarm_keyed_by_its_resident() -> None:
    sos = event(EventKind.SOS, device="pendant-wang", resident="wang")

    [decision] = alarms(SosRule().on_event(sos, DAY))

    assert decision.severity is Severity.CRITICAL
    assert decision.rule == "sos"
    assert decision.event is sos
    assert "resident:wang" in decision.incident_key


def test_sos_from_two_residents_gives_two_keys_and_the_same_resident_twice_gives_one() -> None:
    rule = SosRule()
    [wang_1] = alarms(rule.on_event(event(EventKind.SOS, device="p-wang", resident="wang"), DAY))
    [wang_2] = alarms(
        rule.on_event(event(EventKind.SOS, device="p-wang", resident="wang", at=DAY + timedelta(1)), DAY)
    )
    [li] = alarms(rule.on_event(event(EventKind.SOS, device="p-li", resident="li"), DAY))

    assert wang_1.incident_key == wang_2.incident_key
    assert wang_1.incident_key != li.incident_key


def test_the_sos_rule_ignores_other_events() -> None:
    assert SosRule().on_event(event(EventKind.FALL, resident="wang"), DAY) == ()


# --- falls --------------------------------------------------------------------------------------


def test_a_fall_raises_a_critical_alarm_at_once() -> None:
    rule = FallRule(rule_context(config()))
    fall = event(EventKind.FALL, device="radar-101", device_type=DeviceType.FALL_SENSOR, resident="wang")

    [decision] = alarms(rule.on_event(fall, DAY))

    assert decision.severity is Severity.CRITICAL
    assert decision.rule == "fall"
    assert rule.on_tick(DAY + timedelta(hours=1)) == ()


def test_a_fall_cancel_asks_to_cancel_incidents_triggered_within_the_sites_window() -> None:
    rule = FallRule(rule_context(config()))
    fall = event(EventKind.FALL, device="pendant-wang", resident="wang", at=DAY)
    cancel = event(
        EventKind.FALL_CANCEL, device="pendant-wang", resident="wang", at=DAY + timedelta(seconds=20)
    )

    [raised] = alarms(rule.on_event(fall, DAY))
    [decision] = rule.on_event(cancel, cancel.received_at)

    assert isinstance(decision, CancelDecision)
    assert decision.incident_key == raised.incident_key
    assert decision.reason == "cancelled_by_resident"
    assert decision.triggered_after == cancel.received_at - timedelta(seconds=45)


def test_a_fall_reported_false_raises_nothing() -> None:
    rule = FallRule(rule_context(config()))
    assert rule.on_event(event(EventKind.FALL, resident="wang", value=False), DAY) == ()


# --- doors at night -----------------------------------------------------------------------------


def test_a_door_opened_at_two_in_the_night_for_a_resident_at_risk_raises_a_high_alarm_with_evidence() -> None:
    rule = DoorAtNightRule(rule_context(config()))
    assert NIGHT.astimezone(SHANGHAI).hour == 2

    [decision] = alarms(rule.on_event(door(EventKind.DOOR_OPEN, NIGHT), NIGHT))

    assert decision.severity is Severity.HIGH
    assert decision.rule == "door_night"
    assert decision.incident_key == f"door_night:{SITE}:door-101"
    assert decision.evidence == {"local_time": "02:00", "residents_at_risk": "wang"}


def test_the_same_door_opened_at_two_in_the_afternoon_raises_nothing() -> None:
    rule = DoorAtNightRule(rule_context(config()))
    assert DAY.astimezone(SHANGHAI).hour == 14

    assert rule.on_event(door(EventKind.DOOR_OPEN, DAY), DAY) == ()


def test_a_door_opened_at_night_in_a_room_with_nobody_at_risk_raises_nothing() -> None:
    rule = DoorAtNightRule(rule_context(config()))

    assert rule.on_event(door(EventKind.DOOR_OPEN, NIGHT, device="door-102", room="102"), NIGHT) == ()


def test_an_exit_door_opened_at_night_alarms_when_anyone_at_the_site_is_at_risk() -> None:
    rule = DoorAtNightRule(rule_context(config()))

    [decision] = alarms(rule.on_event(door(EventKind.DOOR_OPEN, NIGHT, device="main-exit", room=None), NIGHT))

    assert decision.evidence["residents_at_risk"] == "wang"


def test_an_exit_door_opened_at_night_raises_nothing_when_nobody_at_the_site_is_at_risk() -> None:
    rule = DoorAtNightRule(rule_context(calm_config()))

    assert rule.on_event(door(EventKind.DOOR_OPEN, NIGHT, device="main-exit", room=None), NIGHT) == ()


def test_repeated_open_reports_without_a_close_raise_only_once() -> None:
    rule = DoorAtNightRule(rule_context(config()))

    first = rule.on_event(door(EventKind.DOOR_OPEN, NIGHT), NIGHT)
    later = [rule.on_event(door(EventKind.DOOR_OPEN, NIGHT + timedelta(minutes=m)), NIGHT) for m in (1, 2, 3)]

    assert len(first) == 1
    assert later == [(), (), ()]


def test_after_the_door_closes_a_new_opening_raises_again() -> None:
    rule = DoorAtNightRule(rule_context(config()))

    rule.on_event(door(EventKind.DOOR_OPEN, NIGHT), NIGHT)
    assert rule.on_event(door(EventKind.DOOR_CLOSED, NIGHT + timedelta(minutes=1)), NIGHT) == ()
    again = rule.on_event(door(EventKind.DOOR_OPEN, NIGHT + timedelta(minutes=2)), NIGHT)

    assert len(alarms(again)) == 1


@pytest.mark.parametrize(
    ("hour", "minute", "alarms_expected"),
    [(23, 30, True), (0, 0, True), (5, 59, True), (6, 0, False), (21, 59, False), (22, 0, True)],
    ids=lambda v: str(v),
)
def test_a_night_window_crossing_midnight_covers_late_evening_and_early_morning(
    hour: int, minute: int, alarms_expected: bool
) -> None:
    rule = DoorAtNightRule(rule_context(config()))
    at = local(hour, minute)

    decisions = rule.on_event(door(EventKind.DOOR_OPEN, at), at)

    assert len(alarms(decisions)) == (1 if alarms_expected else 0)


def test_door_at_night_false_turns_the_rule_off() -> None:
    rule = DoorAtNightRule(rule_context(config(door_at_night=False)))

    assert rule.on_event(door(EventKind.DOOR_OPEN, NIGHT), NIGHT) == ()


# --- doors left open ----------------------------------------------------------------------------


def test_a_door_open_for_less_than_the_limit_raises_nothing() -> None:
    rule = DoorLeftOpenRule(rule_context(config()))

    assert rule.on_event(door(EventKind.DOOR_OPEN, DAY), DAY) == ()
    assert rule.on_tick(DAY + timedelta(minutes=9, seconds=59)) == []


def test_a_door_open_at_the_limit_raises_one_medium_alarm_with_the_minutes_open() -> None:
    rule = DoorLeftOpenRule(rule_context(config()))
    opened = door(EventKind.DOOR_OPEN, DAY)
    rule.on_event(opened, DAY)

    [decision] = alarms(rule.on_tick(DAY + timedelta(minutes=10)))

    assert decision.severity is Severity.MEDIUM
    assert decision.rule == "door_left_open"
    assert decision.incident_key == f"door_left_open:{SITE}:door-101"
    assert decision.event is opened
    assert decision.evidence == {"open_minutes": 10.0}


def test_a_door_open_past_the_limit_reports_how_long_it_has_been_open() -> None:
    rule = DoorLeftOpenRule(rule_context(config()))
    rule.on_event(door(EventKind.DOOR_OPEN, DAY), DAY)

    [decision] = alarms(rule.on_tick(DAY + timedelta(minutes=12, seconds=30)))

    assert decision.evidence == {"open_minutes": 12.5}


def test_a_door_left_open_alarms_only_once() -> None:
    rule = DoorLeftOpenRule(rule_context(config()))
    rule.on_event(door(EventKind.DOOR_OPEN, DAY), DAY)

    assert len(rule.on_tick(DAY + timedelta(minutes=10))) == 1
    assert rule.on_tick(DAY + timedelta(minutes=11)) == []
    assert rule.on_tick(DAY + timedelta(hours=3)) == []


def test_repeated_open_reports_do_not_restart_the_timer() -> None:
    rule = DoorLeftOpenRule(rule_context(config()))
    rule.on_event(door(EventKind.DOOR_OPEN, DAY), DAY)
    rule.on_event(door(EventKind.DOOR_OPEN, DAY + timedelta(minutes=5)), DAY)

    assert len(rule.on_tick(DAY + timedelta(minutes=10))) == 1


def test_closing_the_door_before_the_limit_cancels_the_timer() -> None:
    rule = DoorLeftOpenRule(rule_context(config()))
    rule.on_event(door(EventKind.DOOR_OPEN, DAY), DAY)
    rule.on_event(door(EventKind.DOOR_CLOSED, DAY + timedelta(minutes=3)), DAY)

    assert rule.on_tick(DAY + timedelta(minutes=30)) == []


def test_a_limit_of_zero_turns_the_left_open_rule_off() -> None:
    rule = DoorLeftOpenRule(rule_context(config(door_left_open_minutes=0)))
    rule.on_event(door(EventKind.DOOR_OPEN, DAY), DAY)

    assert rule.on_tick(DAY + timedelta(hours=5)) == []


# --- smoke --------------------------------------------------------------------------------------


def test_smoke_is_a_critical_alarm_keyed_by_its_room() -> None:
    rule = SmokeRule()

    def smoke(device: str, room: str) -> AlarmDecision:
        found = event(
            EventKind.SMOKE, device=device, device_type=DeviceType.SMOKE_DETECTOR, room=room, value=True
        )
        [decision] = alarms(rule.on_event(found, DAY))
        return decision

    corridor_a, corridor_b, room_101 = (
        smoke("smoke-1", "corridor"),
        smoke("smoke-2", "corridor"),
        smoke("smoke-3", "101"),
    )

    assert corridor_a.severity is Severity.CRITICAL
    assert corridor_a.incident_key == corridor_b.incident_key == f"smoke:{SITE}:corridor"
    assert room_101.incident_key != corridor_a.incident_key


@pytest.mark.parametrize(
    ("kind", "value"),
    [(EventKind.SMOKE, False), (EventKind.SMOKE_CLEAR, None), (EventKind.SMOKE_CLEAR, True)],
)
def test_smoke_clearing_raises_nothing(kind: EventKind, value: bool | None) -> None:
    cleared = event(
        kind, device="smoke-1", device_type=DeviceType.SMOKE_DETECTOR, room="corridor", value=value
    )

    assert SmokeRule().on_event(cleared, DAY) == ()


def test_a_smoke_detectors_self_test_is_recorded_as_a_test_not_raised_as_an_alarm() -> None:
    tested = event(
        EventKind.SMOKE, device="smoke-1", device_type=DeviceType.SMOKE_DETECTOR, room="corridor", test=True
    )

    assert SmokeRule().on_event(tested, DAY) == (DeviceTestDecision("smoke", tested),)


@pytest.mark.parametrize("device_type", [DeviceType.SOS_BUTTON, DeviceType.FALL_SENSOR, DeviceType.OTHER])
def test_smoke_marked_as_a_test_from_anything_but_a_smoke_detector_is_a_real_alarm(
    device_type: DeviceType,
) -> None:
    # Only a smoke detector has a test button; smoke reported by anything else is taken as smoke.
    smoke = event(EventKind.SMOKE, device_type=device_type, room="corridor", test=True)

    [decision] = alarms(SmokeRule().on_event(smoke, DAY))
    assert decision.severity is Severity.CRITICAL


def test_an_sos_marked_as_a_test_is_still_an_sos() -> None:
    press = event(EventKind.SOS, device="pendant-wang", resident="wang", test=True)

    [decision] = alarms(SosRule().on_event(press, DAY))
    assert decision.incident_key == f"sos:{SITE}:resident:wang"


def test_the_engine_passes_a_device_test_on_and_raises_nothing_else() -> None:
    engine = RuleEngine(default_rules(rule_context(config())))
    tested = event(EventKind.SMOKE, device="smoke-1", device_type=DeviceType.SMOKE_DETECTOR, test=True)

    assert [type(d) for d in engine.handle(tested, DAY)] == [DeviceTestDecision]


# --- the engine and its plugin API --------------------------------------------------------------


class BatteryLowRule:
    """A custom rule: low battery is a LOW-severity alarm; a tick reports how often it was asked."""

    name = "battery_low"

    def __init__(self) -> None:
        self.ticks: list[datetime] = []

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        if event.kind is not EventKind.BATTERY_LOW:
            return ()
        return (AlarmDecision(self.name, Severity.LOW, f"battery:{event.device_id}", event),)

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        self.ticks.append(now)
        return ()


def test_a_custom_rule_plugged_into_the_engine_is_consulted_for_events_and_ticks() -> None:
    custom = BatteryLowRule()
    engine = RuleEngine([*default_rules(rule_context(config())), custom])
    low = event(EventKind.BATTERY_LOW, device="pendant-wang", resident="wang")

    [decision] = alarms(engine.handle(low, DAY))
    engine.tick(DAY + timedelta(seconds=1))

    assert decision.rule == "battery_low"
    assert decision.severity is Severity.LOW
    assert custom.ticks == [DAY + timedelta(seconds=1)]


def test_the_engine_collects_decisions_from_every_rule() -> None:
    engine = RuleEngine(default_rules(rule_context(config())))

    sos = engine.handle(event(EventKind.SOS, resident="wang"), DAY)
    opened = engine.handle(door(EventKind.DOOR_OPEN, NIGHT), NIGHT)
    due = engine.tick(NIGHT + timedelta(minutes=10))

    assert [d.rule for d in sos] == ["sos"]
    assert [d.rule for d in opened] == ["door_night"]
    assert [d.rule for d in due] == ["door_left_open"]
