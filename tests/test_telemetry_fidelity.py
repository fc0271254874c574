"""What was published at a high rate is exactly what InfluxDB holds: every reading, once, with its value,
its device and its time.

A live gateway (real Mosquitto, the telemetry process, real InfluxDB 1.6.7) hears 300 Zigbee2MQTT
sensors publish 20,000 state messages at QoS 0 as fast as one paho client can send them (several
thousand a second), each with its own `last_seen` time and values derived from its sequence number. The
test works out every point it must find (70,000 of them: occupancy, temperature, humidity, battery and
link quality), reads each measurement back whole, and compares point by point. The gateway's fast paths
(orjson, the line encoder, batched hand-overs) must lose, duplicate or change nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from harness import live_gateway, new_config
from paho.mqtt.enums import CallbackAPIVersion
from services import InfluxDB1, Mosquitto
from telemetry_fixtures import influxdb1_fixture, new_database  # noqa: F401 - the `influxdb1` fixture

HOMES = 150
MESSAGES = 20_000
#: 2026-12-01 00:00 UTC, in ms: the sensors' clocks, each message a millisecond after its device's last.
EPOCH_MS = 1_795_996_800_000
#: measurement -> {(device, time in ns): value}
Expected = dict[str, dict[tuple[str, int], Any]]


def sensors() -> list[dict[str, Any]]:
    devices = []
    for home in range(HOMES):
        common = {"site": "day", "profile": "zigbee2mqtt"}
        devices += [
            {"id": f"fid-motion-{home}", "type": "motion_sensor", **common},
            {"id": f"fid-climate-{home}", "type": "other", **common},
        ]
    return devices


def messages() -> Iterator[tuple[str, dict[str, Any]]]:
    """The workload: motion and climate sensors in turn, every value a function of the sequence number."""
    for seq in range(MESSAGES):
        home, kind = (seq // 2) % HOMES, seq % 2
        at_ms = EPOCH_MS + seq // (2 * HOMES)
        common = {"battery": seq % 101, "linkquality": seq % 255, "last_seen": at_ms}
        if kind == 0:
            state = {"occupancy": seq % 4 == 0, "illuminance": 7, "voltage": 2985, **common}
            yield f"fid-motion-{home}", state
        else:
            state = {"temperature": 18 + (seq % 700) / 100, "humidity": 30 + (seq % 500) / 10, **common}
            yield f"fid-climate-{home}", state


def expected_points() -> Expected:
    expected: Expected = defaultdict(dict)
    for device, state in messages():
        ns = state["last_seen"] * 1_000_000
        readings = {
            "presence": state.get("occupancy"),
            "temperature": state.get("temperature"),
            "humidity": state.get("humidity"),
            "battery": float(state["battery"]),
            "link_quality": float(state["linkquality"]),
        }
        for measurement, value in readings.items():
            if value is not None:
                expected[measurement][(device, ns)] = value
    return expected


def publish_all(port: int) -> float:
    """Publish the workload at QoS 0 as fast as paho sends it; returns the rate it reached (msg/s)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fidelity-sensors")
    client.connect("127.0.0.1", port)
    sock = client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.loop_start()
    started = time.monotonic()
    try:
        for device, state in messages():
            info = client.publish(f"zigbee2mqtt/{device}", json.dumps(state).encode(), qos=0)
        info.wait_for_publish(30)
        return MESSAGES / (time.monotonic() - started)
    finally:
        client.disconnect()
        client.loop_stop()


def stored_points(influx: InfluxDB1, database: str, measurement: str) -> dict[tuple[str, int], Any]:
    query = f'SELECT "device", "value" FROM "{measurement}"'
    with httpx.Client(base_url=influx.url, timeout=60) as client:
        answer = client.get("/query", params={"db": database, "q": query, "epoch": "ns"}).json()
    series = answer["results"][0].get("series") or [{"values": []}]
    return {(device, ns): value for ns, device, value in series[0]["values"]}


def stored_count(influx: InfluxDB1, database: str) -> int:
    total = 0
    for measurement in ("presence", "temperature", "humidity", "battery", "link_quality"):
        answer: Any = influx.query(f'SELECT count("value") FROM "{measurement}"', db=database)
        series = answer["results"][0].get("series")
        total += int(series[0]["values"][0][1]) if series else 0
    return total


