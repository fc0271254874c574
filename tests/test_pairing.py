"""New Zigbee devices offered for binding: Zigbee2MQTT's bridge topics followed, types suggested, binding
through the directory (live), bulk moves, and the administration page kept from operators."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import PASSWORD, Publisher, live_gateway, new_config
from services import Mosquitto

from dashboard.auth import Role
from dashboard.security import CSRF_HEADER
from devices.model import DeviceType
from gateway.catalogue import CATALOGUE
from gateway.pairing import MAX_BRIDGE_BYTES, PairedDevices, suggest_type

FIXTURE = Path(__file__).parent / "fixtures" / "zigbee2mqtt_bridge_devices.json"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def paired_from_fixture() -> PairedDevices:
    paired = PairedDevices(now=lambda: NOW)
    paired.on_devices(FIXTURE.read_bytes())
    return paired


def test_the_device_list_is_read_without_the_coordinator_and_types_are_suggested() -> None:
    by_name = {d.friendly_name: d for d in paired_from_fixture().listing()}
    assert "Coordinator" not in by_name
    pendant = by_name["sunrise/201/pendant"]
    assert (pendant.vendor, pendant.model, pendant.description) == ("Tuya", "TS0215A_sos", "SOS button")
    assert pendant.exposes == ("battery", "action", "linkquality")
    assert pendant.suggestion.type == DeviceType.SOS_BUTTON
    assert by_name["0x54ef441000a1b2c3"].suggestion.type == DeviceType.DOOR_SENSOR
    assert by_name["kitchen smoke"].suggestion.type == DeviceType.SMOKE_DETECTOR
    light = by_name["hall light"]
    assert "brightness" in light.exposes  # composite exposes are walked
    assert (light.suggestion.type, light.suggestion.basis) == (DeviceType.OTHER, "unknown")
    joining = by_name["0xa4c1380c11d2e3f4"]
    assert not joining.interviewed
    assert (joining.vendor, joining.model) == ("_TZE200_abcdefgh", "TS0601")


@pytest.mark.parametrize(
    ("exposes", "actions", "expected"),
    [
        (["action"], ["single", "emergency"], DeviceType.SOS_BUTTON),
        (["sos", "battery"], [], DeviceType.SOS_BUTTON),
        (["contact", "battery"], [], DeviceType.DOOR_SENSOR),
        (["smoke"], [], DeviceType.SMOKE_DETECTOR),
        (["occupancy", "illuminance"], [], DeviceType.MOTION_SENSOR),
        (["presence"], [], DeviceType.PRESENCE_SENSOR),
        (["temperature"], [], DeviceType.OTHER),
    ],
)
def test_an_unknown_model_is_judged_by_what_it_reports(
    exposes: list[str], actions: list[str], expected: DeviceType
) -> None:
    suggestion = suggest_type("NEW-MODEL-1", exposes, actions)
    assert suggestion.type == expected
    assert suggestion.basis == ("unknown" if expected == DeviceType.OTHER else "exposes")


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("HS1EB", DeviceType.SOS_BUTTON),
        ("ZY-M100", DeviceType.FALL_SENSOR),
        ("MIR-HE200-TY", DeviceType.FALL_SENSOR),
        ("TS0203", DeviceType.DOOR_SENSOR),
        ("TS0205", DeviceType.SMOKE_DETECTOR),
        ("RTCGQ11LM", DeviceType.MOTION_SENSOR),
        ("TS0202", DeviceType.MOTION_SENSOR),
    ],
)
def test_known_models_are_suggested_from_the_table(model: str, expected: DeviceType) -> None:
    assert suggest_type(model, ["contact"]) == suggest_type(model, [])
    assert suggest_type(model, []).type == expected


def test_bad_bridge_messages_are_counted_and_leave_the_last_good_list() -> None:
    told: list[str] = []
    paired = paired_from_fixture()
    paired.on_refused = told.append
    before = paired.listing()
    paired.on_devices(b"[" + b" " * MAX_BRIDGE_BYTES + b"]")
    paired.on_devices(b"{not json")
    paired.on_devices(b'{"devices": []}')
    paired.on_event(b'{"type": "device_joined"}')
    assert paired.listing() == before
    assert paired.refused == {"too_large": 1, "not_json": 1, "not_a_list": 1, "not_an_event": 1}
    assert told == ["too_large", "not_json", "not_a_list", "not_an_event"]


def test_joins_interviews_and_leaves_follow_the_network() -> None:
    paired = paired_from_fixture()
    joined = {"ieee_address": "0x1111", "friendly_name": "0x1111"}
    paired.on_event(json.dumps({"type": "device_joined", "data": joined}).encode())
    assert not paired.devices["0x1111"].interviewed
    interview = {
        **joined,
        "status": "successful",
        "supported": True,
        "definition": {"model": "HS1EB", "vendor": "Heiman", "description": "Emergency", "exposes": []},
    }
    paired.on_event(json.dumps({"type": "device_interview", "data": interview}).encode())
    assert paired.devices["0x1111"].interviewed
    assert paired.devices["0x1111"].suggestion.type == DeviceType.SOS_BUTTON
    leave = {"type": "device_leave", "data": {"ieee_address": "0x1111", "friendly_name": "0x1111"}}
    paired.on_event(json.dumps(leave).encode())
    assert "0x1111" not in paired.devices


@asynccontextmanager
async def admin_client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.post("/api/login", json={"username": "admin", "password": PASSWORD})
        response.raise_for_status()
        client.headers[CSRF_HEADER] = response.json()["csrf_token"]
        yield client


@pytest.mark.asyncio
async def test_a_paired_device_is_offered_bound_in_one_request_and_its_alarm_opens_an_incident(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        live.gateway.users.create("admin", PASSWORD, Role.ADMIN)
        device = Publisher(mosquitto.port)
        device.client.publish("zigbee2mqtt/bridge/devices", FIXTURE.read_bytes(), qos=1, retain=True)
        listing = await live.poll("/api/devices/pairing", lambda j: len(j["devices"]) == 5)
        offers = {d["friendly_name"]: d for d in listing["devices"]}
        assert listing["listening"] is True
        pendant = offers["sunrise/201/pendant"]
        assert (pendant["suggested_type"], pendant["suggested_by"]) == ("sos_button", "model")
        assert pendant["suggested_id"] == "sunrise-201-pendant"
        assert offers["hall light"]["suggested_type"] == "other"

        # Heard before it is bound: the offer carries the unbound count.
        device.zigbee("sunrise/201/pendant", battery=90)

        def heard(listing: dict[str, Any]) -> int:
            return sum(
                d["messages"] for d in listing["devices"] if d["friendly_name"] == "sunrise/201/pendant"
            )

        assert heard(await live.poll("/api/devices/pairing", heard)) == 1

        async with admin_client(live.base_url) as admin:
            bound = await admin.post(
                "/api/directory/devices",
                json={
                    "id": pendant["suggested_id"],
                    "type": pendant["suggested_type"],
                    "profile": "zigbee2mqtt",
                    "friendly_name": pendant["friendly_name"],
                    "site": "night",
                    "room": "102",
                    "resident": "night-li",
                },
            )
            assert bound.status_code == 200, bound.text
        listing = (await live.http.get("/api/devices/pairing")).json()
        assert "sunrise/201/pendant" not in {d["friendly_name"] for d in listing["devices"]}

        device.zigbee("sunrise/201/pendant", action="emergency")
        incidents = await live.wait_for(lambda found: len(found) == 1, "the bound pendant's incident")
        assert incidents[0]["resident"] == "night-li"
        device.close()


@pytest.mark.asyncio
async def test_devices_move_together_or_not_at_all(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        live.gateway.users.create("admin", PASSWORD, Role.ADMIN)
        async with admin_client(live.base_url) as admin:
            refused = await admin.post(
                "/api/directory/devices/move",
                json={"ids": ["night-door-101", "night-door-102"], "site": "night", "room": "999"},
            )
            assert refused.status_code == 422
            assert "999" in json.dumps(refused.json())
            unknown = await admin.post(
                "/api/directory/devices/move", json={"ids": ["night-door-101", "nope"], "site": "night"}
            )
            assert unknown.status_code == 404
            door = (await admin.get("/api/directory/devices/night-door-101")).json()
            assert door["room"] == "101"

            three = ["night-door-101", "night-door-102", "night-fall-101"]
            moved = await admin.post(
                "/api/directory/devices/move", json={"ids": three, "site": "day", "room": "102"}
            )
            assert moved.status_code == 200, moved.text
            fall = (await admin.get("/api/directory/devices/night-fall-101")).json()
            assert (fall["site"], fall["room"], fall.get("resident")) == ("day", "102", None)
            history = (await admin.get("/api/directory/devices/night-door-102/history")).json()
            assert history[-1]["action"] == "directory.device.changed"

            late = [{"start": "25:00", "end": "07:00"}]
            rota = await admin.post("/api/directory/responders/rota", json={"ids": ["x"], "shifts": late})
            assert rota.status_code == 422

        # Operators read the directory; they change nothing and do not get the page.
        refused_move = await live.http.post(
            "/api/directory/devices/move", json={"ids": ["night-door-101"], "site": "night"}
        )
        assert refused_move.status_code == 403
        page = await live.http.get("/admin")
        assert page.status_code == 403
        assert CATALOGUE.text("page.refused", "zh-CN") in page.text
        async with httpx.AsyncClient(base_url=live.base_url) as anonymous:
            assert (await anonymous.get("/admin")).status_code == 303


@pytest.mark.asyncio
async def test_a_large_networks_device_list_is_read_and_is_no_dead_letter(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    pendant = next(d for d in json.loads(FIXTURE.read_text()) if d["friendly_name"] == "sunrise/201/pendant")
    network = [
        {**pendant, "ieee_address": f"0x{n:016x}", "friendly_name": f"wing-{n // 50}/pendant-{n}"}
        for n in range(600)
    ]
    payload = json.dumps(network).encode()
    assert len(payload) > 10 * 64 * 1024  # well over a lane's limit for a device's message
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        device = Publisher(mosquitto.port)
        device.client.publish("zigbee2mqtt/bridge/devices", payload, qos=1, retain=True)
        listing = await live.poll("/api/devices/pairing", lambda j: len(j["devices"]) == 600)
        assert len(listing["devices"]) == 600
        assert listing["refused"] == {}
        metrics = (await live.http.get("/metrics")).text
        assert "careline_zigbee_paired_devices 600.0" in metrics
        device.zigbee("night/102/pendant", action="emergency")  # a bound device's alarm still arrives
        await live.wait_for(lambda found: len(found) == 1, "the bound Zigbee pendant's incident")
        # Dead letters of the telemetry process arrive in batches: wait long enough for one.
        assert await live.poll("/api/dead-letters", bool, limit_s=2.5) == []
        device.close()
