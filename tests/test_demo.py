"""`careline demo` (what `make demo` runs) brings up the whole product and shows simulated incidents,
telemetry in a real InfluxDB, a few days of history, and the responders' phones; it leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect
from services import alive, children_of, command_line, free_port

NIGHT_CARER_B = "+8613800000004"  # 孙磊, on duty in wing B at night (the demo's sites are at 02:00)
NIGHT_CARER_A = "+8613800000002"  # 李娜, wing A
SHEN_YUFANG = "+8657100003302"  # 沈玉芳, the district's elder without devices: a daily call


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    log_path: Path
    base: str
    phones: str
    password: str
    started_at: datetime

    def log(self) -> str:
        return self.log_path.read_text()[-4000:]

    def descendants(self) -> list[int]:
        found, queue = [], [self.process.pid]
        while queue:
            children = children_of(queue.pop())
            found += children
            queue += children
        return found


def _start_demo(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> Demo:
    http_port, mqtt_port, phone_port = free_port(), free_port(), free_port()
    log_path = tmp_path / "demo.log"
    started_at = datetime.now(UTC)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "careline",
                "demo",
                "--http-port",
                str(http_port),
                "--mqtt-port",
                str(mqtt_port),
                "--phone-port",
                str(phone_port),
                "--data-dir",
                str(tmp_path / "demo"),
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    demo = Demo(
        process, log_path, f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{phone_port}", "", started_at
    )
    demo.password = _printed(log_path, r"log in as\s+admin / (\S+)")
    _printed(log_path, r"Ready in ([0-9.]+) s")
    return demo


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = _start_demo(tmp_path)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()


@pytest.mark.slow
@pytest.mark.browser
async def test_the_demo_shows_incidents_history_telemetry_and_the_responders_phones(
    demo: Demo, browser: Browser
) -> None:
    with _signed_in(demo) as http:
        _the_simulated_incidents_arrive(http)
        _the_past_days_are_there(http, demo)
        _live_telemetry_lands_in_influxdb(http, demo)
        await _pressing_1_on_the_phone_page_acknowledges(demo, browser)
        _until(
            lambda: _acknowledged_via(http, "carer-sun-lei via voice"),
            "the incident acknowledged by the call",
        )
        _an_sms_reply_acknowledges(http, demo)
        _key_2_on_the_daily_call_opens_an_incident(http, demo)
        await _the_office_shows_the_daily_calls(demo, browser)
        _the_districts_visits_are_there(http)
        assert _audit_intact(http)
    _ctrl_c_stops_everything(demo)


def _key_2_on_the_daily_call_opens_an_incident(http: httpx.Client, demo: Demo) -> None:
    """The district's reassurance calls are placed shortly after start; the past days are seeded."""

    def calls_to_shen() -> list[dict[str, Any]]:
        phones = httpx.get(f"{demo.phones}/phone/api/inbox").json()["phones"]
        entries = next((p["entries"] for p in phones if p["number"] == SHEN_YUFANG), [])
        return [e for e in entries if e["kind"] == "call"]

    _until(lambda: bool(calls_to_shen()), "the daily call to shen-yufang", limit_s=60)
    [call] = calls_to_shen()
    assert "请按 2" in call["text"]
    pressed = httpx.post(f"{demo.phones}/phone/api/calls/{call['id']}/press", json={"digit": "2"})
    assert pressed.json()["http_status"] == 200, pressed.text

    def helped() -> bool:
        incidents = http.get("/api/incidents").json()["incidents"]
        return any(i["rule"] == "reassurance_help" and i["resident"] == "shen-yufang" for i in incidents)

    _until(helped, "the reassurance_help incident")
    months = http.get("/api/office/reassurance/months").json()["months"]
    assert sum(m["placed"] for m in months if m["site"] == "xihu") >= 3 * 7, months


async def _the_office_shows_the_daily_calls(demo: Demo, browser: Browser) -> None:
    page = await browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    await page.goto(f"{demo.base}/office/reassurance")
    await page.fill("#username", "admin")
    await page.fill("#password", demo.password)
    await page.click("#login-submit")
    await expect(page.locator("h1")).to_have_text("日常问候电话", timeout=10_000)
    # The outcome in words and a sign, not by colour alone.
    await expect(page.locator("#day-table tr", has_text="沈玉芳")).to_contain_text("✚ 需要帮助")
    await expect(page.locator("#months-table")).to_contain_text("西湖街道居家养老服务中心")
    await page.close()


