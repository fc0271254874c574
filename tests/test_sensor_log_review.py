"""Telemetry from MQTT to a real InfluxDB 1.6.7 through the gateway, read back by a manager: API, CSV and
the review page's chart in a real Chromium."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Publisher, live_gateway, new_config
from playwright.async_api import Browser, async_playwright, expect
from services import CHROMIUM, CHROMIUM_PRESENT, InfluxDB1, Mosquitto
from test_admin_browser import page_faults
from test_device_board import users

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


#: The alarms the chart marks on its time axis: each mark's name (the rule's) and when.
CHART_ALARMS = """() => echarts.getInstanceByDom(document.querySelector('#chart')).getOption().series
    .find((s) => s.id === 'alarms').markLine.data.map((mark) => ({ name: mark.name, at: mark.xAxis }))"""


async def test_a_rooms_readings_are_charted_per_device_with_the_rooms_alarms_on_the_same_time_axis(
    mosquitto: Mosquitto, influxdb1: InfluxDB1, tmp_path: Path, browser: Browser
) -> None:
    influxdb1.create_database("careline")
    config = telemetry_config(mosquitto, influxdb1, tmp_path)
    for device, room in (("night-climate-a", "101"), ("night-climate-b", "101"), ("night-climate-c", "102")):
        config["devices"].append({"id": device, "type": "other", "site": "night", "room": room})
    async with live_gateway(config) as live, users(live) as clients:
        manager = clients["manager"]
        device = Publisher(mosquitto.port)
        now_ms = time.time() * 1000
        for n, (name, celsius) in enumerate(
            (
                ("night-climate-a", 21.5),
                ("night-climate-b", 19.0),
                ("night-climate-c", 30.0),
                ("night-climate-a", 22.0),
            )
        ):
            device.send(
                f"careline/night/{name}/telemetry",
                careline_event(EventKind.TEMPERATURE, celsius, ts_ms=now_ms - (5 - n) * 60_000),
                qos=0,
            )
        device.sos("night", "night-pendant-wang")  # room 101
        device.zigbee("night/102/pendant", action="sos")  # room 102: not this room's
        await live.wait_for(lambda incidents: len(incidents) == 2, "both SOS alarms")
        room = {"site": "night", "room": "101", "measurement": "temperature"}
        answer: dict[str, Any] = {}
        for _ in range(100):
            answer = (await manager.get("/api/sensor-log", params=room)).json()
            if len(answer["rows"]) == 3:
                break
            await asyncio.sleep(0.1)
        assert [(r["tags"]["device"], r["value"]) for r in answer["rows"]] == [
            ("night-climate-a", 21.5),
            ("night-climate-b", 19.0),
            ("night-climate-a", 22.0),
        ]
        alarms = (await manager.get("/api/review/alarms", params={"site": "night", "room": "101"})).json()
        assert [(a["device_id"], a["rule"]) for a in alarms] == [("night-pendant-wang", "sos")]
        hourly = (await manager.get("/api/sensor-log", params={**room, "every": "1h", "fn": "max"})).json()
        assert {r["tags"]["device"] for r in hourly["rows"]} == {"night-climate-a", "night-climate-b"}

        assert (await live.http.get("/review")).status_code == 403  # the operator: not this page
        assert (await live.http.get("/api/review/alarms", params={"site": "night"})).status_code == 403
        # A manager of the day house reads only the day house.
        day = clients["day"]
        assert (await day.get("/api/sensor-log", params=room)).status_code == 403
        assert (await day.get("/api/review/alarms", params={"site": "night"})).status_code == 403
        assert (await day.get("/api/review/alarms")).json() == []  # their only site, taken for them
        assert (await day.get("/api/sensor-log", params={"measurement": "temperature"})).json()["rows"] == []

        context = await browser.new_context(locale="en-GB", viewport={"width": 1366, "height": 768})
        await context.add_cookies(
            [{"name": k, "value": v, "url": live.base_url} for k, v in manager.cookies.items()]
        )
        page = await context.new_page()
        faults = page_faults(page)
        await page.goto(f"{live.base_url.rstrip('/')}/review?site=night&room=101&measurement=temperature")
        await expect(page.locator("#summary")).to_have_text("3 points")
        await expect(page.locator("#chart svg")).to_have_count(1)  # drawn by ECharts (SVG renderer)
        assert await page.evaluate(CHART_SERIES) == [
            {"id": "device:night-climate-a", "values": [21.5, 22.0]},
            {"id": "device:night-climate-b", "values": [19.0]},
        ]
        [mark] = await page.evaluate(CHART_ALARMS)
        assert mark["name"] == CATALOGUE.text("rule.sos", "en")
        assert mark["at"] == int(datetime.fromisoformat(alarms[0]["opened_at"]).timestamp() * 1000)
        link = page.locator("#alarms li a")
        await expect(link).to_have_attribute("href", f"/incident/{alarms[0]['id']}")
        await expect(page.locator("#chart")).to_contain_text(CATALOGUE.text("rule.sos", "en"))

        href = await page.locator("#csv").get_attribute("href")
        assert href is not None
        downloaded = await page.evaluate("(url) => fetch(url).then((r) => r.text())", href)
        assert downloaded == (await manager.get(href)).text
        assert [row[1:] for row in csv.reader(io.StringIO(downloaded))][1:] == [
            ["night", "101", "", "night-climate-a", "other", "21.5"],
            ["night", "101", "", "night-climate-b", "other", "19.0"],
            ["night", "101", "", "night-climate-a", "other", "22.0"],
        ]

        await page.select_option("#lang", "zh-CN")
        await expect(page.locator("#alarms li a")).to_contain_text(CATALOGUE.text("rule.sos", "zh-CN"))
        [mark] = await page.evaluate(CHART_ALARMS)
        assert mark["name"] == CATALOGUE.text("rule.sos", "zh-CN")

        # One device, over a period of the manager's own choosing, picked from the directory's lists.
        await page.select_option("#scope", "device")
        other = CATALOGUE.text("device_type.other", "zh-CN")
        await page.select_option("#target", label=f"night-climate-b · {other} · Night House")
        await page.select_option("#period", "custom")
        await expect(page.locator("#start")).to_be_visible()
        await page.fill("#start", (datetime.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
        await page.click("#show")
        await expect(page.locator("#summary")).to_have_text(CATALOGUE.text("review.points", "zh-CN", n=1))
        assert await page.evaluate(CHART_SERIES) == [{"id": "device:night-climate-b", "values": [19.0]}]
        assert await page.evaluate(CHART_ALARMS) == []  # the SOS was the pendant's, not this device's
        href = await page.locator("#csv").get_attribute("href")
        assert href is not None
        assert "device=night-climate-b" in href
        assert faults == []
        await context.close()
        device.close()
