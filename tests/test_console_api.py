"""The operators' console on a real gateway (real Mosquitto, SQLite, HTTP server and WebSocket): taking
and releasing alarms as other operators see it, notes, people sent, the no-response rule, the incident
screen's one read, response scripts and site scoping."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import websockets
from harness import PASSWORD, LiveGateway, Publisher, live_gateway, new_config, next_incident_frame
from services import InfluxDB1, Mosquitto
from sqlalchemy import text

from dashboard.auth import Role
from dashboard.security import CSRF_HEADER
from devices.model import EventKind
from gateway.catalogue import CATALOGUE
from gateway.incidents.scripts import default_steps
from simulators.payloads import careline_event

ZH_NO_RESPONSE = CATALOGUE.text("console.noResponseNeedsDispatch", "zh-CN")


def console_config(mosquitto: Mosquitto, tmp_path: Path) -> dict[str, Any]:
    """The harness's two sites, with what the incident screen shows filled in."""
    config = new_config(mosquitto.url, tmp_path)
    night = config["sites"][0]
    night["address"] = "上海市徐汇区宛平南路 88 号"
    night["access_notes"] = "夜间走东门，按门铃 3 号；车停在 B 区。"
    night["wings"] = [{"id": "A", "name": "认知照护区"}]
    night["rooms"] = [{"id": "101", "name": "101 室", "wing": "A"}, {"id": "102", "wing": "A"}]
    wang = config["residents"][0]
    wang.update(
        {
            "birth_year": 1941,
            "photo_url": "/static/photos/resident.svg",
            "languages": ["zh-CN", "en"],
            "conditions": ["阿尔茨海默病", "高血压"],
            "notes": "傍晚常想回家；说上海话更安心。",
            "risks": ["wandering", "falls"],
            "contacts": [{"name": "王明", "relation": "儿子", "phones": ["+86 139 0000 0101"]}],
        }
    )
    config["responders"] = [
        {
            "id": "night-carer",
            "name": "李娜",
            "phone": "+86 138 0000 0002",
            "roles": ["carer"],
            "sites": ["night"],
            # The night site's clock reads about 02:00.
            "shifts": [{"start": "20:00", "end": "08:00", "wing": "A"}],
        },
        {
            "id": "day-carer",
            "name": "王芳",
            "phone": "+86 138 0000 0001",
            "roles": ["carer"],
            "sites": ["night"],
            "shifts": [{"start": "08:00", "end": "20:00"}],
        },
        {
            "id": "day-nurse",
            "name": "Day nurse",
            "phone": "+86 138 0000 0009",
            "roles": ["nurse"],
            "sites": ["day"],
        },
    ]
    config["escalation"] = {"enabled": False}
    return config


async def client_for(
    live: LiveGateway, name: str, role: Role, sites: tuple[str, ...] = (), language: str = "en"
) -> httpx.AsyncClient:
    """Another signed-in user of the same gateway, with the sites they see."""
    live.gateway.users.create(name, PASSWORD, role, language=language)
    if sites:
        with live.gateway.database.begin() as connection:
            connection.execute(
                text("UPDATE users SET sites = :sites WHERE username = :name"),
                {"sites": json.dumps(list(sites)), "name": name},
            )
    client = httpx.AsyncClient(base_url=live.base_url)
    answer = await client.post("/api/login", json={"username": name, "password": PASSWORD})
    answer.raise_for_status()
    client.headers[CSRF_HEADER] = answer.json()["csrf_token"]
    return client


async def sos(
    live: LiveGateway, mosquitto: Mosquitto, site: str = "night", device: str = "night-pendant-wang"
) -> int:
    before = {incident["id"] for incident in await live.incidents()}
    publisher = Publisher(mosquitto.port)
    try:
        publisher.sos(site, device)
        incidents = await live.wait_for(
            lambda found: any(incident["id"] not in before for incident in found), f"an SOS at {site}"
        )
    finally:
        publisher.close()
    return next(incident["id"] for incident in incidents if incident["id"] not in before)


