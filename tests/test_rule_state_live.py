"""Rule state across a real restart: a live gateway (real Mosquitto, SQLite, InfluxDB 1.x) hears a door
open and a resident move, is stopped and started again on the same store, and its rules go on from where
they were.

Clocks: the alarm lane runs on an injected clock (the door timer is moved by hand, minutes in a second);
the telemetry process keeps the system clock (tests/harness.py), so its inactivity rule is driven by a
short setting (4 seconds) and the test waits those seconds out across the restart.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from harness import LiveGateway, Publisher, live_gateway, new_config
from services import InfluxDB1, Mosquitto
from sqlalchemy import select
from sqlalchemy.orm import Session
from telemetry_fixtures import influxdb1_fixture  # noqa: F401 - the `influxdb1` fixture

from devices.model import EventKind
from gateway.clock import FakeClock
from gateway.incidents.db import make_engine
from gateway.incidents.schema import Incident, RuleState
from gateway.rule_state import TELEMETRY, load_rule_state
from simulators.payloads import careline_event

INACTIVE_AFTER_S = 4.0
#: Day-li's mornings in the sensor log: signs of life on each of the three days before today.
PAST_SIGNS = {1: 2, 2: 3, 3: 4}


def config(mosquitto: Mosquitto, influx: InfluxDB1, tmp_path: Path, database: str) -> dict[str, Any]:
    settings = new_config(mosquitto.url, tmp_path)
    motion = {"id": "day-motion-102", "type": "motion_sensor", "site": "day", "room": "102"}
    settings["devices"].append(motion)
    day = next(site for site in settings["sites"] if site["id"] == "day")
    day["wellbeing"] = {
        "inactivity": {"hours": INACTIVE_AFTER_S / 3600, "active_hours": {"start": "00:00", "end": "00:00"}}
    }
    settings["storage"]["rule_state_every_s"] = 1
    settings["telemetry"] = {
        "backend": "influxdb1",
        "url": influx.url,
        "database": database,
        "flush_interval_ms": 100,
        "spool_dir": str(tmp_path / "spool"),
    }
    return settings


def past_signs_of_life(zone: ZoneInfo, now: datetime) -> tuple[str, dict[tuple[str, int], int]]:
    """Line protocol of day-li's past motion, and what the baseline must count: (local date, hour) -> n."""
    lines, expected = [], {}
    for days_ago, count in PAST_SIGNS.items():
        at = (now - timedelta(days=days_ago)).astimezone(zone).replace(minute=10, second=0, microsecond=0)
        expected[(at.date().isoformat(), at.hour)] = count
        for n in range(count):
            ns = int((at + timedelta(minutes=n)).timestamp()) * 1_000_000_000
            lines.append(
                "motion,device=day-motion-102,device_type=motion_sensor,resident=day-li,room=102,site=day "
                f"value=true {ns}"
            )
    return "\n".join(lines), expected


async def write_points(influx: InfluxDB1, database: str, lines: str) -> None:
    async with httpx.AsyncClient(base_url=influx.url) as client:
        response = await client.post("/write", params={"db": database}, content=lines)
        assert response.status_code == 204, response.text


async def stored_state(live: LiveGateway) -> dict[str, Any]:
    gateway = live.gateway
    stored = await gateway.service.read(load_rule_state, gateway.store)
    return {lane: json.loads(text) for lane, text in stored.items()}


def baseline_counts(snapshot: dict[str, Any], resident: str, zone: ZoneInfo) -> dict[tuple[str, int], int]:
    activity = snapshot["rules"]["activity_baseline"]["state"]["activity"][resident]
    day = datetime.fromisoformat(activity["day"]).date()
    rows = activity["history"]
    counted = {}
    for back, row in enumerate(reversed(rows), start=1):
        for hour, count in enumerate(row):
            if count:
                counted[((day - timedelta(days=back)).isoformat(), hour)] = int(count)
    return counted


def _evidence(store: Any, incident_id: int) -> dict[str, Any]:
    with store.reading() as session:
        evidence: dict[str, Any] = session.get(Incident, incident_id).evidence
        return evidence


async def evidence_of(live: LiveGateway, incident: dict[str, Any]) -> dict[str, Any]:
    """What the rule said when it raised the alarm (the store keeps it; the API shows only faults)."""
    return await live.gateway.service.read(_evidence, live.gateway.store, incident["id"])