@contextlib.contextmanager
def _signed_in(demo: Demo) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo.base, timeout=10) as http:
        _until(lambda: _reachable(http), "the dashboard")
        login = {"username": "admin", "password": demo.password}
        assert http.post("/api/login", json=login).status_code == 200
        assert "Careline" in http.get("/").text
        yield http


def _the_districts_visits_are_there(http: httpx.Client) -> None:
    """Past weeks of home visits for the managers' view, and today's overdue one alarmed (docs/visits.md)."""
    _until(
        lambda: any(i["rule"] == "visit_missed" for i in http.get("/api/incidents").json()["incidents"]),
        "the overdue visit's incident",
    )
    counted = http.get("/api/office/visits").json()
    assert {row["key"] for row in counted["carers"]} == {"homecarer-fang-li", "homecarer-tao-jun"}
    assert sum(row["done"] for row in counted["carers"]) >= 10
    assert sum(row["missed"] for row in counted["carers"]) >= 1


def _the_simulated_incidents_arrive(http: httpx.Client) -> None:
    rules: set[str] = set()

    def seen_all() -> bool:
        rules.update(i["rule"] for i in http.get("/api/incidents").json()["incidents"])
        return {"sos", "fall", "door_night"} <= rules

    _until(seen_all, "SOS, fall and night-door incidents", limit_s=60)
    sos = [i for i in http.get("/api/incidents").json()["incidents"] if i["rule"] == "sos"]
    assert any(i["trigger_count"] == 2 for i in sos), "the pendant pressed twice joins one incident"


def _audit_intact(http: httpx.Client) -> bool:
    return http.get("/api/audit/verify").json()["intact"] is True


def _ctrl_c_stops_everything(demo: Demo) -> None:
    helpers = demo.descendants()
    assert any("influxd" in command_line(pid) for pid in helpers), [command_line(p) for p in helpers]
    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(20) == 0, demo.log()
    _all_gone(helpers, "after Ctrl-C")
    assert not _answers(demo.phones), "the phone page stops with the demo"


def _the_past_days_are_there(http: httpx.Client, demo: Demo) -> None:
    """The office reports' inputs: resolved incidents over the past days, acknowledged mostly in 60 s."""
    start = (demo.started_at - timedelta(days=8)).isoformat()
    past = http.get("/api/review/alarms", params={"start": start, "end": demo.started_at.isoformat()})
    assert past.status_code == 200, past.text
    incidents = past.json()
    assert len(incidents) >= 60
    assert {i["status"] for i in incidents} == {"resolved"}
    assert len({i["opened_at"][:10] for i in incidents}) >= 7
    assert {"sos", "fall", "bed_exit", "vitals", "device_health"} <= {i["rule"] for i in incidents}
    waits = [_seconds(i["opened_at"], i["acknowledged_at"]) for i in incidents]
    assert 0.65 < sum(w <= 60 for w in waits) / len(waits) < 0.95
    assert any(w > 180 for w in waits)
    bed = http.get(
        "/api/sensor-log",
        params={"measurement": "bed_occupied", "start": start, "every": "6h", "fn": "count"},
    )
    assert bed.status_code == 200, bed.text
    assert len([r for r in bed.json()["rows"] if r["value"]]) >= 25, "bed occupancy over the past week"


def _live_telemetry_lands_in_influxdb(http: httpx.Client, demo: Demo) -> None:
    def arrived(measurement: str) -> bool:
        params = {"measurement": measurement, "start": demo.started_at.isoformat()}
        rows = http.get("/api/sensor-log", params=params).json()["rows"]
        return any(datetime.fromisoformat(r["time"]) >= demo.started_at for r in rows)

    for measurement in ("heart_rate", "spo2", "body_temperature", "bed_occupied", "presence", "battery"):
        _until(lambda m=measurement: arrived(m), f"live {measurement} in InfluxDB", limit_s=60)  # type: ignore[misc]


