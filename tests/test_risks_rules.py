"""The risk rules of GB/T 38600 where sensors help (docs/risks.md), as pure rules with explicit times:
repositioning reminders, falling from bed, scalds, the locked dementia zone's exits, fever readings and
the fever cluster."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from test_wellbeing_support import SITE, event, local

from devices.decode import decode
from devices.model import Binding, DecodeError, DeviceEvent, DeviceType, EventKind, Lane, RawMessage
from devices.registry import DeviceRegistry
from gateway.config import CarelineConfig
from gateway.directory import rule_context
from rules import DoorAtNightRule, LockedZoneExitRule, Severity
from rules.context import RuleContext
from rules.model import AlarmDecision, CancelDecision, Decision, TemperatureTaken
from rules.wellbeing import (
    BedExitRule,
    FallingFromBedRule,
    FeverReadingRule,
    RepositioningRule,
    ScaldsRule,
    WellbeingConfig,
)
from rules.wellbeing.config import FeverConfig
from rules.wellbeing.fever import LastCluster, cluster_alarm, temperature_taken


def careline() -> CarelineConfig:
    """Sunrise: wing A is a locked dementia zone (its exit `door-a-exit`); Wang (101) is at risk of
    pressure sores and of falling from bed, Li (102) of scalds, Chen (103) carries no flag."""
    return CarelineConfig.model_validate(
        {
            "sites": [
                {
                    "id": SITE,
                    "name": "Sunrise",
                    "timezone": "Asia/Shanghai",
                    "wings": [
                        {"id": "A", "locked_dementia_zone": True, "exits": ["door-a-exit"]},
                        {"id": "B"},
                    ],
                    "rooms": [
                        {"id": "101", "wing": "A"},
                        {"id": "102", "wing": "B"},
                        {"id": "103", "wing": "B"},
                    ],
                }
            ],
            "residents": [
                {
                    "id": "wang",
                    "name": "Wang",
                    "site": SITE,
                    "room": "101",
                    "risks": ["pressure_sores", "falling_from_bed"],
                },
                {"id": "li", "name": "Li", "site": SITE, "room": "102", "risks": ["scalds", "wandering"]},
                {"id": "chen", "name": "Chen", "site": SITE, "room": "103"},
            ],
            "devices": [
                {"id": "bed-wang", "type": "bed_sensor", "site": SITE, "resident": "wang"},
                {"id": "bed-chen", "type": "bed_sensor", "site": SITE, "resident": "chen"},
                {"id": "tap-102", "type": "other", "site": SITE, "room": "102"},
                {"id": "tap-103", "type": "other", "site": SITE, "room": "103"},
                {"id": "door-a-exit", "type": "door_sensor", "site": SITE},
                {"id": "door-102", "type": "door_sensor", "site": SITE, "room": "102"},
                {"id": "watch-li", "type": "vitals_monitor", "site": SITE, "resident": "li"},
            ],
        }
    )


def context() -> RuleContext:
    return rule_context(careline())


def settings(**sections: Any) -> WellbeingConfig:
    return WellbeingConfig.model_validate(sections)


def bed(kind: EventKind, value: Any, at: datetime, resident: str = "wang") -> DeviceEvent:
    return event(
        kind,
        at,
        device=f"bed-{resident}",
        device_type=DeviceType.BED_SENSOR,
        room=None,
        resident=resident,
        value=value,
    )


def alarms(decisions: list[Decision]) -> list[AlarmDecision]:
    return [d for d in decisions if isinstance(d, AlarmDecision)]


def run(rule: Any, *events: DeviceEvent) -> list[Decision]:
    return [decision for e in events for decision in rule.on_event(e, e.received_at)]


# --- the risk sensors' readings, in both profiles ---------------------------------------------------


def decoded(topic: str, payload: dict[str, Any]) -> list[tuple[EventKind, Any]]:
    registry = DeviceRegistry(
        [
            Binding("bed-wang", DeviceType.BED_SENSOR, SITE, None, "wang"),
            Binding("mat-wang", DeviceType.BED_SENSOR, SITE, None, "wang", "zigbee2mqtt", "wing-a/101/mat"),
            Binding("tap-102", DeviceType.OTHER, SITE, "102", None, "zigbee2mqtt", "wing-b/102/tap"),
        ]
    )
    raw = RawMessage(topic, json.dumps(payload).encode(), local(9), Lane.TELEMETRY)
    return [(e.kind, e.value) for e in decode(raw, registry)]


def test_a_bed_s_position_and_the_water_s_temperature_decode_in_both_profiles() -> None:
    native = {"v": 1, "event_id": "event-001", "ts": 1767657600000, "kind": "bed_position", "value": "left"}
    water = {"v": 1, "event_id": "event-002", "ts": 1767657600000, "kind": "water_temperature", "value": 52.5}

    assert decoded("careline/sunrise/bed-wang/telemetry", native) == [(EventKind.BED_POSITION, "left")]
    assert decoded("careline/sunrise/bed-wang/telemetry", water) == [(EventKind.WATER_TEMPERATURE, 52.5)]
    assert (EventKind.BED_POSITION, "back") in decoded(
        "zigbee2mqtt/wing-a/101/mat", {"posture": "back", "presence": True}
    )
    assert decoded("zigbee2mqtt/wing-b/102/tap", {"water_temperature": 61}) == [
        (EventKind.WATER_TEMPERATURE, 61)
    ]
    with pytest.raises(DecodeError, match=r"water_temperature 180 is outside 0\.\.100"):
        decoded("zigbee2mqtt/wing-b/102/tap", {"water_temperature": 180})


# --- pressure sores: repositioning reminders ---------------------------------------------------------


def test_no_change_of_position_for_two_hours_gives_the_carer_a_low_task_for_that_resident() -> None:
    rule = RepositioningRule(context(), settings())
    assert run(rule, bed(EventKind.BED_POSITION, "left", local(13))) == []

    assert rule.on_tick(local(14, 59)) == []
    [task] = alarms(list(rule.on_tick(local(15))))

    assert (task.rule, task.severity) == ("repositioning_due", Severity.LOW)
    assert task.incident_key == "repositioning_due:sunrise:resident:wang"
    assert (task.event.device_id, task.event.resident) == ("bed-wang", "wang")
    assert task.evidence == {"hours": 2.0, "position": "left"}


def test_a_change_of_position_restarts_the_timer_and_the_same_position_reported_again_does_not() -> None:
    rule = RepositioningRule(context(), settings(repositioning={"hours": 2}))
    run(rule, bed(EventKind.BED_POSITION, "left", local(13)), bed(EventKind.BED_POSITION, "left", local(14)))
    run(rule, bed(EventKind.BED_POSITION, "back", local(14, 30)))

    assert rule.on_tick(local(16, 29)) == []
    assert len(alarms(list(rule.on_tick(local(16, 30))))) == 1


def test_the_sensor_seeing_the_new_position_closes_the_task_as_repositioned() -> None:
    rule = RepositioningRule(context(), settings())
    run(rule, bed(EventKind.BED_POSITION, "left", local(13)))
    assert alarms(list(rule.on_tick(local(15))))

    [done] = run(rule, bed(EventKind.BED_POSITION, "right", local(15, 20)))

    assert isinstance(done, CancelDecision)
    assert (done.incident_key, done.reason) == ("repositioning_due:sunrise:resident:wang", "repositioned")
    assert done.event.device_id == "bed-wang"
    # The timer runs from the change; a later change with no task open closes nothing.
    assert rule.on_tick(local(17, 19)) == []
    assert alarms(list(rule.on_tick(local(17, 20))))


def test_with_nobody_turning_the_resident_the_reminder_comes_again_each_interval() -> None:
    rule = RepositioningRule(context(), settings(repositioning={"hours": 1}))
    run(rule, bed(EventKind.BED_POSITION, "left", local(13)))

    times = [at for at in (local(14), local(14, 30), local(15), local(16)) if alarms(list(rule.on_tick(at)))]

    assert times == [local(14), local(15), local(16)]


def test_a_report_from_the_bed_after_the_interval_raises_the_task_on_its_own_receive_time() -> None:
    rule = RepositioningRule(context(), settings())
    run(rule, bed(EventKind.BED_POSITION, "left", local(13)))

    [task] = alarms(run(rule, bed(EventKind.BED_OCCUPIED, True, local(15, 1))))

    assert task.event.received_at == local(15, 1)


def test_out_of_bed_no_reminder_is_due_and_lying_is_timed_again_from_getting_back_in() -> None:
    rule = RepositioningRule(context(), settings())
    run(rule, bed(EventKind.BED_POSITION, "left", local(8)), bed(EventKind.BED_OCCUPIED, False, local(9)))
    assert rule.on_tick(local(12)) == []

    run(rule, bed(EventKind.BED_OCCUPIED, True, local(12)))

    assert rule.on_tick(local(13, 59)) == []
    assert alarms(list(rule.on_tick(local(14))))


def test_residents_not_flagged_for_pressure_sores_get_no_task() -> None:
    rule = RepositioningRule(context(), settings())
    run(rule, bed(EventKind.BED_POSITION, "left", local(13), resident="chen"))

    assert rule.on_tick(local(20)) == []


# --- falling from bed --------------------------------------------------------------------------------


def test_a_resident_at_risk_of_falling_from_bed_leaving_it_at_night_alarms_at_once() -> None:
    rule = FallingFromBedRule(context(), settings())

    [alarm] = alarms(
        run(
            rule,
            bed(EventKind.BED_OCCUPIED, True, local(23, day=5)),
            bed(EventKind.BED_OCCUPIED, False, local(2)),
        )
    )

    assert (alarm.rule, alarm.severity) == ("falling_from_bed", Severity.HIGH)
    assert alarm.incident_key == "falling_from_bed:sunrise:resident:wang"
    assert alarm.event.received_at == local(2)
    # The empty bed reported again is the same exit, not another alarm.
    assert run(rule, bed(EventKind.BED_OCCUPIED, False, local(2, 1))) == []


def test_by_day_or_without_the_flag_getting_up_raises_nothing_here() -> None:
    rule = FallingFromBedRule(context(), settings())

    by_day = run(
        rule, bed(EventKind.BED_OCCUPIED, True, local(13)), bed(EventKind.BED_OCCUPIED, False, local(14))
    )
    unflagged = run(
        rule,
        bed(EventKind.BED_OCCUPIED, True, local(1), resident="chen"),
        bed(EventKind.BED_OCCUPIED, False, local(2), resident="chen"),
    )

    assert by_day == []
    assert unflagged == []


def test_with_a_grace_back_in_bed_within_it_is_no_alarm_and_staying_up_is() -> None:
    rule = FallingFromBedRule(context(), settings(falling_from_bed={"grace_s": 60}))
    run(
        rule,
        bed(EventKind.BED_OCCUPIED, False, local(2)),
        bed(EventKind.BED_OCCUPIED, True, local(2, 0, second=40)),
    )
    assert rule.on_tick(local(2, 5)) == []

    run(rule, bed(EventKind.BED_OCCUPIED, False, local(3)))
    assert rule.on_tick(local(3, 0, second=59)) == []
    [alarm] = alarms(list(rule.on_tick(local(3, 1))))
    assert alarm.evidence == {"left_bed_at": "03:00", "seconds_out_of_bed": 60.0}


def test_the_general_bed_exit_rule_leaves_residents_at_risk_of_falling_from_bed_to_the_faster_rule() -> None:
    bed_exit = BedExitRule(context(), settings())
    run(
        bed_exit,
        bed(EventKind.BED_OCCUPIED, False, local(2)),
        bed(EventKind.BED_OCCUPIED, False, local(2), resident="chen"),
    )

    assert [a.incident_key for a in alarms(list(bed_exit.on_tick(local(3))))] == [
        "bed_exit:sunrise:resident:chen"
    ]


# --- scalds ------------------------------------------------------------------------------------------


def water(celsius: float, at: datetime, tap: str = "tap-102") -> DeviceEvent:
    return event(
        EventKind.WATER_TEMPERATURE,
        at,
        device=tap,
        device_type=DeviceType.OTHER,
        room=tap[-3:],
        value=celsius,
    )


def test_hot_water_above_the_limit_at_a_resident_at_risk_of_scalds_alarms_once_per_excursion() -> None:
    rule = ScaldsRule(context(), settings())
    at = local(9)

    decided = [
        alarms(run(rule, water(c, at + timedelta(seconds=10 * i))))
        for i, c in enumerate((50, 55, 58, 49, 46, 44.9, 51))
    ]

    assert [len(found) for found in decided] == [0, 1, 0, 0, 0, 0, 1]
    first = decided[1][0]
    assert (first.rule, first.severity, first.incident_key) == (
        "scalds",
        Severity.HIGH,
        "scalds:sunrise:tap-102",
    )
    assert first.evidence == {"water_c": 55, "limit_c": 50.0, "residents_at_risk": "li"}


def test_hot_water_where_nobody_is_at_risk_of_scalds_or_under_a_site_s_higher_limit_raises_nothing() -> None:
    assert run(ScaldsRule(context(), settings()), water(70, local(9), tap="tap-103")) == []
    assert run(ScaldsRule(context(), settings(scalds={"limit_c": 60})), water(58, local(9))) == []


# --- the locked dementia zone ------------------------------------------------------------------------


def door(open_: bool, at: datetime, device: str = "door-a-exit") -> DeviceEvent:
    kind = EventKind.DOOR_OPEN if open_ else EventKind.DOOR_CLOSED
    return event(kind, at, device=device, device_type=DeviceType.DOOR_SENSOR, room=None)


def test_an_exit_of_the_locked_zone_opening_by_day_alarms_once_per_opening() -> None:
    rule = LockedZoneExitRule(context())

    found = alarms(
        run(
            rule,
            door(True, local(11)),
            door(True, local(11, 1)),
            door(False, local(11, 2)),
            door(True, local(15)),
        )
    )

    assert [a.event.received_at for a in found] == [local(11), local(15)]
    assert (found[0].rule, found[0].severity) == ("locked_zone_exit", Severity.HIGH)
    assert found[0].incident_key == "locked_zone_exit:sunrise:door-a-exit"
    assert found[0].evidence == {"zone": "A", "local_time": "11:00"}


def test_other_doors_are_not_the_zone_s_and_the_night_rule_does_not_alarm_twice_for_an_exit() -> None:
    zone, night = LockedZoneExitRule(context()), DoorAtNightRule(context())

    assert run(zone, door(True, local(11), device="door-102")) == []
    assert run(night, door(True, local(2))) == []
    # Li is at risk of wandering: her door at night is still the night rule's.
    assert len(alarms(run(night, door(True, local(2), device="door-102")))) == 1


# --- fever readings and the cluster ------------------------------------------------------------------


def temperature(celsius: float, at: datetime, *, manual: bool = False) -> DeviceEvent:
    reading = event(
        EventKind.BODY_TEMPERATURE,
        at,
        device="watch-li",
        device_type=DeviceType.VITALS_MONITOR,
        room=None,
        resident="li",
        value=celsius,
    )
    if manual:
        reading.extra["manual"] = True
    return reading


def test_a_wearable_s_fever_is_noted_once_every_few_hours_and_normal_or_manual_readings_not_here() -> None:
    rule = FeverReadingRule(context(), settings())
    readings = [
        temperature(37.2, local(8)),
        temperature(37.3, local(9)),
        temperature(38.0, local(10)),
        temperature(38.1, local(13)),
        temperature(39, local(14), manual=True),
    ]

    noted = [d for d in run(rule, *readings) if isinstance(d, TemperatureTaken)]

    assert [(d.event.value, d.fever, d.recorded_by) for d in noted] == [
        (37.3, True, "device:watch-li"),
        (38.1, True, "device:watch-li"),
    ]
    assert (noted[0].cluster_size, noted[0].window) == (3, timedelta(hours=24))


def taken(resident: str, at: datetime, celsius: float = 38.0) -> TemperatureTaken:
    reading = event(
        EventKind.BODY_TEMPERATURE,
        at,
        device="manual-entry",
        device_type=DeviceType.OTHER,
        room=None,
        resident=resident,
        value=celsius,
    )
    return temperature_taken(reading, celsius, FeverConfig(), "nurse-wu")


def test_the_cluster_fires_at_the_third_feverish_resident_and_not_at_the_second() -> None:
    assert cluster_alarm(taken("b", local(9)), ["a", "b"], True, None) is None

    alarm = cluster_alarm(taken("c", local(10)), ["a", "b", "c"], True, None)

    assert alarm is not None
    assert (alarm.rule, alarm.severity, alarm.incident_key) == (
        "fever_cluster",
        Severity.HIGH,
        "fever_cluster:sunrise",
    )
    assert alarm.event.resident is None
    assert alarm.evidence["feverish_residents"] == 3
    assert alarm.evidence["residents"] == "a,b,c"


def test_the_same_cluster_fires_no_second_incident() -> None:
    three = ["a", "b", "c"]
    # A resident already counted, or a reading that is no fever, changes nothing.
    assert cluster_alarm(taken("c", local(11)), three, False, None) is None
    assert cluster_alarm(taken("d", local(11), 37.0), three, True, None) is None
    # A further resident while the incident is open joins it (same key); once resolved, the same day's
    # further residents raise nothing; a day after it opened, a new cluster may be raised.
    opened = LastCluster(local(10), active=True)
    joined = cluster_alarm(taken("d", local(12)), [*three, "d"], True, opened)
    assert joined is not None
    assert joined.incident_key == "fever_cluster:sunrise"
    assert (
        cluster_alarm(taken("d", local(12)), [*three, "d"], True, LastCluster(local(10), active=False))
        is None
    )
    later = LastCluster(local(10, day=5), active=False)
    assert cluster_alarm(taken("d", local(12)), [*three, "d"], True, later) is not None


def test_a_locked_zone_s_exit_must_be_a_door_sensor_of_its_site() -> None:
    document = careline().model_dump(mode="json")
    document["sites"][0]["wings"][0]["exits"] = ["tap-102"]

    with pytest.raises(ValueError, match="names 'tap-102' as an exit, which is not a door sensor"):
        CarelineConfig.model_validate(document)