def rows_of(url: str, lane: str) -> list[tuple[datetime, dict[str, Any]]]:
    """The stored rule state of `lane`, read with the gateway stopped."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            rows = session.scalars(select(RuleState).where(RuleState.lane == lane)).all()
            return [(row.saved_at, json.loads(row.snapshot)) for row in rows]
    finally:
        engine.dispose()


def by_key(incidents: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [incident for incident in incidents if incident["key"] == key]


async def test_door_inactivity_and_baseline_go_on_across_a_gateway_restart(
    mosquitto: Mosquitto, influxdb1: InfluxDB1, tmp_path: Path
) -> None:
    influxdb1.create_database("careline")
    settings = config(mosquitto, influxdb1, tmp_path, "careline")
    zone = ZoneInfo(next(s["timezone"] for s in settings["sites"] if s["id"] == "day"))
    lines, expected_history = past_signs_of_life(zone, datetime.now(UTC))
    await write_points(influxdb1, "careline", lines)
    clock = FakeClock(datetime.now(UTC))
    device = Publisher(mosquitto.port)
    door_key, night_key = "door_left_open:night:night-door-101", "door_night:night:night-door-101"
    inactivity_key = "inactivity:day:resident:day-li"

    async with live_gateway(settings, clock=clock) as live:
        opened = datetime.now(UTC)
        device.event("night", "night-door-101", EventKind.DOOR_OPEN)
        await live.wait_for(lambda found: by_key(found, night_key), "the door opened at night")
        device.send("careline/day/day-motion-102/telemetry", careline_event(EventKind.MOTION, True), qos=0)
        moved = time.monotonic()
        clock.set(opened + timedelta(minutes=4))
        # Saved every second while running (not only at the end): the motion is in the stored state.
        for _ in range(100):
            state = (await stored_state(live)).get(TELEMETRY, {})
            last_sign = state.get("rules", {}).get("inactivity", {}).get("state", {}).get("last_sign", {})
            if "day-li" in last_sign:
                break
            await asyncio.sleep(0.1)
        assert "day-li" in last_sign
        heard = datetime.fromisoformat(last_sign["day-li"]["received_at"])
        assert baseline_counts(state, "day-li", zone) == expected_history, "seeded from InfluxDB"
        assert live.gateway.metrics.baseline_seeded_residents._value.get() == 1
        assert by_key(await live.incidents(), inactivity_key) == []

    # A day more in the sensor log while the gateway is down: the snapshot, not the log, is the history.
    more, _ = past_signs_of_life(zone, datetime.now(UTC) - timedelta(days=3))
    await write_points(influxdb1, "careline", more)
    # Past the inactivity threshold since the motion, so the restarted gateway's first tick is late.
    await asyncio.sleep(max(0.0, moved + INACTIVE_AFTER_S + 0.5 - time.monotonic()))

    async with live_gateway(settings, clock=clock) as live:
        restarted = datetime.now(UTC)
        [inactive] = by_key(
            await live.wait_for(lambda found: by_key(found, inactivity_key), "the inactivity alarm"),
            inactivity_key,
        )
        evidence = await evidence_of(live, inactive)
        assert datetime.fromisoformat(evidence["last_sign_of_life"]) == heard, "timed from before the restart"
        assert evidence["since_gateway_start"] is False
        assert "gateway_restarted_at" in evidence

        # The door is still open and says so again: not a new opening at night, no second alarm.
        device.event("night", "night-door-101", EventKind.DOOR_OPEN)
        clock.set(opened + timedelta(minutes=9))
        await asyncio.sleep(1.5)
        incidents = await live.incidents()
        assert [i["trigger_count"] for i in by_key(incidents, night_key)] == [1]
        assert by_key(incidents, door_key) == []
        # Due 10 minutes after it opened, before the restart (the repeat came after it).
        clock.set(opened + timedelta(minutes=10, seconds=2))
        [left_open] = by_key(
            await live.wait_for(lambda found: by_key(found, door_key), "the door left open", limit_s=5),
            door_key,
        )
        assert 10.0 <= (await evidence_of(live, left_open))["open_minutes"] <= 10.1
        metrics = live.gateway.metrics
        for lane, rule in (("alarm", "door_left_open"), ("telemetry", "inactivity")):
            assert metrics.rule_state_restored.labels(lane, rule)._value.get() == 1
        assert metrics.baseline_seeded_residents._value.get() == 0
        assert (datetime.now(UTC) - restarted).total_seconds() < 15

    device.close()
    url = settings["storage"]["url"]
    [(_, state)] = rows_of(url, TELEMETRY)
    assert baseline_counts(state, "day-li", zone) == expected_history
    [(saved_at, doors)] = rows_of(url, "alarm")
    assert saved_at == clock.now(), "saved as the gateway stopped, on its clock"
    assert doors["rules"]["door_night"]["state"] == {"open": ["night-door-101"]}
    assert doors["rules"]["door_left_open"]["state"] == {"open_since": []}, "it fired: not timed again"
