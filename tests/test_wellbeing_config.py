"""Wellbeing settings: defaults, bounds, quoted local times and per-resident overrides."""

from __future__ import annotations

from datetime import time
from typing import Any

import pytest
from pydantic import ValidationError

from rules.wellbeing import WellbeingConfig


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        WellbeingConfig.model_validate(data)
    return str(caught.value)


def test_the_defaults_are_the_documented_ones() -> None:
    config = WellbeingConfig()
    rules = config.for_resident("anyone")

    assert rules.inactivity.enabled
    assert rules.inactivity.hours == 12
    assert rules.check_in.enabled is False
    assert rules.check_in.by == time(10, 0)
    assert rules.bed_exit.minutes == 30
    assert rules.bed_exit.night.start == time(22, 0)
    assert (rules.vitals.heart_rate.low, rules.vitals.heart_rate.high) == (40, 120)
    assert rules.vitals.spo2.low == 90
    assert rules.vitals.spo2.high is None
    assert (rules.vitals.body_temperature.low, rules.vitals.body_temperature.high) == (35.0, 38.0)
    assert rules.vitals.for_s == 120
    assert config.device_health.heartbeat_interval_s == 3600
    assert config.device_health.grace_factor == 2.0
    assert config.device_health.battery_low_pct == 15
    assert (rules.baseline.days, rules.baseline.z_threshold, rules.baseline.min_days) == (14, -2.5, 7)


def test_a_resident_override_changes_only_what_it_names() -> None:
    config = WellbeingConfig.model_validate(
        {
            "inactivity": {"hours": 8, "active_hours": {"start": "08:00", "end": "21:00"}},
            "vitals": {"heart_rate": {"high": 130}},
            "residents": {
                "wang": {
                    "inactivity": {"hours": 4},
                    "check_in": {"enabled": True, "by": "09:30"},
                    "vitals": {"heart_rate": {"low": 50}},
                }
            },
        }
    )

    wang = config.for_resident("wang")
    li = config.for_resident("li")

    assert wang.inactivity.hours == 4
    assert wang.inactivity.active_hours.start == time(8, 0)
    assert wang.check_in.enabled
    assert wang.check_in.by == time(9, 30)
    assert (wang.vitals.heart_rate.low, wang.vitals.heart_rate.high) == (50, 130)
    assert li.inactivity.hours == 8
    assert li.check_in.enabled is False
    assert (li.vitals.heart_rate.low, li.vitals.heart_rate.high) == (40, 130)


def test_an_override_may_move_one_end_of_a_range_past_the_default_of_the_other() -> None:
    config = WellbeingConfig.model_validate(
        {"residents": {"athlete": {"vitals": {"heart_rate": {"low": 30, "high": 110}}}}}
    )

    assert config.for_resident("athlete").vitals.heart_rate.high == 110


def test_an_unquoted_clock_time_is_refused() -> None:
    # YAML turns an unquoted 21:00 into the base-60 number 1260.
    assert 'quoted "HH:MM"' in error_of({"check_in": {"by": 1260}})
    assert 'quoted "HH:MM"' in error_of({"inactivity": {"active_hours": {"start": 420}}})


def test_a_clock_time_with_a_utc_offset_is_refused() -> None:
    assert "site's time zone" in error_of({"bed_exit": {"night": {"start": "22:00+08:00"}}})


def test_out_of_bounds_and_unknown_settings_are_refused() -> None:
    error_of({"inactivity": {"hours": 0}})
    error_of({"bed_exit": {"minutes": -1}})
    error_of({"baseline": {"z_threshold": 1.0}})
    error_of({"device_health": {"battery_low_pct": 120}})
    error_of({"vitals": {"heart_rate": {"lo": 40}}})


def test_inconsistent_settings_are_refused_and_name_the_resident() -> None:
    assert "min_days must not exceed days" in error_of({"baseline": {"days": 5}})
    assert "for_s must not exceed window_s" in error_of({"vitals": {"for_s": 900}})
    message = error_of({"residents": {"wang": {"vitals": {"heart_rate": {"low": 130}}}}})
    assert "residents.wang" in message
    assert "low must be below high" in message


def test_the_settings_are_frozen() -> None:
    config = WellbeingConfig()

    with pytest.raises(ValidationError):
        config.inactivity.hours = 1  # type: ignore[misc]
