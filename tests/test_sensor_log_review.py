"""Telemetry from MQTT to a real InfluxDB 1.6.7 through the gateway, read back by a manager: API, CSV and
the review page's chart in a real Chromium."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Publisher, live_gateway, new_config
from playwright.async_api import async_playwright, expect
from services import CHROMIUM, CHROMIUM_PRESENT, InfluxDB1, Mosquitto

from dashboard.auth import Role
from devices.model import EventKind
from gateway.catalogue import CATALOGUE
from simulators.payloads import careline_event

MANAGER_PASSWORD = "manager-password-1"
#: The readings the page's ECharts chart holds, per series (the alarms' series aside).
CHART_SERIES = """() => echarts.getInstanceByDom(document.querySelector('#chart')).getOption().series
    .filter((s) => s.id !== 'alarms').map((s) => ({ id: s.id, values: s.data.map((point) => point[1]) }))"""


@pytest.fixture
def influxdb1() -> Iterator[InfluxDB1]:
    with InfluxDB1() as server:
        yield server


def telemetry_config(mosquitto: Mosquitto, influx: InfluxDB1, tmp_path: Path) -> dict[str, Any]:
    config = new_config(mosquitto.url, tmp_path)
    config["devices"].append(
        {
            "id": "night-vitals-wang",
            "type": "vitals_monitor",
            "site": "night",
            "resident": "night-wang",
            "room": "101",
        }
    )
    config["telemetry"] = {
        "backend": "influxdb1",
        "url": influx.url,
        "database": "careline",
        "flush_interval_ms": 100,
        "spool_dir": str(tmp_path / "spool"),
    }
    return config


async def manager_client(base_url: str, live: Any) -> httpx.AsyncClient:
    live.gateway.users.create("manager", MANAGER_PASSWORD, Role.MANAGER, language="en")
    client = httpx.AsyncClient(base_url=base_url)
    (
        await client.post("/api/login", json={"username": "manager", "password": MANAGER_PASSWORD})
    ).raise_for_status()
    return client


async def test_heart_rates_published_over_mqtt_can_be_reviewed_and_exported_by_a_manager(
    mosquitto: Mosquitto, influxdb1: InfluxDB1, tmp_path: Path
) -> None:
    influxdb1.create_database("careline")
    async with live_gateway(telemetry_config(mosquitto, influxdb1, tmp_path)) as live:
        device = Publisher(mosquitto.port)
        now_ms = time.time() * 1000
        for n, bpm in enumerate((72, 75, 118, 80)):
            device.send(
                "careline/night/night-vitals-wang/telemetry",
                careline_event(EventKind.HEART_RATE, bpm, ts_ms=now_ms - (4 - n) * 60_000),
                qos=0,
            )
        params = {"measurement": "heart_rate", "resident": "night-wang"}
        assert (await live.http.get("/api/sensor-log", params=params)).status_code == 403  # operators: no
        manager = await manager_client(live.base_url, live)
        rows: list[dict[str, Any]] = []
        for _ in range(100):
            rows = (await manager.get("/api/sensor-log", params=params)).json()["rows"]
            if len(rows) == 4:
                break
            await asyncio.sleep(0.1)
        assert [r["value"] for r in rows] == [72, 75, 118, 80]
        assert rows[0]["tags"]["device"] == "night-vitals-wang"
        exported = (await manager.get("/api/sensor-log", params={**params, "format": "csv"})).text
        assert len(list(csv.reader(io.StringIO(exported)))) == 5  # header + 4 readings
        counted = (
            await manager.get("/api/sensor-log", params={**params, "every": "1h", "fn": "count"})
        ).json()
        assert sum(r["value"] or 0 for r in counted["rows"]) == 4
        hostile = (await manager.get("/api/sensor-log", params={**params, "resident": "x' OR 1=1 --"})).json()
        assert hostile["rows"] == []

        if CHROMIUM_PRESENT:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM,
                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
                )
                context = await browser.new_context()
                await context.add_cookies(
                    [{"name": k, "value": v, "url": live.base_url} for k, v in manager.cookies.items()]
                )
                page = await context.new_page()
                await page.goto(f"{live.base_url.rstrip('/')}/review?resident=night-wang")
                await expect(page.locator("#summary")).to_have_text("4 points")
                drawn = await page.evaluate(CHART_SERIES)
                assert drawn == [{"id": "device:night-vitals-wang", "values": [72, 75, 118, 80]}]
                await page.select_option("#lang", "zh-CN")
                reading = page.locator("#measurement option[value=heart_rate]")
                await expect(reading).to_have_text(CATALOGUE.text("event.heart_rate", "zh-CN"))
                await browser.close()
        await manager.aclose()
        device.close()


async def test_a_string_heart_rate_becomes_a_telemetry_dead_letter_and_numbers_still_reach_influxdb(
    mosquitto: Mosquitto, influxdb1: InfluxDB1, tmp_path: Path
) -> None:
    influxdb1.create_database("careline")
    async with live_gateway(telemetry_config(mosquitto, influxdb1, tmp_path)) as live:
        device = Publisher(mosquitto.port)
        topic = "careline/night/night-vitals-wang/telemetry"
        now_ms = time.time() * 1000
        device.send(topic, careline_event(EventKind.HEART_RATE, "high", ts_ms=now_ms - 120_000), qos=0)
        letters = await live.poll("/api/dead-letters", bool)
        device.send(topic, careline_event(EventKind.HEART_RATE, 72, ts_ms=now_ms - 60_000), qos=0)
        manager = await manager_client(live.base_url, live)
        params = {"measurement": "heart_rate", "resident": "night-wang"}
        rows: list[dict[str, Any]] = []
        for _ in range(100):
            rows = (await manager.get("/api/sensor-log", params=params)).json()["rows"]
            if rows:
                break
            await asyncio.sleep(0.1)
        await manager.aclose()
        device.close()

    assert [row["value"] for row in rows] == [72]
    [letter] = letters
    assert (letter["lane"], letter["device_id"], letter["topic"]) == (
        "telemetry",
        "night-vitals-wang",
        "(telemetry event heart_rate)",
    )
    assert "value 'high' is not a finite number" in letter["reason"]
    assert '"value": "high"' in letter["payload"]
    assert live.gateway.metrics.dead_letters.labels("telemetry")._value.get() == 1
