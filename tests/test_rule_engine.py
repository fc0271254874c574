"""The rule engine hands each rule only the kinds it reads (`kinds`), and that decides exactly what asking
every rule about every event decides.

Hypothesis plays random days of telemetry (every kind, values of every type, at-risk residents, bed mats,
doors, wearables) with ticks between, through the engine and through a reference that calls each rule's
`on_event` for every event; decisions and the rules' saved state must be the same at every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from test_wellbeing_support import SITE, local, wellbeing

from devices.model import DeviceEvent, DeviceType, EventKind
from gateway.config import CarelineConfig
from gateway.directory import active_devices, rule_context
from rules import Decision, Rule, RuleEngine
from rules.engine import kinds_read
from rules.state import snapshot_rules
from rules.wellbeing import wellbeing_rules

DEVICES = {
    "motion-101": DeviceType.MOTION_SENSOR,
    "bed-wang": DeviceType.BED_SENSOR,
    "watch-wang": DeviceType.VITALS_MONITOR,
    "door-101": DeviceType.DOOR_SENSOR,
    "tap-101": DeviceType.OTHER,
    "pendant-wang": DeviceType.SOS_BUTTON,
}
CONFIG = wellbeing({"inactivity": {"hours": 2}, "check_in": {"enabled": True, "by": "10:00"}})


def careline() -> CarelineConfig:
    return CarelineConfig.model_validate(
        {
            "sites": [{"id": SITE, "name": "Sunrise", "timezone": "Asia/Shanghai", "rooms": [{"id": "101"}]}],
            "residents": [
                {
                    "id": "wang",
                    "name": "Wang",
                    "site": SITE,
                    "room": "101",
                    "risks": ["pressure_sores", "falling_from_bed", "scalds"],
                }
            ],
            "devices": [
                {"id": device, "type": str(kind), "site": SITE, "room": "101", "resident": "wang"}
                for device, kind in DEVICES.items()
            ],
        }
    )


def rules_at(start: datetime) -> list[Rule]:
    config = careline()
    return wellbeing_rules(rule_context(config), CONFIG, start, devices=active_devices(config))


values = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(min_value=0, max_value=120, allow_nan=False),
    st.sampled_from(["left", "back", "on", "off", "open"]),
)


@st.composite
def steps(draw: st.DrawFn) -> list[tuple[int, DeviceEvent | None]]:
    """Minutes after the start, and an event there (None: a tick)."""
    played: list[tuple[int, DeviceEvent | None]] = []
    minute = 0
    for _ in range(draw(st.integers(1, 60))):
        minute += draw(st.integers(0, 90))
        if draw(st.booleans()):
            played.append((minute, None))
            continue
        device = draw(st.sampled_from(sorted(DEVICES)))
        at = START + timedelta(minutes=minute)
        kind = draw(st.sampled_from(list(EventKind)))
        played.append((minute, _event(device, kind, draw(values), at)))
    return played


START = local(20)


def _event(device: str, kind: EventKind, value: float | bool | str | None, at: datetime) -> DeviceEvent:
    return DeviceEvent(device, DEVICES[device], SITE, "101", "wang", kind, value, at, at, f"{device}:{at}")


def _every_rule(rules: Sequence[Rule], event: DeviceEvent, now: datetime) -> list[Decision]:
    return [decision for rule in rules for decision in rule.on_event(event, now)]


@settings(max_examples=150, deadline=None)
@given(steps())
def test_dispatching_by_kind_decides_what_asking_every_rule_decides(
    played: list[tuple[int, DeviceEvent | None]],
) -> None:
    engine, reference = RuleEngine(rules_at(START)), rules_at(START)
    for minute, event in played:
        now = START + timedelta(minutes=minute)
        if event is None:
            assert engine.tick(now) == [d for rule in reference for d in rule.on_tick(now)]
        else:
            assert engine.handle(event, now) == _every_rule(reference, event, now)
        assert snapshot_rules(engine.rules, now) == snapshot_rules(reference, now)


def test_the_wellbeing_rules_say_what_they_read() -> None:
    rules = rules_at(START)
    reading_everything = {rule.name for rule in rules if kinds_read(rule) is None}
    # Device health notes every event as the device's last sign of life; every other rule reads a few kinds.
    assert reading_everything == {"device_health"}
    engine = RuleEngine(rules)
    assert {rule.name for rule in engine._by_kind[EventKind.LINK_QUALITY]} == {"device_health"}