async def _pressing_1_on_the_phone_page_acknowledges(demo: Demo, browser: Browser) -> None:
    page = await browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    await page.goto(f"{demo.phones}/phone")
    await expect(page.locator("h1")).to_have_text("值班人员手机（模拟）")
    phone = page.locator(f'section[data-number="{NIGHT_CARER_B}"]')
    newest = phone.locator('article[data-kind="call"]').first
    await expect(newest).to_contain_text("接警请按 1", timeout=30_000)
    # By its id: a later call would become the first one.
    call = phone.locator(f'article[data-id="{await newest.get_attribute("data-id")}"]')
    await expect(phone.locator('article[data-kind="sms"]').first).to_contain_text("Careline")
    await call.locator("button.press").click()
    await expect(call.locator(".exchange")).to_contain_text("已确认接警", timeout=15_000)
    await page.locator("#language").click()
    await expect(page.locator("h1")).to_have_text("Responders' phones (simulated)")
    await page.close()


def _an_sms_reply_acknowledges(http: httpx.Client, demo: Demo) -> None:
    def sms_to_carer_a() -> list[dict[str, Any]]:
        phones = httpx.get(f"{demo.phones}/phone/api/inbox").json()["phones"]
        entries = next(p["entries"] for p in phones if p["number"] == NIGHT_CARER_A)
        return [e for e in entries if e["kind"] == "sms"]

    _until(lambda: bool(sms_to_carer_a()), "an SMS to the wing A night carer", limit_s=30)
    newest = sms_to_carer_a()[0]
    reply = httpx.post(f"{demo.phones}/phone/api/sms/{newest['id']}/reply", json={"body": "收到"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["http_status"] == 200, "the gateway took the signed inbound SMS"
    _until(lambda: _acknowledged_via(http, "carer-li-na via sms"), "the incident acknowledged by SMS")
    forged = httpx.post(f"{demo.base}/api/twilio/sms-inbound", data={"From": NIGHT_CARER_A, "Body": "1"})
    assert forged.status_code == 403, "only the stand-in's signed requests are taken"


@pytest.mark.slow
def test_a_killed_demo_leaves_no_process_behind(tmp_path: Path) -> None:
    demo = _start_demo(tmp_path, "--history-days", "1")
    helpers = demo.descendants()
    try:
        assert any("influxd" in command_line(pid) for pid in helpers), demo.log()
        assert _answers(demo.phones)
        os.kill(demo.process.pid, signal.SIGKILL)
        demo.process.wait(10)
        _all_gone(helpers, "after SIGKILL of the demo")
        assert not _answers(demo.phones)
    finally:
        if demo.process.poll() is None:
            demo.process.kill()


def _all_gone(pids: list[int], when: str, limit_s: float = 5.0) -> None:
    deadline = time.monotonic() + limit_s
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [command_line(pid) for pid in pids if alive(pid)]
    assert not left, f"still running {when}: {left}"


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/phone/api/inbox", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _acknowledged_via(http: httpx.Client, who: str) -> bool:
    incidents = http.get("/api/incidents", params={"status": "all"}).json()["incidents"]
    return any(who in (i.get("acknowledged_by") or "") for i in incidents)


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _printed(log_path: Path, pattern: str, limit_s: float = 40) -> str:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        match = re.search(pattern, log_path.read_text())
        if match:
            return match.group(1)
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not printed: {log_path.read_text()[-3000:]}")


def _reachable(http: httpx.Client) -> bool:
    try:
        return http.get("/api/healthz").status_code == 200
    except httpx.TransportError:
        return False


def _until(condition: Callable[[], bool], what: str, limit_s: float = 30) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_without_influxd_the_demo_says_how_to_install_it_and_runs_without_telemetry(tmp_path: Path) -> None:
    demo = _start_demo(tmp_path, "--history-days", "1", env={"CARELINE_INFLUXD": str(tmp_path / "none")})
    try:
        assert "Telemetry: off" in demo.log()
        assert "install-system-deps.sh influxdb" in demo.log()
        with _signed_in(demo) as http:
            assert len(http.get("/api/incidents", params={"status": "resolved"}).json()["incidents"]) > 5
            refused = http.get("/api/sensor-log", params={"measurement": "heart_rate"})
            assert refused.status_code == 404
            assert "no telemetry store" in refused.text
        assert not any("influxd" in command_line(pid) for pid in demo.descendants())
        demo.process.send_signal(signal.SIGINT)
        assert demo.process.wait(20) == 0, demo.log()
    finally:
        if demo.process.poll() is None:
            demo.process.kill()
