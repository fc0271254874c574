"""The demo's past days (simulators/history.py), written into a real SQLite store and a real InfluxDB 1.x."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from services import InfluxDB1
from sqlalchemy import Engine
from stores import store_url

from dashboard.device_board import TESTED_TYPES
from devices.model import DeviceType
from gateway.config import load_config
from gateway.directory import Directory, device_registry
from gateway.incidents.db import make_engine
from gateway.incidents.migrate import upgrade
from gateway.incidents.store import IncidentStore
from simulators.care_home import site_zones
from simulators.history import (
    HistorySettings,
    incident_lines,
    noisy_pendant,
    plan_history,
    plan_tests,
    telemetry_lines,
    write_incidents,
    write_telemetry,
)
from simulators.rhythm import CareHomeRhythm, is_night

ROOT = Path(__file__).resolve().parent.parent
CONFIG = load_config(ROOT / "examples" / "care-home.yaml")
BINDINGS = device_registry(CONFIG).bindings()
RESPONDERS = [r.id for r in CONFIG.responders]
NOW = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
SETTINGS = HistorySettings(days=7, seed=5, per_day=14)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(store_url(tmp_path / "history.db"))
    upgrade(engine)
    yield engine
    engine.dispose()


def test_the_history_is_deterministic_and_lies_in_the_past_days() -> None:
    first = plan_history(BINDINGS, RESPONDERS, NOW, SETTINGS)
    assert first == plan_history(BINDINGS, RESPONDERS, NOW, SETTINGS)
    assert first != plan_history(BINDINGS, RESPONDERS, NOW, HistorySettings(seed=6))
    assert all(NOW - timedelta(days=7) <= p.opened_at for p in first)
    assert all(p.opened_at + timedelta(seconds=p.resolve_after_s) < NOW for p in first)
    days = {p.opened_at.date() for p in first}
    assert len(days) >= 7, "every one of the past days has incidents"


def test_written_history_keeps_a_valid_audit_chain_and_hits_the_aimed_response_times(
    engine: Engine,
) -> None:
    planned = plan_history(BINDINGS, RESPONDERS, NOW, SETTINGS)
    written = write_incidents(lambda clock: IncidentStore(engine, Directory(CONFIG), clock.now), planned)
    store = IncidentStore(engine, Directory(CONFIG), lambda: NOW)

    chain = store.audit_chain()
    assert chain.intact, chain.reason
    assert chain.verified == 3 * written, "one opening, acknowledgement and resolution each"
    incidents = store.incidents_between(NOW - timedelta(days=8), NOW)
    assert len(incidents) == written == len(planned) > 90
    assert {i.status for i in incidents} == {"resolved"}

    waits = [(i.acknowledged_at - i.opened_at).total_seconds() for i in incidents]  # type: ignore[operator]
    within_60 = sum(w <= 60 for w in waits) / len(waits)
    assert abs(within_60 - SETTINGS.within_60s_share) < 0.08, within_60
    beyond_180 = sum(w > 180 for w in waits) / len(waits)
    assert 0.02 < beyond_180 < 0.16, beyond_180

    rules = Counter(i.rule for i in incidents)
    assert {"sos", "fall", "door_night", "bed_exit", "vitals", "device_health"} <= set(rules)
    outcomes = {i.outcome for i in incidents}
    assert {"assisted_on_site", "false_alarm", "technical_fault"} <= outcomes
    operators = {i.resolved_by for i in incidents}
    assert len(operators) >= 3
    assert any((i.acknowledged_by or "").startswith("responder:") for i in incidents)

    false_alarms = Counter(i.device_id for i in incidents if i.outcome == "false_alarm")
    noisy, count = false_alarms.most_common(1)[0]
    assert noisy == noisy_pendant(planned)
    assert count >= 7
    assert count > 2 * sorted(false_alarms.values())[-2]


def test_past_weekly_button_tests_are_recorded_in_time_order_with_the_incidents(engine: Engine) -> None:
    planned = plan_history(BINDINGS, RESPONDERS, NOW, SETTINGS)
    tests = plan_tests(BINDINGS, NOW, SETTINGS)
    testable = [b for b in BINDINGS if b.device_type in TESTED_TYPES]
    # One week of history: about `tested_share` of the buttons and detectors were tested in it.
    assert 0.7 * len(testable) < len(tests) <= len(testable)
    assert all(NOW - timedelta(days=7) < t.at < NOW for t in tests)
    written = write_incidents(
        lambda clock: IncidentStore(engine, Directory(CONFIG), clock.now), planned, tests
    )
    store = IncidentStore(engine, Directory(CONFIG), lambda: NOW)
    chain = store.audit_chain()
    assert chain.intact, chain.reason
    assert chain.verified == 3 * written + len(tests)
    recorded = store.device_tests()
    assert sum(t.test_count for t in recorded) == len(tests)
    assert {t.device_id for t in recorded} == {t.binding.device_id for t in tests}


def test_past_telemetry_follows_the_day_and_lands_in_influxdb() -> None:
    settings = HistorySettings(days=2, telemetry_step_min=15)
    rhythm = CareHomeRhythm(BINDINGS, site_zones(CONFIG), random.Random(3))
    with InfluxDB1() as influx:
        influx.create_database("careline")
        written = write_telemetry(influx.url, "careline", telemetry_lines(rhythm, NOW, settings), batch=700)
        assert written > 2 * 96 * 10

        def values(q: str) -> list[list[object]]:
            result = influx.query(q, db="careline")
            series = result["results"][0].get("series", [])  # type: ignore[index]
            return series[0]["values"] if series else []  # type: ignore[no-any-return]

        count = values('SELECT count("value") FROM "heart_rate"')[0][1]
        assert count == 3 * 2 * 96, "three monitors, every 15 minutes for two days"
        rates = [v[1] for v in values('SELECT "value" FROM "heart_rate"')]
        assert all(50 <= float(r) <= 110 for r in rates)  # type: ignore[arg-type]
        assert len(set(rates)) > 10, "heart rates drift"
        battery = values('SELECT first("value"), last("value") FROM "battery" GROUP BY "device"')
        assert battery  # every device reports its battery
        beds = values('SELECT "value" FROM "bed_occupied"')
        zone = site_zones(CONFIG)["sunrise"]
        night = [v[1] for v in beds if is_night(_local(str(v[0]), zone))]
        day = [v[1] for v in beds if not is_night(_local(str(v[0]), zone))]
        assert sum(night) / len(night) > 0.85, "in bed at night, up now and then"
        assert sum(day) / len(day) < 0.25, "up by day"
        assert not all(night), "a bed exit at night now and then"


def test_the_readings_behind_past_wellbeing_alarms_are_in_the_sensor_log() -> None:
    planned = plan_history(BINDINGS, RESPONDERS, NOW, SETTINGS)
    vitals = [p for p in planned if p.rule == "vitals"]
    with InfluxDB1() as influx:
        influx.create_database("careline")
        write_telemetry(influx.url, "careline", incident_lines(planned))
        result = influx.query('SELECT "value", "device" FROM "heart_rate"', db="careline")
        rows = result["results"][0]["series"][0]["values"]  # type: ignore[index]
    assert len(rows) == 4 * len(vitals) > 0
    abnormal = {(p.binding.device_id, p.value) for p in vitals}
    assert {(row[2], row[1]) for row in rows} == abnormal
    assert all(not 50 <= row[1] <= 100 for row in rows), "what raised the alarm: out of range"


def test_the_rhythm_drains_batteries_slowly() -> None:
    pendants = [b for b in BINDINGS if b.device_type is DeviceType.SOS_BUTTON][:3]
    rhythm = CareHomeRhythm(pendants, site_zones(CONFIG), random.Random(1))
    first = {b.device_id: r for b, r in rhythm.readings(NOW)}
    week = {b.device_id: r for b, r in rhythm.readings(NOW + timedelta(days=7))}
    for device, readings in first.items():
        drop = float(readings["battery"]) - float(week[device]["battery"])  # type: ignore[index]
        assert 0 <= drop <= 2


def _local(iso: str, zone: str) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
