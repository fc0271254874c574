"""Activity baseline: Wang is usually up and about from 07:00 to 22:00, about six events an hour."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import pytest
from test_wellbeing_support import alarms, context, local, motion, wellbeing

from rules import AlarmDecision, Severity
from rules.wellbeing import ActivityBaselineRule

#: Wang's usual events per local hour.
USUAL = np.array([0.0] * 7 + [6.0] * 15 + [0.0] * 2)
KEY = "baseline:sunrise:resident:wang"


def usual_days(days: int, seed: int = 7) -> npt.NDArray[np.float64]:
    return np.random.default_rng(seed).poisson(USUAL, size=(days, 24)).astype(np.float64)


def rule(history_days: int = 14, start: datetime = local(0), **baseline: object) -> ActivityBaselineRule:
    activity = ActivityBaselineRule(context(), wellbeing({"baseline": baseline}), start)
    if history_days:
        activity.seed("wang", usual_days(history_days))
    return activity


def move(activity: ActivityBaselineRule, hour: int, times: int, *, day: int = 6) -> None:
    """Wang moves in room 101 `times` times during local `hour`."""
    for n in range(times):
        at = local(hour, 5 + n, day=day)
        activity.on_event(motion(at), at)


def hourly(activity: ActivityBaselineRule, first: int, last: int, *, day: int = 6) -> list[AlarmDecision]:
    """Tick at the end of each local hour from `first`:00 to `last`:00."""
    return [a for hour in range(first, last + 1) for a in alarms(activity.on_tick(local(hour, day=day)))]


def wangs(decisions: list[AlarmDecision]) -> list[AlarmDecision]:
    return [d for d in decisions if d.incident_key == KEY]


def test_a_morning_with_almost_no_activity_raises_one_medium_alarm_by_eleven() -> None:
    activity = rule()
    move(activity, 7, 1)

    [alarm] = hourly(activity, 1, 11)

    assert alarm.severity is Severity.MEDIUM
    assert alarm.rule == "activity_baseline"
    assert alarm.incident_key == KEY
    assert alarm.event.device_id == "motion-101"
    assert alarm.event.received_at <= local(11)
    assert float(alarm.evidence["z"]) <= -2.5
    assert alarm.evidence["today"] == 1.0
    assert alarm.evidence["history_days"] == 14


def test_the_alarm_is_raised_once_a_day() -> None:
    activity = rule()

    assert len(wangs(hourly(activity, 1, 23))) == 1


def test_a_normal_day_raises_nothing() -> None:
    activity = rule()
    for hour in range(24):
        move(activity, hour, int(USUAL[hour]))

    assert hourly(activity, 1, 23) == []


def test_fewer_days_of_history_than_min_days_raise_nothing() -> None:
    activity = rule(history_days=5)

    assert hourly(activity, 1, 23) == []


def test_min_days_is_configurable() -> None:
    activity = rule(history_days=5, min_days=5)

    assert len(hourly(activity, 1, 23)) == 1


def test_an_unseeded_resident_is_never_compared() -> None:
    activity = rule(history_days=0)

    assert hourly(activity, 1, 23) == []


def test_days_watched_from_midnight_enter_the_history_but_the_first_partial_day_does_not() -> None:
    activity = rule(history_days=0, start=local(9, 30))
    move(activity, 10, 3)
    move(activity, 8, 2, day=7)
    move(activity, 20, 4, day=7)

    hourly(activity, 0, 0, day=8)

    [day_7] = activity.history("wang")
    assert day_7[8] == 2
    assert day_7[20] == 4
    assert day_7.sum() == 6


def test_counted_days_make_a_baseline_without_seeding() -> None:
    activity = rule(history_days=0, start=local(0, day=1), min_days=3)
    for day in range(1, 5):
        for hour in range(7, 22):
            move(activity, hour, 6, day=day)
        hourly(activity, 0, 23, day=day)

    assert activity.history("wang").shape == (3, 24)  # day 4 enters at the first tick of day 5

    assert len(wangs(hourly(activity, 1, 12, day=5))) == 1
    assert np.array_equal(activity.history("wang"), np.tile(USUAL, (4, 1)))


def test_a_partly_watched_day_is_compared_over_the_watched_hours_only() -> None:
    activity = rule(start=local(9, 30))
    for hour in range(10, 24):
        move(activity, hour, int(USUAL[hour]))

    assert hourly(activity, 10, 23) == []


def test_seeding_keeps_the_latest_days_and_refuses_bad_shapes() -> None:
    activity = rule(history_days=0)
    activity.seed("wang", usual_days(20))

    assert np.array_equal(activity.history("wang"), usual_days(20)[-14:])
    with pytest.raises(ValueError, match="shape"):
        activity.seed("wang", np.zeros((3, 12)))
    with pytest.raises(ValueError, match="negative"):
        activity.seed("wang", -np.ones((3, 24)))
    with pytest.raises(KeyError):
        activity.seed("nobody", usual_days(3))


def test_activity_in_another_room_does_not_count_for_wang() -> None:
    activity = rule()
    for hour in range(7, 11):
        for n in range(6):
            at = local(hour, n) + timedelta(seconds=1)
            activity.on_event(motion(at, device="motion-102", room="102"), at)

    assert len(wangs(hourly(activity, 1, 11))) == 1
