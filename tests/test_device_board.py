"""The managers' device board: flags computed from real telemetry over a real Mosquitto (Zigbee2MQTT
availability, battery, link quality; a smoke detector's self-test; SOS buttons never tested), site
scoping, roles, CSV; and the 2-hour fault rule on the device health the telemetry process keeps."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import PASSWORD, LiveGateway, Publisher, live_gateway, new_config
from services import Mosquitto

from dashboard.auth import Role
from dashboard.device_board import assess, board, to_csv
from dashboard.security import CSRF_HEADER
from devices.model import DeviceEvent, DeviceType, EventKind
from gateway.clock import FakeClock
from gateway.config import DeviceConfig
from gateway.directory.sections import DirectorySections
from gateway.incidents.views import DeviceTestView
from gateway.telemetry_lane import DeviceHealth
from rules.wellbeing.config import DeviceHealthConfig

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def board_config(mosquitto: Mosquitto, tmp_path: Path) -> dict[str, Any]:
    config = new_config(mosquitto.url, tmp_path)
    config["devices"].append(
        {"id": "night-smoke-101", "type": "smoke_detector", "profile": "zigbee2mqtt", "site": "night"}
    )
    config["devices"].append(
        {"id": "day-smoke-101", "type": "smoke_detector", "profile": "zigbee2mqtt", "site": "day"}
    )
    return config


async def signed_in(live: LiveGateway, username: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=live.base_url)
    answer = await client.post("/api/login", json={"username": username, "password": PASSWORD})
    answer.raise_for_status()
    client.headers[CSRF_HEADER] = answer.json()["csrf_token"]
    return client


@asynccontextmanager
async def users(live: LiveGateway) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """Signed-in clients of an admin, a manager of every site and a manager of the day house only."""
    live.gateway.users.create("admin", PASSWORD, Role.ADMIN, language="en")
    async with AsyncExitStack() as stack:
        admin = await signed_in(live, "admin")
        stack.push_async_callback(admin.aclose)
        for name, sites in (("manager", []), ("day-manager", ["day"])):
            body = {
                "username": name,
                "password": PASSWORD,
                "role": "manager",
                "sites": sites,
                "language": "en",
            }
            created = await admin.post("/api/directory/users", json=body)
            assert created.status_code == 200, created.text
        clients = {"admin": admin}
        for key, name in (("manager", "manager"), ("day", "day-manager")):
            clients[key] = await signed_in(live, name)
            stack.push_async_callback(clients[key].aclose)
        yield clients


def by_id(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["device_id"]: row for row in answer["devices"]}


async def test_the_board_flags_offline_low_weak_and_untested_devices_from_real_telemetry(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(board_config(mosquitto, tmp_path)) as live, users(live) as clients:
        manager = clients["manager"]
        device = Publisher(mosquitto.port)
        published_at = datetime.now(UTC)
        device.zigbee("night/102/pendant", battery=9, linkquality=18)
        device.send("zigbee2mqtt/day/102/pendant/availability", json.dumps({"state": "offline"}).encode())
        device.zigbee("night-smoke-101", smoke=True, test=True, battery=95, linkquality=120)
        device.zigbee("day-smoke-101", battery=80, linkquality=150)
        device.sos("night", "night-pendant-wang")  # a real alarm is no test of the button

        def settled(answer: dict[str, Any]) -> bool:
            rows = by_id(answer)
            return (
                rows["night-pendant-li"]["battery_low"]
                and rows["day-pendant-li"]["offline"]
                and rows["night-smoke-101"]["last_test_at"] is not None
                and not rows["night-pendant-wang"]["never_heard"]
                and not rows["day-smoke-101"]["never_heard"]
            )

        answer = await poll(manager, "/api/office/devices", settled)
        rows = by_id(answer)
        low = rows["night-pendant-li"]
        assert (low["battery"], low["battery_low"], low["link_quality"], low["weak_signal"]) == (
            9,
            True,
            18,
            True,
        )
        assert low["offline"] is False
        assert low["online"] is True
        offline = rows["day-pendant-li"]
        assert (offline["offline"], offline["offline_reason"], offline["online"]) == (
            True,
            "unavailable",
            False,
        )
        since = datetime.fromisoformat(offline["fault_since"])
        assert published_at - timedelta(seconds=1) <= since <= datetime.now(UTC)
        assert offline["fault_over_2h"] is False
        assert 0 <= offline["fault_for_s"] < 60
        tested = rows["night-smoke-101"]
        assert (tested["test_overdue"], tested["last_test_kind"], tested["weak_signal"]) == (
            False,
            "smoke",
            False,
        )
        assert rows["day-smoke-101"]["test_overdue"] is True  # heard, never tested
        pressed = rows["night-pendant-wang"]
        assert (pressed["test_overdue"], pressed["never_heard"], pressed["last_test_at"]) == (
            True,
            False,
            None,
        )
        never = rows["night-fall-101"]
        # A fall sensor is tested too (test mode, docs/duty.md): never tested is overdue.
        assert (never["never_heard"], never["online"], never["test_overdue"]) == (True, None, True)
        assert rows["night-door-101"]["flags"] == ["never_heard"]

        # Offline first, then the low battery, then tests overdue, devices never heard last.
        attention = [row["device_id"] for row in answer["attention"]]
        assert attention[:2] == ["day-pendant-li", "night-pendant-li"]
        assert attention.index("day-smoke-101") < attention.index("night-fall-101")
        assert "night-smoke-101" not in attention
        assert answer["summary"] == {
            "total": 12,
            "attention": 11,
            "fault_over_2h": 0,
            "offline": 1,
            "battery_low": 1,
            "never_heard": 7,
            "test_overdue": 7,  # four SOS buttons, two fall sensors and the day house's smoke detector
            "weak_signal": 1,
        }

        only_offline = (await manager.get("/api/office/devices", params={"flag": "offline"})).json()
        assert [row["device_id"] for row in only_offline["devices"]] == ["day-pendant-li"]
        smoke = (await manager.get("/api/office/devices", params={"type": "smoke_detector"})).json()
        assert sorted(by_id(smoke)) == ["day-smoke-101", "night-smoke-101"]
        assert smoke["summary"]["total"] == 2

        exported = await manager.get("/api/office/devices", params={"format": "csv", "site": "night"})
        assert exported.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(exported.text)))
        night = (await manager.get("/api/office/devices", params={"site": "night"})).json()
        assert [r["device_id"] for r in table] == [r["device_id"] for r in night["devices"]]
        assert {r["device_id"]: r["battery_low"] for r in table}["night-pendant-li"] == "true"
        assert {r["device_id"]: r["test_overdue"] for r in table}["night-pendant-wang"] == "true"
        device.close()


async def test_a_device_offline_for_over_two_hours_tops_the_attention_list(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = board_config(mosquitto, tmp_path)
    for site in config["sites"]:  # nobody falls silent in the 2 hours the clock is moved on
        site["wellbeing"] = {"device_health": {"heartbeat_interval_s": 86_400}}
    clock = FakeClock(datetime.now(UTC))
    async with live_gateway(config, clock) as live, users(live) as clients:
        manager = clients["manager"]
        device = Publisher(mosquitto.port)
        device.zigbee("night/102/pendant", battery=80, linkquality=100)
        device.send("zigbee2mqtt/day/102/pendant/availability", json.dumps({"state": "offline"}).encode())
        answer = await poll(
            manager,
            "/api/office/devices",
            lambda a: (
                by_id(a)["day-pendant-li"]["offline"] and not by_id(a)["night-pendant-li"]["never_heard"]
            ),
        )
        assert by_id(answer)["day-pendant-li"]["fault_over_2h"] is False
        clock.advance(2 * 3600 + 60)
        late = (await manager.get("/api/office/devices")).json()
        offline = by_id(late)["day-pendant-li"]
        assert (offline["fault_over_2h"], offline["flags"][0]) == (True, "fault_over_2h")
        assert offline["fault_for_s"] > 2 * 3600
        assert late["attention"][0]["device_id"] == "day-pendant-li"
        assert late["summary"]["fault_over_2h"] == 1
        assert by_id(late)["night-pendant-li"]["offline"] is False  # heard 2 h ago: not yet silent
        over = (await manager.get("/api/office/devices", params={"flag": "fault_over_2h"})).json()
        assert [row["device_id"] for row in over["devices"]] == ["day-pendant-li"]
        device.close()


async def test_a_site_manager_sees_only_their_site_and_operators_are_refused(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(board_config(mosquitto, tmp_path)) as live, users(live) as clients:
        day = (await clients["day"].get("/api/office/devices")).json()
        assert {row["site"] for row in day["devices"]} == {"day"}
        assert day["summary"]["total"] == 6
        assert (await clients["day"].get("/api/office/devices", params={"site": "night"})).status_code == 404
        csv_rows = list(
            csv.DictReader(io.StringIO((await clients["day"].get("/api/office/devices?format=csv")).text))
        )
        assert {row["site"] for row in csv_rows} == {"day"}
        everything = (await clients["admin"].get("/api/office/devices")).json()
        assert everything["summary"]["total"] == 12

        assert (await live.http.get("/api/office/devices")).status_code == 403  # the operator
        page = await live.http.get("/office/devices")
        assert page.status_code == 403
        assert (await clients["manager"].get("/office/devices")).status_code == 200
        async with httpx.AsyncClient(base_url=live.base_url) as anonymous:
            assert (await anonymous.get("/api/office/devices")).status_code == 401

        for bad in ({"flag": "sleepy"}, {"type": "toaster"}, {"format": "xml"}):
            answer = await clients["manager"].get("/api/office/devices", params=bad)
            assert answer.status_code == 422, bad
        assert (
            await clients["manager"].get("/api/office/devices", params={"site": "moon"})
        ).status_code == 404


async def poll(client: httpx.AsyncClient, path: str, done: Any, limit_s: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while True:
        answer: dict[str, Any] = (await client.get(path)).json()
        if done(answer) or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.1)


# -- the 2-hour fault rule and the weekly test rule, on the device health the telemetry process keeps -----


def pendant(device_id: str = "pendant-1", kind: DeviceType = DeviceType.SOS_BUTTON) -> DeviceConfig:
    return DeviceConfig(id=device_id, type=kind, site="home", profile="zigbee2mqtt")


def reported(device: DeviceConfig, kind: EventKind, value: float | bool | None, at: datetime) -> DeviceEvent:
    return DeviceEvent(
        device_id=device.id,
        device_type=device.type,
        site=device.site,
        room=None,
        resident=None,
        kind=kind,
        value=value,
        ts=at,
        received_at=at,
        message_key=f"{kind}-{at.timestamp()}",
    )


@pytest.mark.parametrize(
    ("offline_for", "over"), [(timedelta(minutes=119), False), (timedelta(minutes=121), True)]
)
def test_a_device_offline_for_more_than_two_hours_is_flagged(offline_for: timedelta, over: bool) -> None:
    device, health = pendant(), DeviceHealth()
    went_offline = NOW - offline_for
    health([reported(device, EventKind.BATTERY, 80, went_offline - timedelta(minutes=5))])
    health([reported(device, EventKind.AVAILABILITY, False, went_offline)])
    health([reported(device, EventKind.AVAILABILITY, False, went_offline + timedelta(minutes=30))])
    row = assess(device, health.devices[device.id], None, DeviceHealthConfig(), NOW, {})
    assert row.fault_since == went_offline  # the first offline notice, not the repeat
    assert row.fault_over_2h is over
    health([reported(device, EventKind.AVAILABILITY, True, NOW)])
    back = assess(device, health.devices[device.id], None, DeviceHealthConfig(), NOW, {})
    assert (back.offline, back.fault_since, back.fault_over_2h) == (False, None, False)


def test_a_low_battery_counts_from_when_it_went_low_until_it_reads_above_the_recovery_margin() -> None:
    device, health = pendant(), DeviceHealth()
    rules = DeviceHealthConfig(battery_low_pct=15, battery_recover_pct=5)
    went_low = NOW - timedelta(hours=3)
    for minutes, level in ((0, 14), (30, 12), (60, 17)):  # 17 is not above 15 + 5: still low
        health([reported(device, EventKind.BATTERY, level, went_low + timedelta(minutes=minutes))])
    health([reported(device, EventKind.HEARTBEAT, None, NOW)])
    row = assess(device, health.devices[device.id], None, rules, NOW, {})
    assert (row.battery_low, row.fault_since, row.fault_over_2h) == (True, went_low, True)
    health([reported(device, EventKind.BATTERY, 21, NOW)])
    row = assess(device, health.devices[device.id], None, rules, NOW, {})
    assert (row.battery_low, row.fault_since) == (False, None)


def test_a_silent_device_is_offline_from_when_it_was_last_heard() -> None:
    device, health = pendant(), DeviceHealth()
    rules = DeviceHealthConfig(heartbeat_interval_s=600, grace_factor=2)
    last_heard = NOW - timedelta(minutes=21)
    health([reported(device, EventKind.HEARTBEAT, None, last_heard)])
    row = assess(device, health.devices[device.id], None, rules, NOW, {})
    assert (row.offline, row.offline_reason, row.fault_since) == (True, "silent", last_heard)
    row = assess(device, health.devices[device.id], None, rules, last_heard + timedelta(minutes=19), {})
    assert row.offline is False


def test_tests_are_due_weekly_for_every_alarm_device_with_a_test_and_only_those() -> None:
    def last_test(device: DeviceConfig, days: float) -> DeviceTestView:
        at = NOW - timedelta(days=days)
        return DeviceTestView(
            device_id=device.id,
            site="home",
            site_name="Home",
            kind="test_call",
            last_test_at=at,
            test_count=1,
        )

    button, smoke, door = (
        pendant(),
        pendant("smoke-1", DeviceType.SMOKE_DETECTOR),
        pendant("door-1", DeviceType.DOOR_SENSOR),
    )
    rules = DeviceHealthConfig()
    assert assess(button, None, last_test(button, 6.9), rules, NOW, {}).test_overdue is False
    assert assess(button, None, last_test(button, 7.1), rules, NOW, {}).test_overdue is True
    assert assess(smoke, None, None, rules, NOW, {}).test_overdue is True
    assert assess(door, None, None, rules, NOW, {}).test_overdue is False
    fall = pendant("fall-1", DeviceType.FALL_SENSOR)
    assert assess(fall, None, last_test(fall, 7.1), rules, NOW, {}).test_overdue is True
    sections = DirectorySections.model_validate(
        {
            "sites": [{"id": "home", "name": "Home"}],
            "devices": [d.model_dump() for d in (door, smoke, button)],
        }
    )
    rows = board(sections, {}, [last_test(button, 8)], NOW, None)
    # Never tested before tested long ago; a door sensor that is only unheard comes after both.
    assert [row.device_id for row in rows] == ["smoke-1", "pendant-1", "door-1"]


def test_a_site_may_ask_for_its_buttons_to_be_tested_more_often_than_weekly() -> None:
    button = pendant()
    tested = DeviceTestView(
        device_id=button.id,
        site="home",
        site_name="Home",
        kind="test_mode",
        last_test_at=NOW - timedelta(days=4),
        test_count=1,
    )
    sites: list[dict[str, Any]] = [{"id": "home", "name": "Home"}]
    weekly = DirectorySections.model_validate({"sites": sites, "devices": [button.model_dump()]})
    [row] = board(weekly, {}, [tested], NOW, None)
    assert (row.test_overdue, row.test_interval_days) == (False, 7)
    sites[0]["duty"] = {"test_interval_days": 3}
    twice_weekly = DirectorySections.model_validate({"sites": sites, "devices": [button.model_dump()]})
    [row] = board(twice_weekly, {}, [tested], NOW, None)
    assert (row.test_overdue, row.test_interval_days) == (True, 3)


def test_the_csv_keeps_a_residents_name_from_becoming_a_spreadsheet_formula() -> None:
    device = DeviceConfig(id="pendant-1", type=DeviceType.SOS_BUTTON, site="home", resident="r1")
    row = assess(device, None, None, DeviceHealthConfig(), NOW, {"resident:r1": "=HYPERLINK(evil)"})
    [exported] = list(csv.DictReader(io.StringIO(to_csv([row]))))
    assert exported["resident_name"] == "'=HYPERLINK(evil)"
    assert (exported["never_heard"], exported["test_overdue"], exported["battery"]) == ("true", "true", "")


def test_a_device_that_only_flags_its_battery_is_low_until_it_says_otherwise() -> None:
    device, health = pendant(), DeviceHealth()
    went_low = NOW - timedelta(minutes=30)
    health([reported(device, EventKind.BATTERY_LOW, None, went_low)])  # Zigbee2MQTT: battery_low: true
    health([reported(device, EventKind.BATTERY_LOW, True, NOW - timedelta(minutes=10))])
    row = assess(device, health.devices[device.id], None, DeviceHealthConfig(), NOW, {})
    assert (row.battery_low, row.fault_since, row.battery) == (True, went_low, None)
    health([reported(device, EventKind.BATTERY_LOW, False, NOW)])
    row = assess(device, health.devices[device.id], None, DeviceHealthConfig(), NOW, {})
    assert (row.battery_low, row.fault_since) == (False, None)