async def stored_when_settled(influx: InfluxDB1, database: str, total: int, limit_s: float = 90) -> int:
    """Points stored once all `total` are in, or when `limit_s` ran out."""
    deadline = time.monotonic() + limit_s
    stored = stored_count(influx, database)
    for _ in range(int(limit_s * 2)):
        if stored >= total or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
        stored = stored_count(influx, database)
    return stored


async def test_every_reading_published_at_a_high_rate_is_stored_exactly_once(
    mosquitto: Mosquitto, influxdb1: InfluxDB1, tmp_path: Path
) -> None:
    database = new_database(influxdb1)
    config = new_config(mosquitto.url, tmp_path)
    config["devices"] += sensors()
    config["telemetry"] = {
        "backend": "influxdb1",
        "url": influxdb1.url,
        "database": database,
        "spool_dir": str(tmp_path / "spool"),
    }
    expected = expected_points()
    total = sum(len(points) for points in expected.values())
    async with live_gateway(config) as live:
        await asyncio.wait_for(live.gateway.telemetry.connected.wait(), 20)
        rate = await asyncio.to_thread(publish_all, mosquitto.port)
        stored = await stored_when_settled(influxdb1, database, total)
        await asyncio.sleep(1.5)  # a status report after the last write
        status = live.gateway.telemetry_status
    assert rate > 2000, f"published at only {rate:.0f} messages a second"
    assert status["dropped"] == 0, status
    assert stored == total, f"{stored} of {total} points stored"
    for measurement, points in expected.items():
        assert stored_points(influxdb1, database, measurement) == points, measurement


async def test_the_telemetry_process_yields_to_alarms_and_reconnects_after_the_broker_restarts(
    mosquitto: Mosquitto, influxdb1: InfluxDB1, tmp_path: Path
) -> None:
    """The telemetry lane runs paho on the event loop (gateway/ingest.py `PahoOnTheLoop`), with its own
    reconnecting: a broker restart costs the readings sent while it was down, never the lane."""
    database = new_database(influxdb1)
    config = new_config(mosquitto.url, tmp_path)
    config["devices"] += sensors()[:2]
    config["broker"] |= {"reconnect_min_s": 0.2, "reconnect_max_s": 1.0}
    config["telemetry"] = {
        "backend": "influxdb1",
        "url": influxdb1.url,
        "database": database,
        "flush_interval_ms": 100,
        "spool_dir": str(tmp_path / "spool"),
    }
    async with live_gateway(config) as live:
        telemetry = live.gateway.telemetry
        await asyncio.wait_for(telemetry.connected.wait(), 20)
        # The telemetry process yields the CPU to the gateway's alarm lane (broker.telemetry_nice).
        child = telemetry._process.pid if telemetry._process else 0
        assert os.getpriority(os.PRIO_PROCESS, child) == os.getpriority(os.PRIO_PROCESS, 0) + 5
        await asyncio.to_thread(publish_battery, mosquitto.port, 1)
        assert await stored_when_settled(influxdb1, database, 1, limit_s=15) >= 1
        await asyncio.to_thread(mosquitto.restart)
        await asyncio.sleep(1.5)  # a status report saying the lane is down, then up again
        await asyncio.wait_for(telemetry.connected.wait(), 20)
        await asyncio.to_thread(publish_battery, mosquitto.port, 2)
        assert await battery_values_when_settled(influxdb1, database, [1.0, 2.0]) == [1.0, 2.0]


def publish_battery(port: int, level: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fidelity-battery-{level}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        state = {"battery": level, "last_seen": EPOCH_MS + level}
        client.publish("zigbee2mqtt/fid-motion-0", json.dumps(state).encode(), qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def battery_values(influx: InfluxDB1, database: str) -> list[float]:
    return [value for _key, value in sorted(stored_points(influx, database, "battery").items())]


async def battery_values_when_settled(
    influx: InfluxDB1, database: str, wanted: list[float], limit_s: float = 20
) -> list[float]:
    values = battery_values(influx, database)
    for _ in range(int(limit_s * 5)):
        if values == wanted:
            break
        await asyncio.sleep(0.2)
        values = battery_values(influx, database)
    return values
