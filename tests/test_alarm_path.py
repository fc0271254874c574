"""The alarm path end to end: real Mosquitto, real gateway, real SQLite, real HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from harness import Publisher, live_gateway, new_config, next_incident_frame
from services import Mosquitto
from stores import WriteBlocker, only_sqlite

from devices.model import EventKind
from simulators.payloads import careline_event

pytestmark = pytest.mark.asyncio


async def test_native_sos_becomes_one_incident_in_the_api_and_on_the_websocket(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live, live.websocket() as ws:
        device = Publisher(mosquitto.port)
        device.sos("night", "night-pendant-wang")
        pushed = await next_incident_frame(ws)
        assert (pushed["rule"], pushed["severity"], pushed["status"]) == ("sos", "critical", "open")
        assert pushed["resident_name"] == "王秀英"
        listed = await live.incidents()
        assert [i["id"] for i in listed] == [pushed["id"]]
        device.close()


async def test_zigbee2mqtt_sos_button_becomes_an_incident(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live, live.websocket() as ws:
        device = Publisher(mosquitto.port)
        device.zigbee("day/102/pendant", action="emergency", battery=100, linkquality=120)
        pushed = await next_incident_frame(ws)
        assert (pushed["rule"], pushed["resident"], pushed["device_id"]) == (
            "sos",
            "day-li",
            "day-pendant-li",
        )
        device.close()


async def test_a_second_press_joins_the_open_incident(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live, live.websocket() as ws:
        device = Publisher(mosquitto.port)
        device.sos("night", "night-pendant-wang")
        first = await next_incident_frame(ws)
        device.sos("night", "night-pendant-wang")
        second = await next_incident_frame(ws)
        assert second["id"] == first["id"]
        assert second["trigger_count"] == 2
        assert len(await live.incidents()) == 1
        device.close()


async def test_the_same_event_delivered_twice_is_counted_once(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        device = Publisher(mosquitto.port)
        device.sos("night", "night-pendant-wang", event_id="press-0001-abcdef")
        device.sos("night", "night-pendant-wang", event_id="press-0001-abcdef")
        device.sos("night", "night-pendant-wang", event_id="press-0002-abcdef")
        incidents = await live.wait_for(lambda i: i and i[0]["trigger_count"] == 2, "two distinct presses")
        await asyncio.sleep(0.3)
        assert [i["trigger_count"] for i in await live.incidents()] == [2]
        assert live.gateway.metrics.duplicates._value.get() == 1
        assert len(incidents) == 1
        device.close()


async def test_acknowledge_and_resolve_are_pushed_and_audited(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live, live.websocket() as ws:
        device = Publisher(mosquitto.port)
        device.sos("night", "night-pendant-wang")
        incident = await next_incident_frame(ws)
        acked = (await live.http.post(f"/api/incidents/{incident['id']}/ack")).json()
        assert (acked["status"], acked["acknowledged_by"]) == ("acknowledged", "user:operator")
        assert (await next_incident_frame(ws))["status"] == "acknowledged"
        resolved = await live.http.post(
            f"/api/incidents/{incident['id']}/resolve",
            json={"outcome": "assisted_on_site", "note": "helped back to bed"},
        )
        assert resolved.json()["status"] == "resolved"
        pushed = await next_incident_frame(ws)
        assert (pushed["status"], pushed["outcome"]) == ("resolved", "assisted_on_site")
        again = await live.http.post(f"/api/incidents/{incident['id']}/resolve", json={"outcome": "other"})
        assert again.status_code == 409
        trail = (await live.http.get(f"/api/incidents/{incident['id']}/audit")).json()
        audit = [e for e in trail if e["action"].startswith("incident.")]
        assert [e["action"] for e in audit] == [
            "incident.opened",
            "incident.acknowledged",
            "incident.resolved",
        ]
        assert audit[2]["actor"] == "user:operator"
        assert audit[2]["details"] == {"outcome": "assisted_on_site", "note": "helped back to bed"}
        assert live.gateway.store.verify_audit_chain() is None
        assert await live.incidents("active") == []
        device.close()


async def test_a_door_opened_at_night_for_a_resident_at_risk_opens_an_incident_but_not_by_day(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        device = Publisher(mosquitto.port)
        device.event("day", "day-door-101", EventKind.DOOR_OPEN)  # at-risk resident, but daytime
        device.event("night", "night-door-102", EventKind.DOOR_OPEN)  # night, resident not at risk
        device.event("night", "night-door-101", EventKind.DOOR_OPEN)  # night and at risk: alarm
        incidents = await live.wait_for(lambda i: len(i) >= 1, "the night-door incident")
        await asyncio.sleep(0.5)
        incidents = await live.incidents()
        assert [(i["rule"], i["device_id"], i["severity"]) for i in incidents] == [
            ("door_night", "night-door-101", "high")
        ]
        device.close()


async def test_a_fall_cancelled_by_the_resident_within_the_window_is_resolved_as_cancelled(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live, live.websocket() as ws:
        device = Publisher(mosquitto.port)
        device.event("night", "night-fall-101", EventKind.FALL, True)
        opened = await next_incident_frame(ws)
        # The alarm is raised at once, not held back waiting to see whether a cancel follows.
        assert (opened["rule"], opened["status"]) == ("fall", "open")
        device.event("night", "night-fall-101", EventKind.FALL_CANCEL)
        cancelled = await next_incident_frame(ws)
        assert (cancelled["id"], cancelled["status"], cancelled["outcome"]) == (
            opened["id"],
            "resolved",
            "cancelled_by_resident",
        )
        trail = (await live.http.get(f"/api/incidents/{opened['id']}/audit")).json()
        audit = [e for e in trail if e["action"].startswith("incident.")]
        assert audit[-1]["action"] == "incident.cancelled"
        assert audit[-1]["actor"] == "resident:night-wang"
        device.close()


async def test_a_thousand_malformed_payloads_are_dead_lettered_and_an_sos_amid_them_still_alarms(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        device = Publisher(mosquitto.port)
        for n in range(1000):
            device.send("careline/night/night-pendant-wang/alarm", b"{not json" + str(n).encode())
            if n == 500:
                device.sos("night", "night-pendant-wang")
        await live.wait_for(lambda i: len(i) == 1, "the SOS sent amid garbage")
        stats = await live.poll("/api/stats", lambda stats: stats["dead_letters"] == 1000)
        assert stats == {"dead_letters": 1000, "open_incidents": 1}
        letters = (await live.http.get("/api/dead-letters", params={"limit": 1})).json()
        assert letters[0]["topic"] == "careline/night/night-pendant-wang/alarm"
        assert "JSON" in letters[0]["reason"] or "json" in letters[0]["reason"]
        assert live.gateway.metrics.dead_letters.labels("alarm")._value.get() == 1000
        device.close()


async def test_a_faulty_native_sos_and_a_nan_laden_zigbee2mqtt_emergency_each_open_an_incident_with_faults(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        device = Publisher(mosquitto.port)
        # A short id and the time in seconds: two schema faults, still a call for help.
        native = {"v": 1, "event_id": "p-1", "ts": int(time.time()), "kind": "sos"}
        device.send("careline/night/night-pendant-wang/alarm", json.dumps(native).encode())
        huge = b"1" + b"0" * 10_000
        device.send(
            "zigbee2mqtt/day/102/pendant", b'{"action":"emergency","battery":NaN,"linkquality":' + huge + b"}"
        )
        incidents = await live.wait_for(lambda i: len(i) == 2, "both calls for help")
        by_device = {incident["device_id"]: incident for incident in incidents}
        assert {i["rule"] for i in incidents} == {"sos"}
        assert by_device["night-pendant-wang"]["faults"] == [
            "event_id: String should have at least 8 characters; kept as the message id",
            "ts: Value error, is before 2000-01-01 (epoch seconds sent instead of milliseconds?); "
            "receive time used",
        ]
        assert by_device["day-pendant-li"]["faults"] == [
            "battery must be a number (got NaN); ignored",
            "linkquality must be a number (got a 10001-digit integer); ignored",
        ]
        native_id = by_device["night-pendant-wang"]["id"]
        trail = (await live.http.get(f"/api/incidents/{native_id}/audit")).json()
        assert trail[0]["action"] == "incident.opened"
        assert trail[0]["details"]["faults"] == by_device["night-pendant-wang"]["faults"]
        faulty = live.gateway.metrics.alarms_with_faults
        assert (faulty.labels("careline")._value.get(), faulty.labels("zigbee2mqtt")._value.get()) == (1, 1)
        device.close()


async def test_a_smoke_detectors_self_test_opens_no_incident_and_is_listed_as_a_device_test(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = new_config(mosquitto.url, tmp_path)
    detector = {"id": "night-smoke-101", "type": "smoke_detector", "profile": "zigbee2mqtt", "site": "night"}
    config["devices"].append({**detector, "room": "101"})
    async with live_gateway(config) as live:
        device = Publisher(mosquitto.port)
        device.zigbee("night-smoke-101", smoke=True, test=True, battery=90)
        tests = await live.poll("/api/device-tests", bool)
        assert [(t["device_id"], t["site"], t["kind"], t["test_count"]) for t in tests] == [
            ("night-smoke-101", "night", "smoke", 1)
        ]
        # Recorded in the transaction an incident would have been: none can still be on its way.
        assert await live.incidents() == []
        assert live.gateway.metrics.device_tests._value.get() == 1
        async with httpx.AsyncClient(base_url=live.base_url) as anonymous:
            assert (await anonymous.get("/api/device-tests")).status_code == 401
        device.zigbee("night-smoke-101", smoke=True, test=False, battery=90)
        incidents = await live.wait_for(lambda i: len(i) == 1, "the real smoke alarm")
        assert (incidents[0]["rule"], incidents[0]["severity"]) == ("smoke", "critical")
        device.close()


async def test_a_broker_restart_loses_no_alarm(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        device = Publisher(mosquitto.port)
        device.sos("night", "night-pendant-wang")
        await live.wait_for(lambda i: len(i) == 1, "the first SOS")
        mosquitto.stop()
        # Published while the broker is down: the device's client queues it and sends on reconnect.
        device.sos("day", "day-pendant-wang")
        mosquitto.start()
        await live.wait_for(lambda i: len(i) == 2, "the SOS sent while the broker was down", limit_s=30)
        await live.gateway.wait_connected(limit_s=15)
        device.zigbee("night/102/pendant", action="sos")
        incidents = await live.wait_for(lambda i: len(i) == 3, "an SOS after the restart", limit_s=30)
        assert sorted(i["device_id"] for i in incidents) == [
            "day-pendant-wang",
            "night-pendant-li",
            "night-pendant-wang",
        ]
        device.close()


async def test_the_api_refuses_anyone_not_logged_in(mosquitto: Mosquitto, tmp_path: Path) -> None:
    import httpx
    import websockets

    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        async with httpx.AsyncClient(base_url=live.base_url) as anonymous:
            assert (await anonymous.get("/api/incidents")).status_code == 401
            assert (await anonymous.post("/api/incidents/1/ack")).status_code == 401
            wrong = await anonymous.post("/api/login", json={"username": "operator", "password": "guess"})
            assert wrong.status_code == 401
            assert (await anonymous.get("/api/healthz")).json()["status"] == "ok"
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with websockets.connect(live.ws_url):
                pass
        assert refused.value.response.status_code == 403
        metrics = (await live.http.get("/metrics")).text
        assert "careline_messages_received_total" in metrics


async def test_a_dying_battery_reported_on_the_telemetry_lane_opens_a_technical_incident(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        device = Publisher(mosquitto.port)
        device.send(
            "careline/night/night-pendant-wang/telemetry", careline_event(EventKind.BATTERY, 5), qos=0
        )
        incidents = await live.wait_for(lambda i: len(i) == 1, "the battery-low incident")
        metrics = (await live.http.get("/metrics")).text
        assert "careline_telemetry_lag_seconds" in metrics
        assert (incidents[0]["rule"], incidents[0]["severity"], incidents[0]["device_id"]) == (
            "device_health",
            "low",
            "night-pendant-wang",
        )
        device.close()


async def test_alarm_lane_events_also_count_as_signs_of_life_for_the_device_list(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        device = Publisher(mosquitto.port)
        device.event("night", "night-door-102", EventKind.DOOR_CLOSED)  # native: alarm topic only
        devices = await live.poll(
            "/api/devices", lambda ds: any(d["device_id"] == "night-door-102" for d in ds)
        )
        seen = {d["device_id"] for d in devices}
        assert "night-door-102" in seen
        device.close()


async def test_undecodable_telemetry_is_dead_lettered_from_the_telemetry_process(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        device = Publisher(mosquitto.port)
        device.send("careline/night/night-pendant-wang/telemetry", b"\xff not json", qos=0)
        letters = await live.poll("/api/dead-letters", bool)
        assert (letters[0]["lane"], letters[0]["topic"]) == (
            "telemetry",
            "careline/night/night-pendant-wang/telemetry",
        )
        device.close()


async def test_an_oversized_message_on_an_alarm_devices_topic_is_kept_once_as_a_bounded_prefix(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """`zigbee2mqtt/#` brings the alarm devices' topics to the telemetry lane too: the alarm lane owns it."""
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        device = Publisher(mosquitto.port)
        oversized = b'{"action": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        device.send("zigbee2mqtt/night/102/pendant", oversized)
        left = live.gateway.metrics.telemetry_left_to_alarm_lane
        for _ in range(100):
            if left._value.get() == 1:
                break
            await asyncio.sleep(0.1)
        assert left._value.get() == 1
        await asyncio.sleep(2.5)  # a telemetry dead letter would have been flushed and stored by now
        letters = (await live.http.get("/api/dead-letters")).json()
        device.close()

    [letter] = letters
    assert (letter["lane"], letter["device_id"]) == ("alarm", "night-pendant-li")
    assert f"payload of {len(oversized)} bytes exceeds 65536" in letter["reason"]
    assert (letter["payload_size"], letter["payload_truncated"]) == (len(oversized), True)
    assert letter["payload"] == oversized[:4096].decode()