async def fall_alarm(live: LiveGateway, mosquitto: Mosquitto) -> int:
    publisher = Publisher(mosquitto.port)
    try:
        publisher.event("night", "night-fall-101", EventKind.FALL)
        incidents = await live.wait_for(lambda found: any(i["rule"] == "fall" for i in found), "a fall")
    finally:
        publisher.close()
    return next(incident["id"] for incident in incidents if incident["rule"] == "fall")


async def frame_where(ws: Any, incident_id: int, predicate: Any, limit_s: float = 10.0) -> dict[str, Any]:
    """The first incident frame about `incident_id` for which `predicate` holds."""
    async with asyncio.timeout(limit_s):
        while True:
            frame = json.loads(await ws.recv())
            incident: dict[str, Any] = frame.get("incident") or {}
            if frame["type"] == "incident" and incident["id"] == incident_id and predicate(incident):
                return incident


async def test_taking_an_alarm_is_seen_by_every_operator_and_a_take_over_is_audited(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live, live.websocket() as ws:
        bob = await client_for(live, "bob", Role.OPERATOR)
        incident_id = await sos(live, mosquitto)
        opened = await frame_where(ws, incident_id, lambda i: i["status"] == "open")
        assert opened["category"] == "life_safety"
        assert opened["taken_by"] is None
        assert opened["dispatched"] is False

        taken = await live.http.post(f"/api/incidents/{incident_id}/take", json={"force": False})
        assert taken.status_code == 200, taken.text
        assert taken.json()["taken_by"] == "operator"
        assert taken.json()["taken_at"] is not None
        seen = await frame_where(ws, incident_id, lambda i: i["taken_by"] == "operator")
        assert seen["status"] == "open"

        refused = await bob.post(f"/api/incidents/{incident_id}/take", json={})
        assert refused.status_code == 409
        assert refused.json()["detail"] == CATALOGUE.text("console.takenBy", "en", user="operator")
        not_bobs = await bob.post(f"/api/incidents/{incident_id}/release")
        assert not_bobs.status_code == 403

        took_over = await bob.post(f"/api/incidents/{incident_id}/take", json={"force": True})
        assert took_over.status_code == 200
        assert took_over.json()["taken_by"] == "bob"
        await frame_where(ws, incident_id, lambda i: i["taken_by"] == "bob")
        audit = (await live.http.get(f"/api/incidents/{incident_id}/audit")).json()
        take_over = [entry for entry in audit if entry["action"] == "incident.taken_over"]
        assert [(e["actor"], e["details"]) for e in take_over] == [("user:bob", {"previous": "operator"})]

        released = await bob.post(f"/api/incidents/{incident_id}/release")
        assert released.status_code == 200
        assert released.json()["taken_by"] is None
        await frame_where(ws, incident_id, lambda i: i["taken_by"] is None)
        assert (await bob.post(f"/api/incidents/{incident_id}/release")).status_code == 409
        await bob.aclose()


async def test_the_queue_answers_life_safety_first_then_the_longest_waiting(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        publisher = Publisher(mosquitto.port)
        try:
            # A door opening at night at the night site (wandering), then two SOS presses (life-safety).
            publisher.event("night", "night-door-101", EventKind.DOOR_OPEN)
            await live.wait_for(lambda found: len(found) == 1, "the door alarm")
        finally:
            publisher.close()
        first_sos = await sos(live, mosquitto, "day", "day-pendant-wang")
        second_sos = await sos(live, mosquitto)
        newest = (await live.http.get("/api/incidents")).json()["incidents"]
        assert [i["id"] for i in newest][:2] == [second_sos, first_sos]
        queue = (await live.http.get("/api/incidents", params={"order": "queue"})).json()["incidents"]
        assert [(i["id"], i["category"]) for i in queue] == [
            (first_sos, "life_safety"),
            (second_sos, "life_safety"),
            (newest[-1]["id"], "wandering"),
        ]
        # Cut after the sort: the longest-waiting life-safety alarm is never the one left out.
        first = (await live.http.get("/api/incidents", params={"order": "queue", "limit": 1})).json()
        assert [i["id"] for i in first["incidents"]] == [first_sos]
        assert (await live.http.get("/api/incidents", params={"order": "random"})).status_code == 422


async def test_a_manager_may_release_an_alarm_someone_else_holds(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        manager = await client_for(live, "manager", Role.MANAGER)
        incident_id = await sos(live, mosquitto)
        assert (await live.http.post(f"/api/incidents/{incident_id}/take")).status_code == 200
        released = await manager.post(f"/api/incidents/{incident_id}/release")
        assert released.status_code == 200
        assert released.json()["taken_by"] is None
        audit = (await live.http.get(f"/api/incidents/{incident_id}/audit")).json()
        assert [e["details"] for e in audit if e["action"] == "incident.released"] == [{"holder": "operator"}]
        await manager.aclose()


async def test_acknowledging_takes_the_alarm_and_resolving_lets_it_go(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live, live.websocket() as ws:
        incident_id = await sos(live, mosquitto)
        acknowledged = (await live.http.post(f"/api/incidents/{incident_id}/ack")).json()
        assert acknowledged["status"] == "acknowledged"
        assert acknowledged["taken_by"] == "operator"
        await frame_where(ws, incident_id, lambda i: i["taken_by"] == "operator")

        resolved = await live.http.post(
            f"/api/incidents/{incident_id}/resolve", json={"outcome": "assisted_on_site", "note": ""}
        )
        assert resolved.status_code == 200
        assert resolved.json()["taken_by"] is None
        assert resolved.json()["taken_at"] is None
        await frame_where(ws, incident_id, lambda i: i["status"] == "resolved" and i["taken_by"] is None)
        again = await live.http.post(f"/api/incidents/{incident_id}/take", json={})
        assert again.status_code == 409


async def test_an_acknowledgement_leaves_an_alarm_someone_holds_with_them(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        bob = await client_for(live, "bob", Role.OPERATOR)
        incident_id = await sos(live, mosquitto)
        assert (await bob.post(f"/api/incidents/{incident_id}/take")).status_code == 200
        acknowledged = (await live.http.post(f"/api/incidents/{incident_id}/ack")).json()
        assert acknowledged["status"] == "acknowledged"
        assert acknowledged["taken_by"] == "bob"
        await bob.aclose()


async def test_no_response_cannot_be_closed_until_someone_has_been_sent(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live, live.websocket() as ws:
        incident_id = await sos(live, mosquitto)
        resolve = f"/api/incidents/{incident_id}/resolve"
        refused = await live.http.post(resolve, json={"outcome": "no_response", "note": "无人接听"})
        assert refused.status_code == 409
        # The harness's operator reads Chinese; a page shown in English gets the reason in English.
        assert refused.json()["detail"] == ZH_NO_RESPONSE
        in_english = await live.http.post(
            resolve, json={"outcome": "no_response"}, headers={"X-Careline-Language": "en"}
        )
        assert in_english.json()["detail"] == CATALOGUE.text("console.noResponseNeedsDispatch", "en")
        assert (await live.incidents())[0]["status"] == "open"

        dispatch = f"/api/incidents/{incident_id}/dispatch"
        unknown = await live.http.post(dispatch, json={"responder": "nobody-of-ours", "who": "", "note": ""})
        assert unknown.status_code == 422
        nameless = await live.http.post(dispatch, json={"responder": None, "who": "  ", "note": ""})
        assert nameless.status_code == 422
        elsewhere = await live.http.post(dispatch, json={"responder": "day-nurse", "who": "", "note": ""})
        assert elsewhere.status_code == 422  # the day site's nurse is not coming to the night site
        assert "does not cover this site" in elsewhere.json()["detail"]
        assert (await live.http.post(resolve, json={"outcome": "no_response"})).status_code == 409

        sent = await live.http.post(
            dispatch, json={"responder": "night-carer", "who": "", "note": "带上轮椅"}
        )
        assert sent.status_code == 200, sent.text
        body = sent.json()
        assert (body["incident_id"], body["by"], body["responder"], body["responder_name"]) == (
            incident_id,
            "operator",
            "night-carer",
            "李娜",
        )
        assert body["note"] == "带上轮椅"
        await frame_where(ws, incident_id, lambda i: i["dispatched"] is True)
        neighbour = await live.http.post(dispatch, json={"who": "邻居张阿姨（有钥匙）"})
        assert neighbour.status_code == 200
        assert neighbour.json()["responder"] is None
        listed = (await live.http.get(f"/api/incidents/{incident_id}/dispatches")).json()
        assert [d["responder"] or d["who"] for d in listed] == ["night-carer", "邻居张阿姨（有钥匙）"]

        closed = await live.http.post(
            resolve, json={"outcome": "no_response", "note": "护理员到场，长者熟睡"}
        )
        assert closed.status_code == 200
        assert closed.json()["outcome"] == "no_response"
        late = await live.http.post(dispatch, json={"who": "someone"})
        assert late.status_code == 409


async def test_notes_are_kept_in_order_and_bounded(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        incident_id = await sos(live, mosquitto)
        path = f"/api/incidents/{incident_id}/notes"
        for note in ("长者说胸口闷", "已通知儿子王明"):
            added = await live.http.post(path, json={"text": note})
            assert added.status_code == 200
            assert set(added.json()) == {"id", "incident_id", "at", "author", "text"}
        assert [n["text"] for n in (await live.http.get(path)).json()] == ["长者说胸口闷", "已通知儿子王明"]
        assert (await live.http.post(path, json={"text": ""})).status_code == 422
        assert (await live.http.post(path, json={"text": "x" * 2001})).status_code == 422
        assert (await live.http.post("/api/incidents/999999/notes", json={"text": "x"})).status_code == 404


async def test_the_incident_screen_has_the_resident_the_place_the_script_the_contacts_and_the_timeline(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        incident_id = await sos(live, mosquitto)
        await live.http.post(f"/api/incidents/{incident_id}/ack")
        await live.http.post(f"/api/incidents/{incident_id}/notes", json={"text": "长者有应答，说摔了一跤"})
        await live.http.post(f"/api/incidents/{incident_id}/dispatch", json={"responder": "night-carer"})
        answer = await live.http.get(f"/api/incidents/{incident_id}/detail")
        assert answer.status_code == 200, answer.text
        detail = answer.json()

        assert detail["incident"]["id"] == incident_id
        assert detail["incident"]["dispatched"] is True
        resident = detail["resident"]
        assert resident["name"] == "王秀英"
        assert resident["photo_url"] == "/static/photos/resident.svg"
        assert resident["birth_year"] == 1941
        assert 84 <= resident["age"] <= 86
        assert resident["languages"] == ["zh-CN", "en"]
        assert resident["conditions"] == ["阿尔茨海默病", "高血压"]
        assert resident["care_notes"] == "傍晚常想回家；说上海话更安心。"
        assert set(resident["risks"]) == {"wandering", "falls"}
        assert "key_safe_code" not in json.dumps(detail)

        place = detail["place"]
        assert (place["site"], place["site_name"], place["room"], place["room_name"]) == (
            "night",
            "Night House",
            "101",
            "101 室",
        )
        assert (place["wing"], place["wing_name"]) == ("A", "认知照护区")
        assert place["address"] == "上海市徐汇区宛平南路 88 号"
        assert place["access_notes"] == "夜间走东门，按门铃 3 号；车停在 B 区。"

        device = detail["device"]
        assert (device["id"], device["type"]) == ("night-pendant-wang", "sos_button")
        assert device["readings"] == []  # no sensor log configured
        assert {"online", "last_seen", "battery"} <= set(device)

        assert detail["script"]["source"] == "default"
        assert detail["script"]["steps"] == default_steps("sos")
        assert any("60" in step for step in detail["script"]["steps"]["en"])

        responders = {r["id"]: r for r in detail["contacts"]["responders"]}
        assert set(responders) == {"night-carer", "day-carer"}  # the day site's nurse is not theirs
        assert responders["night-carer"]["on_duty"] is True
        assert responders["day-carer"]["on_duty"] is False
        assert responders["night-carer"]["phone"] == "+8613800000002"
        assert detail["contacts"]["responders"][0]["id"] == "night-carer"  # on duty first
        assert detail["contacts"]["family"] == [
            {
                "name": "王明",
                "relation": "儿子",
                "phone": "+8613900000101",
                "phones": ["+8613900000101"],
                "languages": ["zh-CN"],
            }
        ]

        kinds = [item["kind"] for item in detail["timeline"]]
        assert {"event", "audit", "note", "dispatch"} <= set(kinds)
        times = [item["at"] for item in detail["timeline"]]
        assert times == sorted(times)
        codes = [item["code"] for item in detail["timeline"]]
        assert codes.index("incident.acknowledged") < codes.index("note") < codes.index("dispatch")
        assert [n["text"] for n in detail["notes"]] == ["长者有应答，说摔了一跤"]
        assert [d["responder"] for d in detail["dispatches"]] == ["night-carer"]
        assert detail["escalation"] == []


async def test_the_incident_screen_shows_the_devices_readings_of_the_last_day(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    with InfluxDB1() as influx:
        influx.create_database("careline")
        config = console_config(mosquitto, tmp_path)
        config["telemetry"] = {
            "backend": "influxdb1",
            "url": influx.url,
            "database": "careline",
            "flush_interval_ms": 100,
            "spool_dir": str(tmp_path / "spool"),
        }
        async with live_gateway(config) as live:
            device = Publisher(mosquitto.port)
            try:
                for level in (81, 80):
                    device.send(
                        "careline/night/night-pendant-wang/telemetry",
                        careline_event(EventKind.BATTERY, level),
                        qos=0,
                    )
                    await asyncio.sleep(0.05)
            finally:
                device.close()
            incident_id = await sos(live, mosquitto)
            readings: list[dict[str, Any]] = []
            for _ in range(100):
                detail = (await live.http.get(f"/api/incidents/{incident_id}/detail")).json()
                readings = detail["device"]["readings"]
                # The device's health arrives from the telemetry process once a second.
                if {r["measurement"] for r in readings} >= {"battery", "sos"} and detail["device"]["battery"]:
                    break
                await asyncio.sleep(0.1)
            batteries = [r["value"] for r in readings if r["measurement"] == "battery"]
            assert batteries == [80, 81]  # newest first
            assert [r["time_ns"] for r in readings] == sorted((r["time_ns"] for r in readings), reverse=True)
            assert detail["device"]["battery"] == 80
            assert detail["device"]["online"] is True
        # Its connections to InfluxDB end with the gateway (left to the garbage collector, they surfaced
        # as unclosed sockets in whichever test ran next).
        assert live.gateway.sensor_log is not None
        assert live.gateway.sensor_log._client.is_closed


async def test_an_unreachable_sensor_log_leaves_the_incident_screen_open(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = console_config(mosquitto, tmp_path)
    config["telemetry"] = {
        "backend": "influxdb1",
        "url": "http://127.0.0.1:9",  # nothing listens on the discard port
        "database": "careline",
        "spool_dir": str(tmp_path / "spool"),
    }
    async with live_gateway(config) as live:
        incident_id = await sos(live, mosquitto)
        answer = await live.http.get(f"/api/incidents/{incident_id}/detail")
        assert answer.status_code == 200, answer.text
        assert answer.json()["device"]["readings"] == []


async def test_a_test_press_resolved_as_such_counts_as_the_buttons_test(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        assert (await live.http.get("/api/device-tests")).json() == []
        real = await sos(live, mosquitto)
        await live.http.post(f"/api/incidents/{real}/resolve", json={"outcome": "assisted_on_site"})
        assert (await live.http.get("/api/device-tests")).json() == []  # a real press is no test

        test_press = await sos(live, mosquitto)
        resolved = await live.http.post(f"/api/incidents/{test_press}/resolve", json={"outcome": "test_call"})
        assert resolved.status_code == 200
        tests = (await live.http.get("/api/device-tests")).json()
        assert [(t["device_id"], t["kind"], t["test_count"]) for t in tests] == [
            ("night-pendant-wang", "test_call", 1)
        ]
        audit = (await live.http.get(f"/api/incidents/{test_press}/audit")).json()
        assert "device.tested" in [entry["action"] for entry in audit]

        # A fall closed as a "test press" would mark the radar tested although nobody tested it.
        fall = await fall_alarm(live, mosquitto)
        refused = await live.http.post(f"/api/incidents/{fall}/resolve", json={"outcome": "test_call"})
        assert refused.status_code == 409
        assert refused.json()["detail"] == CATALOGUE.text("console.testCallOnlySos", "zh-CN")
        assert len((await live.http.get("/api/device-tests")).json()) == 1


# --- response scripts ---------------------------------------------------------------------------------

STEPS = {
    "en": ["Call the resident", "No answer in 60 s: send the carer"],
    "zh-CN": ["呼叫长者", "60 秒无应答：派护理员"],
}
NIGHT_STEPS = {"en": ["Night: send the wing A carer at once"], "zh-CN": ["夜间：立即派 A 区护理员"]}


async def test_managers_write_response_scripts_that_apply_by_site_and_operators_may_not(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        manager = await client_for(live, "manager", Role.MANAGER)
        operator_put = await live.http.put("/api/response-scripts/sos", json={"steps": STEPS})
        assert operator_put.status_code == 403
        assert (await live.http.delete("/api/response-scripts/sos")).status_code == 403

        everywhere = await manager.put("/api/response-scripts/sos", json={"steps": STEPS})
        assert everywhere.status_code == 200, everywhere.text
        assert everywhere.json()["site"] is None
        assert everywhere.json()["updated_by"] == "manager"
        at_night = await manager.put(
            "/api/response-scripts/sos", params={"site": "night"}, json={"steps": NIGHT_STEPS}
        )
        assert at_night.status_code == 200
        assert at_night.json()["site"] == "night"
        listed = (await live.http.get("/api/response-scripts")).json()
        assert [(s["rule"], s["site"], s["steps"]) for s in listed] == [
            ("sos", None, STEPS),
            ("sos", "night", NIGHT_STEPS),
        ]

        night_incident = await sos(live, mosquitto)
        day_incident = await sos(live, mosquitto, "day", "day-pendant-wang")
        night_script = (await live.http.get(f"/api/incidents/{night_incident}/detail")).json()["script"]
        day_script = (await live.http.get(f"/api/incidents/{day_incident}/detail")).json()["script"]
        assert (night_script["source"], night_script["steps"]) == ("site", NIGHT_STEPS)
        assert (day_script["source"], day_script["steps"]) == ("all_sites", STEPS)

        fallen_back = await manager.delete("/api/response-scripts/sos", params={"site": "night"})
        assert fallen_back.status_code == 200
        assert fallen_back.json()["source"] == "all_sites"
        night_script = (await live.http.get(f"/api/incidents/{night_incident}/detail")).json()["script"]
        assert night_script["steps"] == STEPS
        assert (
            await manager.delete("/api/response-scripts/sos", params={"site": "night"})
        ).status_code == 404
        default = await manager.delete("/api/response-scripts/sos")
        assert default.json()["source"] == "default"
        assert default.json()["steps"] == default_steps("sos")

        audit = (await manager.get("/api/audit/verify")).json()
        assert audit["intact"] is True
        await manager.aclose()


REFUSED_SCRIPTS: list[tuple[str, str | None, dict[str, list[str]]]] = [
    ("no_such_rule", None, STEPS),
    ("sos", "no-such-site", STEPS),
    ("sos", None, {"en": STEPS["en"]}),
    ("sos", None, {"en": [], "zh-CN": []}),
    ("sos", None, {"en": ["x"] * 21, "zh-CN": ["x"] * 21}),
    ("sos", None, {"en": ["x" * 301], "zh-CN": ["x"]}),
    ("sos", None, {"en": [""], "zh-CN": ["x"]}),
]


async def test_a_response_script_that_is_not_right_is_refused(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        manager = await client_for(live, "manager", Role.MANAGER)
        for rule, site, steps in REFUSED_SCRIPTS:
            params = {"site": site} if site else {}
            refused = await manager.put(f"/api/response-scripts/{rule}", params=params, json={"steps": steps})
            assert refused.status_code == 422, (rule, site, steps, refused.text)
        assert (await manager.get("/api/response-scripts")).json() == []
        await manager.aclose()


# --- site scope ---------------------------------------------------------------------------------------


async def test_a_screen_signed_in_for_one_site_hears_only_that_sites_alarms(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        day_operator = await client_for(live, "day-screen", Role.OPERATOR, sites=("day",))
        cookie = "; ".join(f"{k}={v}" for k, v in day_operator.cookies.items())
        async with websockets.connect(live.ws_url, additional_headers={"Cookie": cookie}) as ws:
            assert json.loads(await ws.recv()) == {"type": "hello"}
            await sos(live, mosquitto)  # the night house: not this screen's
            day_incident = await sos(live, mosquitto, "day", "day-pendant-wang")
            first = await next_incident_frame(ws)
            assert (first["id"], first["site"]) == (day_incident, "day")
        await day_operator.aclose()


async def test_a_user_of_one_site_never_sees_nor_touches_the_alarms_of_another(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        day_operator = await client_for(live, "day-operator", Role.OPERATOR, sites=("day",))
        day_manager = await client_for(live, "day-manager", Role.MANAGER, sites=("day",))
        night_incident = await sos(live, mosquitto)
        day_incident = await sos(live, mosquitto, "day", "day-pendant-wang")

        listed = (await day_operator.get("/api/incidents", params={"status": "all"})).json()["incidents"]
        assert [incident["id"] for incident in listed] == [day_incident]
        base = f"/api/incidents/{night_incident}"
        for method, path, body in (
            ("GET", base, None),
            ("GET", f"{base}/detail", None),
            ("GET", f"{base}/audit", None),
            ("GET", f"{base}/escalation", None),
            ("GET", f"{base}/notes", None),
            ("GET", f"{base}/dispatches", None),
            ("POST", f"{base}/take", {"force": True}),
            ("POST", f"{base}/release", None),
            ("POST", f"{base}/ack", None),
            ("POST", f"{base}/notes", {"text": "x"}),
            ("POST", f"{base}/dispatch", {"who": "x"}),
            ("POST", f"{base}/resolve", {"outcome": "false_alarm"}),
        ):
            answer = await day_operator.request(method, path, json=body)
            assert answer.status_code == 404, (method, path, answer.text)
        assert (await live.incidents())[-1]["status"] == "open"
        assert (await day_operator.get(f"/api/incidents/{day_incident}/detail")).status_code == 200

        # A manager of one site writes that site's scripts only.
        outside = await day_manager.put(
            "/api/response-scripts/sos", params={"site": "night"}, json={"steps": STEPS}
        )
        assert outside.status_code == 403
        everywhere = await day_manager.put("/api/response-scripts/sos", json={"steps": STEPS})
        assert everywhere.status_code == 403
        own = await day_manager.put(
            "/api/response-scripts/sos", params={"site": "day"}, json={"steps": STEPS}
        )
        assert own.status_code == 200
        admin = await client_for(live, "admin", Role.ADMIN)
        night = await admin.put("/api/response-scripts/fall", params={"site": "night"}, json={"steps": STEPS})
        assert night.status_code == 200
        seen = (await day_operator.get("/api/response-scripts")).json()
        assert [(s["rule"], s["site"]) for s in seen] == [("sos", "day")]
        assert len((await admin.get("/api/response-scripts")).json()) == 2
        for client in (day_operator, day_manager, admin):
            await client.aclose()
