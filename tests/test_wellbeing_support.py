"""Shared helpers for the wellbeing rule tests, and tests of the pieces the rules share.

Sites run on Asia/Shanghai (UTC+8, no daylight saving); every instant is explicit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from devices.model import DeviceEvent, DeviceType, EventKind
from gateway.config import CarelineConfig
from gateway.directory import rule_context
from rules import AlarmDecision, Decision, RuleContext, RuleEngine
from rules.wellbeing import WellbeingConfig, synthetic_event, wellbeing_rules
from rules.wellbeing.common import SignsOfLife, residents_of, subject_of_event

SHANGHAI = ZoneInfo("Asia/Shanghai")
SITE = "sunrise"
HOME = "zhang-home"


def local(hour: int, minute: int = 0, *, day: int = 6, second: int = 0) -> datetime:
    """The UTC instant at which the sites read 2026-01-`day` `hour:minute` local time."""
    return datetime(2026, 1, day, hour, minute, second, tzinfo=SHANGHAI).astimezone(UTC)


def careline() -> CarelineConfig:
    """A care home (rooms 101 for Wang, 102 for Li) and a private home (Zhang)."""
    return CarelineConfig.model_validate(
        {
            "sites": [
                {
                    "id": SITE,
                    "name": "Sunrise",
                    "timezone": "Asia/Shanghai",
                    "rooms": [{"id": "101"}, {"id": "102"}],
                },
                {"id": HOME, "name": "Zhang's flat", "kind": "home", "timezone": "Asia/Shanghai"},
            ],
            "residents": [
                {"id": "wang", "name": "Wang", "site": SITE, "room": "101"},
                {"id": "li", "name": "Li", "site": SITE, "room": "102"},
                {"id": "zhang", "name": "Zhang", "site": HOME},
            ],
            "devices": [
                {"id": "motion-101", "type": "motion_sensor", "site": SITE, "room": "101"},
                {"id": "motion-102", "type": "motion_sensor", "site": SITE, "room": "102"},
                {"id": "hall-motion", "type": "motion_sensor", "site": SITE},
                {"id": "pendant-wang", "type": "sos_button", "site": SITE, "resident": "wang"},
                {"id": "bed-wang", "type": "bed_sensor", "site": SITE, "resident": "wang"},
                {"id": "watch-wang", "type": "vitals_monitor", "site": SITE, "resident": "wang"},
                {"id": "door-101", "type": "door_sensor", "site": SITE, "room": "101"},
                {"id": "flat-motion", "type": "motion_sensor", "site": HOME},
            ],
        }
    )


def context() -> RuleContext:
    return rule_context(careline())


def wellbeing(data: dict[str, Any] | None = None) -> WellbeingConfig:
    return WellbeingConfig.model_validate(data or {})


def event(
    kind: EventKind,
    at: datetime,
    *,
    device: str = "motion-101",
    device_type: DeviceType = DeviceType.MOTION_SENSOR,
    site: str = SITE,
    room: str | None = "101",
    resident: str | None = None,
    value: float | bool | str | None = None,
) -> DeviceEvent:
    return DeviceEvent(
        device_id=device,
        device_type=device_type,
        site=site,
        room=room,
        resident=resident,
        kind=kind,
        value=value,
        ts=at,
        received_at=at,
        message_key=f"{device}:{kind}:{at.isoformat()}",
    )


def motion(at: datetime, *, device: str = "motion-101", room: str | None = "101") -> DeviceEvent:
    return event(EventKind.MOTION, at, device=device, room=room, value=True)


def alarms(decisions: Sequence[Decision]) -> list[AlarmDecision]:
    assert all(isinstance(d, AlarmDecision) for d in decisions)
    return [d for d in decisions if isinstance(d, AlarmDecision)]


# --- the shared pieces --------------------------------------------------------------------------


def test_a_synthetic_event_describes_the_last_device_and_happens_now() -> None:
    last = motion(local(9))

    synthetic = synthetic_event(
        "inactivity", "inactivity:sunrise:resident:wang", local(21), site=SITE, resident="wang", last=last
    )

    assert synthetic.device_id == "motion-101"
    assert synthetic.kind is EventKind.MOTION
    assert synthetic.received_at == synthetic.ts == local(21)
    assert synthetic.resident == "wang"
    assert (
        synthetic.message_key == f"rule:inactivity:inactivity:sunrise:resident:wang:{local(21).isoformat()}"
    )
    assert synthetic.extra["last_event_at"] == local(9).isoformat()


def test_a_synthetic_event_without_any_device_heard_names_none() -> None:
    synthetic = synthetic_event("inactivity", "k", local(21), site=SITE, resident="li", kind=EventKind.MOTION)

    assert synthetic.device_id == "(none)"
    assert synthetic.kind is EventKind.MOTION


def test_repeated_door_and_presence_reports_are_one_sign_of_life_until_the_state_changes() -> None:
    signs = SignsOfLife()
    door = "door-101"

    assert signs.observe(event(EventKind.DOOR_CLOSED, local(9), device=door))
    assert not signs.observe(event(EventKind.DOOR_CLOSED, local(10), device=door))
    assert signs.observe(event(EventKind.DOOR_OPEN, local(11), device=door))
    assert signs.observe(event(EventKind.PRESENCE, local(11), value=True))
    assert not signs.observe(event(EventKind.PRESENCE, local(12), value=True))
    assert not signs.observe(event(EventKind.PRESENCE, local(13), value=False))
    assert signs.observe(event(EventKind.PRESENCE, local(14), value=True))


def test_motion_and_check_ins_always_count_but_cleared_motion_and_telemetry_do_not() -> None:
    signs = SignsOfLife()

    assert signs.observe(motion(local(9)))
    assert signs.observe(motion(local(9, 1)))
    assert signs.observe(event(EventKind.CHECK_IN, local(9, 2), device="pendant-wang", resident="wang"))
    assert not signs.observe(event(EventKind.MOTION, local(9, 3), value=False))
    assert not signs.observe(event(EventKind.HEART_RATE, local(9, 4), value=70))


def test_a_room_sensor_speaks_for_its_room_and_a_hall_sensor_only_in_a_private_home() -> None:
    ctx = context()

    assert [r.id for r in residents_of(ctx, motion(local(9)))] == ["wang"]
    assert residents_of(ctx, motion(local(9), device="hall-motion", room=None)) == []
    flat = event(EventKind.MOTION, local(9), device="flat-motion", site=HOME, room=None, value=True)
    assert [r.id for r in residents_of(ctx, flat)] == ["zhang"]


def test_an_event_is_about_its_own_resident_else_the_only_resident_of_its_room_else_its_device() -> None:
    ctx = context()
    watch = event(EventKind.HEART_RATE, local(9), device="watch-wang", room=None, resident="wang", value=70)
    hall = motion(local(9), device="hall-motion", room=None)

    assert subject_of_event(ctx, watch) == ("resident:wang", "wang")
    assert subject_of_event(ctx, motion(local(9))) == ("resident:wang", "wang")
    assert subject_of_event(ctx, hall) == ("device:hall-motion", None)


def test_wellbeing_rules_plug_into_the_rule_engine_with_one_config_or_one_per_site() -> None:
    ctx = context()
    per_site = {SITE: wellbeing(), HOME: wellbeing({"inactivity": {"hours": 2}})}

    for config, expected in (
        (wellbeing(), []),
        (per_site.__getitem__, ["inactivity:zhang-home:resident:zhang"]),
    ):
        rules = wellbeing_rules(ctx, config, local(0))
        engine = RuleEngine(rules)

        assert {rule.name for rule in rules} == {
            "inactivity",
            "missed_check_in",
            "repositioning_due",
            "falling_from_bed",
            "scalds",
            "fever_cluster",
            "bed_exit",
            "vitals",
            "device_health",
            "activity_baseline",
        }
        assert engine.handle(motion(local(8)), local(8)) == []
        assert [a.incident_key for a in alarms(engine.tick(local(8, 1)))] == expected
