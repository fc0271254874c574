"""Tests and faults as duty (docs/duty.md), against a real gateway on real Mosquitto and SQLite, the real
`twilio` library talking to the local Twilio stand-in, and an injected clock: a press in test mode is a
test that reaches nobody, the press after it and a press after the window are real alarms; a device
fault unresolved for 2 hours reaches the technician on duty once, not at 1 h 59 min, across a restart;
a console left unstaffed opens one alarm to the supervisor and closes it when an operator connects."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import websockets
from harness import LiveGateway, Publisher, live_gateway, new_config
from services import Mosquitto
from test_escalation_e2e import sent_to, until

from careline.bootstrap import bootstrap
from devices.model import DeviceEvent, DeviceType, EventKind
from gateway.catalogue import text
from gateway.clock import FakeClock
from gateway.config import CarelineConfig
from gateway.incidents.store import AlarmBatch, RuledDecision
from rules.model import AlarmDecision, Severity
from simulators.twilio_standin import TwilioStandIn

pytestmark = pytest.mark.asyncio

CARER, TECHNICIAN, SUPERVISOR = "+8613800000001", "+8613800000040", "+8613800000020"


@pytest.fixture
def twilio(monkeypatch: pytest.MonkeyPatch) -> Iterator[TwilioStandIn]:
    with TwilioStandIn() as stand_in:
        monkeypatch.setenv("TEST_TWILIO_SID", stand_in.account_sid)
        monkeypatch.setenv("TEST_TWILIO_TOKEN", stand_in.auth_token)
        yield stand_in


def duty_config(broker_url: str, tmp_path: Path, twilio: TwilioStandIn) -> dict[str, Any]:
    config = new_config(broker_url, tmp_path)
    config["responders"] = [
        {"id": "carer", "name": "Carer Li", "phone": CARER, "roles": ["carer"]},
        {
            "id": "technician",
            "name": "马刚",
            "phone": TECHNICIAN,
            "roles": ["technician"],
            "shifts": [{"start": "08:00", "end": "20:00"}, {"start": "20:00", "end": "08:00"}],
        },
        # A technician with no shift now must not be called.
        {
            "id": "technician-off",
            "name": "Off duty",
            "phone": "+8613800000041",
            "roles": ["technician"],
            "shifts": [{"days": [], "start": "08:00", "end": "20:00"}],
        },
        {"id": "boss", "name": "Supervisor", "phone": SUPERVISOR, "roles": ["supervisor"], "language": "en"},
    ]
    config["escalation"] = {
        "public_url": f"http://127.0.0.1:{config['http']['port']}",
        "twilio": {
            "account_sid_env": "TEST_TWILIO_SID",
            "auth_token_env": "TEST_TWILIO_TOKEN",
            "from_number": "+15005550006",
            "api_base_url": twilio.base_url,
            "timeout_s": 5,
        },
    }
    return config


async def next_test_frame(ws: Any, limit_s: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(limit_s):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame["type"] == "device_test":
                return frame


async def arm(live: LiveGateway, device: str, **body: Any) -> Any:
    return await live.http.put(f"/api/duty/test-mode/{device}", json=body)


async def test_a_press_in_test_mode_is_a_test_that_reaches_nobody_and_the_next_press_is_an_alarm(
    mosquitto: Mosquitto, tmp_path: Path, twilio: TwilioStandIn
) -> None:
    clock = FakeClock(datetime.now(UTC))
    async with live_gateway(duty_config(mosquitto.url, tmp_path, twilio), clock) as live:
        device = Publisher(mosquitto.port)
        armed = await arm(live, "night-pendant-wang")
        assert armed.status_code == 200, armed.text
        expires = datetime.fromisoformat(armed.json()["expires_at"])
        assert expires - clock.now() == timedelta(minutes=10)
        board = (await live.http.get("/api/duty/test-mode")).json()
        shown = {d["device_id"]: d for d in board["devices"]}
        assert shown["night-pendant-wang"]["test_mode"]["armed_by"] == "operator"
        assert "night-door-101" not in shown  # a door sensor raises no call to test

        async with live.websocket() as ws:
            device.sos("night", "night-pendant-wang")
            frame = await next_test_frame(ws)
        assert (frame["device_id"], frame["armed_by"], frame["test_count"]) == (
            "night-pendant-wang",
            "operator",
            1,
        )
        assert await live.incidents() == []
        await live.gateway.escalator.run_due()
        await live.gateway.escalator.drain()
        assert twilio.requests == []  # nobody was told of a test
        tests = {t["device_id"]: t for t in (await live.http.get("/api/device-tests")).json()}
        assert (tests["night-pendant-wang"]["kind"], tests["night-pendant-wang"]["test_count"]) == (
            "test_mode",
            1,
        )
        trail = live.gateway.store.audit_trail()
        assert [e.action for e in trail if e.action.startswith("device.")] == [
            "device.test_mode_armed",
            "device.tested",
        ]

        # Used up by the first press: the second is a real alarm, escalated at once.
        device.sos("night", "night-pendant-wang")
        [incident] = await live.wait_for(lambda rows: len(rows) == 1, "the second press's alarm")
        assert (incident["rule"], incident["status"]) == ("sos", "open")
        await until(lambda: sent_to(twilio, CARER), "the carer's SMS about the real alarm")

        # An alarm open: no test mode until it is dealt with.
        assert (await arm(live, "night-pendant-wang")).status_code == 409
        resolved = await live.http.post(
            f"/api/incidents/{incident['id']}/resolve",
            json={"outcome": "false_alarm", "note": "second press"},
        )
        assert resolved.status_code == 200, resolved.text

        # A test mode that ran out: the press is an alarm.
        assert (await arm(live, "night-pendant-wang", minutes=1)).status_code == 200
        clock.advance(61)
        device.sos("night", "night-pendant-wang")
        await live.wait_for(lambda rows: len(rows) == 2, "the alarm after test mode expired")

        # Refusals: too long a window, a device with no test mode, one that does not exist, nothing armed.
        assert (await arm(live, "day-pendant-wang", minutes=31)).status_code == 422
        assert (await arm(live, "night-door-101")).status_code == 409
        assert (await arm(live, "nobody")).status_code == 404
        assert (await live.http.delete("/api/duty/test-mode/day-pendant-wang")).status_code == 404
        assert (await arm(live, "day-pendant-wang")).status_code == 200
        assert (await live.http.delete("/api/duty/test-mode/day-pendant-wang")).status_code == 204
        device.sos("day", "day-pendant-wang")
        await live.wait_for(lambda rows: len(rows) == 3, "the alarm after test mode was ended")
        device.close()


async def test_a_fault_unresolved_for_two_hours_reaches_the_technician_on_duty_once(
    mosquitto: Mosquitto, tmp_path: Path, twilio: TwilioStandIn
) -> None:
    config = duty_config(mosquitto.url, tmp_path, twilio)
    clock = FakeClock(datetime.now(UTC))
    async with live_gateway(config, clock) as live:
        device = Publisher(mosquitto.port)
        device.send("zigbee2mqtt/day/102/pendant/availability", json.dumps({"state": "offline"}).encode())
        [fault] = await live.wait_for(lambda rows: len(rows) == 1, "the offline fault")
        assert fault["rule"] == "device_health"
        # Acknowledging is not fixing: the fault still counts as unresolved.
        assert (await live.http.post(f"/api/incidents/{fault['id']}/ack")).status_code == 200
        opened = datetime.fromisoformat(fault["opened_at"])

        clock.set(opened + timedelta(hours=1, minutes=59))
        assert await live.gateway.duty.escalate_overdue_faults() == []
        device.close()

    # The gateway restarts; the 2 hours are the stored incident's, not a timer that died with it.
    clock.set(opened + timedelta(hours=2))
    restarted = bootstrap(CarelineConfig.model_validate(config), clock=clock)
    async with restarted.running():
        await until(lambda: sent_to(twilio, TECHNICIAN), "the technician's SMS")
        sms = sent_to(twilio, TECHNICIAN)[0].get("Body") or ""
        assert text("rule.fault_overdue", "zh-CN") in sms
        clock.advance(3600)
        assert await restarted.duty.escalate_overdue_faults() == []  # once
        await until(lambda: sent_to(twilio, TECHNICIAN, "Calls"), "the technician's call")
        await restarted.escalator.drain()
        assert [r for r in twilio.requests if r.get("To") == "+8613800000041"] == []  # not on duty
        escalated = [
            e for e in restarted.store.audit_trail(fault["id"]) if e.action == "incident.fault_escalated"
        ]
        assert len(escalated) == 1
        assert escalated[0].details["technicians"] == ["technician"]
        assert escalated[0].details["contacts"] == ["technician:sms", "technician:voice"]


async def test_a_technicians_message_cut_off_by_a_crash_is_sent_after_it_worded_as_overdue(
    tmp_path: Path, twilio: TwilioStandIn
) -> None:
    # The store and its writer only: no broker is needed to plan and requeue.
    config = duty_config("mqtt://127.0.0.1:1", tmp_path, twilio)
    clock = FakeClock(datetime.now(UTC))
    gateway = bootstrap(CarelineConfig.model_validate(config), clock=clock)
    gateway.open_store()
    gateway.service.start()
    try:
        now = clock.now()
        event = DeviceEvent(
            device_id="day-pendant-li",
            device_type=DeviceType.SOS_BUTTON,
            site="day",
            room="102",
            resident="day-li",
            kind=EventKind.AVAILABILITY,
            value=False,
            ts=now,
            received_at=now,
            message_key="day-pendant-li-offline",
        )
        fault = AlarmDecision(
            "device_health", Severity.LOW, "device_health:day:day-pendant-li:offline", event
        )
        [view] = (
            await gateway.service.apply(AlarmBatch([RuledDecision(fault, check_duplicate=False)]))
        ).changed
        await gateway.service.acknowledge(view.id, "user:operator")
        clock.advance(2 * 3600)
        # Planned and committed; the gateway dies before a message goes out.
        assert await gateway.service.bookkeeping(gateway.duty._escalate_overdue, clock.now())
        requeued = await gateway.service.bookkeeping(gateway.escalations.requeue_interrupted, clock.now())
        assert {(p.recipient.responder_id, p.channel.value, p.alarm.rule) for p in requeued} == {
            ("technician", "sms", "fault_overdue"),
            ("technician", "voice", "fault_overdue"),
        }
    finally:
        gateway.close()


async def test_an_unstaffed_console_opens_one_alarm_and_it_closes_when_an_operator_connects(
    mosquitto: Mosquitto, tmp_path: Path, twilio: TwilioStandIn
) -> None:
    config = duty_config(mosquitto.url, tmp_path, twilio)
    # Only the night house is watched (the harness turns the watch off): one alarm to look for.
    config["sites"][0]["duty"] = {"console_unstaffed_after_min": 5}
    clock = FakeClock(datetime.now(UTC))
    async with live_gateway(config, clock) as live:
        duty = live.gateway.duty
        clock.advance(4 * 60 + 59)  # the gateway's first minutes: no console yet, and no alarm
        await duty.watch_consoles()
        assert await live.incidents() == []

        clock.advance(1)
        await duty.watch_consoles()
        [gap] = await live.wait_for(lambda rows: len(rows) == 1, "the unstaffed-console alarm")
        assert (gap["rule"], gap["site"], gap["status"]) == ("console_unstaffed", "night", "open")
        await until(lambda: sent_to(twilio, SUPERVISOR), "the supervisor's SMS")
        assert "console" in (sent_to(twilio, SUPERVISOR)[0].get("Body") or "")
        clock.advance(600)
        await duty.watch_consoles()
        assert [(i["id"], i["trigger_count"]) for i in await live.incidents()] == [(gap["id"], 1)]

        cookie = "; ".join(f"{k}={v}" for k, v in live.http.cookies.items())
        async with websockets.connect(f"{live.ws_url}?view=tests", additional_headers={"Cookie": cookie}):
            await until(lambda: len(live.gateway.hub) == 1, "the tester's page connected")
            await duty.watch_consoles()  # a tester's phone page is not a console
            assert (await live.incidents())[0]["status"] == "open"
        async with live.websocket():
            await duty.watch_consoles()
            [closed] = await live.incidents()
        assert (closed["status"], closed["resolved_by"], closed["outcome"]) == (
            "resolved",
            "system:duty",
            "other",
        )
        resolved = [e for e in live.gateway.store.audit_trail(gap["id"]) if e.action == "incident.resolved"]
        assert resolved[0].details == {
            "outcome": "other",
            "note": "console staffed again: user:operator",
            "console_staffed_by": "user:operator",
        }