@only_sqlite("headroom is measured on the SQLite file's disk; a PostgreSQL server's is not the gateway's")
async def test_short_of_disk_space_telemetry_dead_letters_are_refused_and_alarms_still_committed(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = new_config(mosquitto.url, tmp_path)
    config["storage"]["min_free_mb"] = 1e12  # more than any disk has: always short of headroom
    async with live_gateway(config) as live:
        device = Publisher(mosquitto.port)
        device.send("careline/night/night-pendant-wang/telemetry", b"not json", qos=0)
        refused = live.gateway.metrics.disk_refused.labels("telemetry_dead_letters")
        for _ in range(100):
            if refused._value.get() == 1:
                break
            await asyncio.sleep(0.1)
        assert refused._value.get() == 1
        device.sos("night", "night-pendant-wang")
        await live.wait_for(lambda i: len(i) == 1, "the SOS, committed while the disk is short")
        health = (await live.http.get("/api/health/details")).json()
        stats = (await live.http.get("/api/stats")).json()
        device.close()

    assert health["status"] == "ok"
    assert health["disk"]["database"]["low"] is True
    assert health["disk"]["database"]["path"] == str(tmp_path)
    assert stats["dead_letters"] == 0


async def test_a_telemetry_process_that_dies_is_restarted_and_telemetry_flows_again(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    import os
    import signal

    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        process = live.gateway.telemetry._process
        assert process is not None
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        for _ in range(100):
            if live.gateway.telemetry.restarts == 1 and live.gateway.telemetry.alive:
                break
            await asyncio.sleep(0.1)
        assert live.gateway.telemetry.restarts == 1
        await live.gateway.wait_connected()
        device = Publisher(mosquitto.port)
        device.send(
            "careline/night/night-pendant-wang/telemetry", careline_event(EventKind.BATTERY, 4), qos=0
        )
        incidents = await live.wait_for(lambda i: len(i) == 1, "the battery-low incident after the restart")
        assert incidents[0]["rule"] == "device_health"
        device.close()


async def test_an_sos_naming_another_device_is_refused_and_counted_as_spoofing_on_both_lanes(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        device = Publisher(mosquitto.port)
        forged = json.loads(careline_event(EventKind.SOS))
        forged["device"] = "day-pendant-li"
        device.send("careline/night/night-pendant-wang/alarm", json.dumps(forged).encode())
        beat = json.loads(careline_event(EventKind.HEARTBEAT))
        beat["device"] = "day-pendant-li"
        device.send("careline/night/night-pendant-wang/telemetry", json.dumps(beat).encode(), qos=0)
        device.sos("night", "night-pendant-wang")  # the same pendant speaking for itself still alarms
        [incident] = await live.wait_for(lambda i: len(i) == 1, "the pendant's own SOS")
        letters = await live.poll("/api/dead-letters", lambda letters: len(letters) == 2)
        spoofed = live.gateway.metrics.spoofed
        await live.poll("/api/stats", lambda _: spoofed.labels("telemetry")._value.get() == 1)
        device.close()

    assert incident["device_id"] == "night-pendant-wang"
    assert sorted(letter["lane"] for letter in letters) == ["alarm", "telemetry"]
    claim = "spoofing: payload names device 'day-pendant-li'"
    assert all(letter["reason"].startswith(claim) for letter in letters)
    assert spoofed.labels("alarm")._value.get() == 1


async def test_a_flood_of_alarms_waits_at_the_broker_while_the_store_is_busy_and_none_is_lost(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Back-pressure, not drops: MQTT 5's Receive Maximum keeps unacknowledged alarms at the broker."""
    config = new_config(mosquitto.url, tmp_path, alarm_receive_maximum=5)
    async with live_gateway(config) as live:
        received = live.gateway.metrics.messages_received.labels("alarm")
        lock = WriteBlocker(live.gateway.config.storage.url)  # nothing commits, so nothing is acked
        device = Publisher(mosquitto.port)
        for _ in range(60):
            device.sos("night", "night-pendant-wang")
        await asyncio.sleep(2.0)
        held_back = received._value.get()
        lock.release()
        [incident] = await live.wait_for(
            lambda i: len(i) == 1 and i[0]["trigger_count"] == 60, "all 60 presses", limit_s=60
        )
        device.close()

    assert 1 <= held_back <= 5
    assert received._value.get() == 60
    assert incident["trigger_count"] == 60
