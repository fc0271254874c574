"""Vital signs out of range for longer than `for_s` (120 s), with hysteresis (3 bpm, 1 %, 0.2 °C)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from test_wellbeing_support import alarms, context, event, local, wellbeing

from devices.model import DeviceEvent, DeviceType, EventKind
from rules import AlarmDecision, Severity
from rules.wellbeing import VitalsRule

T0 = local(9)
HR_KEY = "vitals:sunrise:resident:wang:heart_rate"


def rule(config: dict[str, object] | None = None) -> VitalsRule:
    return VitalsRule(context(), wellbeing(config))


def reading(value: float, at: datetime, kind: EventKind = EventKind.HEART_RATE) -> DeviceEvent:
    return event(
        kind,
        at,
        device="watch-wang",
        device_type=DeviceType.VITALS_MONITOR,
        room=None,
        resident="wang",
        value=value,
    )


def run(
    vitals: VitalsRule, readings: Iterable[tuple[float, float]], kind: EventKind = EventKind.HEART_RATE
) -> list[AlarmDecision]:
    """Feed (seconds after T0, value) readings, ticking at each; the alarms raised."""
    raised: list[AlarmDecision] = []
    for offset, value in readings:
        at = T0 + timedelta(seconds=offset)
        raised += alarms(vitals.on_event(reading(value, at, kind), at))
        raised += alarms(vitals.on_tick(at))
    return raised


def every(seconds: float, start: float, end: float, value: float) -> list[tuple[float, float]]:
    """A reading of `value` every `seconds` from `start` (inclusive) to `end` (exclusive)."""
    count = round((end - start) / seconds)
    return [(start + n * seconds, value) for n in range(count)]


def test_a_heart_rate_dancing_on_the_limit_for_half_an_hour_raises_exactly_one_alarm() -> None:
    dance = [(10.0 * n, 121.0 if n % 2 else 120.0) for n in range(180)]

    [alarm] = run(rule(), dance)

    assert alarm.severity is Severity.HIGH
    assert alarm.incident_key == HR_KEY
    assert alarm.event.received_at == T0 + timedelta(seconds=130)
    assert alarm.evidence["direction"] == "high"
    assert alarm.evidence["min"] == 120.0
    assert alarm.evidence["max"] == 121.0
    assert alarm.evidence["mean"] == 120.54  # 7 readings of 121 and 6 of 120
    assert alarm.evidence["out_of_range_s"] == 120.0


def test_spikes_shorter_than_for_s_raise_nothing() -> None:
    readings: list[tuple[float, float]] = []
    for minute in range(0, 30, 5):  # a 60-second spike every five minutes, normal in between
        start = minute * 60.0
        readings += every(10, start, start + 60, 135) + every(10, start + 60, start + 300, 80)

    assert run(rule(), readings) == []


def test_recovery_and_then_a_new_excursion_raise_again() -> None:
    readings = every(10, 0, 180, 130) + every(10, 180, 300, 80) + every(10, 300, 480, 130)

    first, second = run(rule(), readings)

    assert first.incident_key == second.incident_key == HR_KEY
    assert first.event.received_at == T0 + timedelta(seconds=120)
    assert second.event.received_at == T0 + timedelta(seconds=420)


def test_a_reading_inside_the_hysteresis_band_does_not_end_an_excursion() -> None:
    within_band = every(10, 0, 60, 125) + every(10, 60, 90, 118) + every(10, 90, 150, 125)
    back_by_margin = every(10, 0, 60, 125) + every(10, 60, 90, 116) + every(10, 90, 150, 125)

    assert len(run(rule(), within_band)) == 1
    assert run(rule(), back_by_margin) == []


def test_a_low_oxygen_saturation_is_raised_with_its_evidence() -> None:
    readings = [(0.0, 89.0), (30.0, 88.0), (60.0, 87.0), (90.0, 88.0), (120.0, 89.5)]

    [alarm] = run(rule(), readings, EventKind.SPO2)

    assert alarm.incident_key == "vitals:sunrise:resident:wang:spo2"
    assert alarm.evidence["direction"] == "low"
    assert alarm.evidence["readings"] == 5
    assert (alarm.evidence["min"], alarm.evidence["max"], alarm.evidence["mean"]) == (87.0, 89.5, 88.3)
    assert alarm.evidence["low"] == 90.0


def test_a_fever_is_raised_and_a_normal_temperature_is_not() -> None:
    assert len(run(rule(), every(30, 0, 180, 38.6), EventKind.BODY_TEMPERATURE)) == 1
    assert run(rule(), every(30, 0, 600, 37.9), EventKind.BODY_TEMPERATURE) == []


def test_a_residents_own_range_applies_to_them() -> None:
    athlete = rule({"residents": {"wang": {"vitals": {"heart_rate": {"low": 30}}}}})

    assert run(athlete, every(10, 0, 300, 35)) == []
    assert len(run(rule(), every(10, 0, 300, 35))) == 1


def test_a_silence_longer_than_the_window_restarts_the_timer() -> None:
    readings = [(0.0, 130.0), (1200.0, 130.0), (1260.0, 130.0), (1320.0, 130.0)]

    [alarm] = run(rule(), readings)

    assert alarm.event.received_at == T0 + timedelta(seconds=1320)


def test_non_numeric_readings_and_other_kinds_are_ignored() -> None:
    vitals = rule()
    at = T0 + timedelta(seconds=600)

    assert vitals.on_event(reading(float("nan"), at), at) == ()
    assert vitals.on_event(event(EventKind.HEART_RATE, at, value="fast"), at) == ()
    assert vitals.on_event(event(EventKind.TEMPERATURE, at, value=45.0), at) == ()


# --- property: one alarm per excursion ----------------------------------------------------------

LOW, HIGH, MARGIN, FOR_S = 40.0, 120.0, 3.0, 120.0


def excursion_of_each_reading(values: list[float]) -> list[int | None]:
    """The excursion (numbered from 0) each reading belongs to, by the rule's definition: it starts when
    a reading leaves [LOW, HIGH] and ends when one is back inside it by MARGIN; None while normal."""
    numbers: list[int | None] = []
    current: int | None = None
    count = 0
    for value in values:
        if current is None and not LOW <= value <= HIGH:
            current, count = count, count + 1
        elif current is not None and LOW + MARGIN <= value <= HIGH - MARGIN:
            current = None
        numbers.append(current)
    return numbers


AROUND_THE_LIMIT = [110.0, 116.0, 117.0, 118.0, 119.0, 120.0, 120.5, 121.0, 122.0, 125.0, 140.0]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        # Runs of one value: (value, how long it lasts in seconds, seconds between readings).
        st.tuples(
            st.sampled_from(AROUND_THE_LIMIT),
            st.integers(min_value=1, max_value=400),
            st.integers(min_value=1, max_value=60),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_the_vitals_rule_never_raises_more_than_one_alarm_per_excursion(
    runs: list[tuple[float, int, int]],
) -> None:
    vitals = rule()
    offsets: list[float] = []
    values: list[float] = []
    elapsed = 0.0
    for value, duration, period in runs:
        for step in range(0, duration, period):
            offsets.append(elapsed + step)
            values.append(value)
        elapsed += duration
    excursions = excursion_of_each_reading(values)

    alarmed_in: list[int] = []
    for offset, value, excursion in zip(offsets, values, excursions, strict=True):
        at = T0 + timedelta(seconds=offset)
        raised = alarms(vitals.on_event(reading(value, at), at)) + alarms(vitals.on_tick(at))
        if raised:
            assert len(raised) == 1
            assert excursion is not None, "an alarm outside any excursion"
            alarmed_in.append(excursion)

    assert len(alarmed_in) == len(set(alarmed_in))
