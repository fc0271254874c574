"""Two gateway processes on one real PostgreSQL and one real Mosquitto; one is killed mid-run.

Shown here (issue 13): 1,000 pendants press SOS at 200 a second while instance A is SIGKILLed half-way.
Every alarm becomes exactly one incident; every escalation step that came due is sent once (Twilio's
REST API is a local stand-in, simulators/twilio_standin.py, which reports each message's status as
Twilio does); and the operator whose screen is on the surviving instance B saw every incident, those A
committed included.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import websockets
from cluster_fixtures import (
    BOSS,
    CARER,
    PASSWORD,
    Instance,
    add_operator,
    cluster_database,
    escalation,
    instance_config,
    pendants_directory,
    running,
)
from harness import Publisher, live_gateway, new_config
from services import Mosquitto
from stores import SQLITE, store_rows

from devices.model import EventKind
from simulators.twilio_standin import TwilioStandIn

# Several instances need PostgreSQL whichever backend the rest of the suite runs on; these heavy tests
# run once, in the PostgreSQL run of `make test`.
pytestmark = pytest.mark.skipif(SQLITE, reason="several instances: run in the suite's PostgreSQL run")

PENDANTS = 1_000
RATE_PER_S = 200


@pytest.fixture
def twilio(monkeypatch: pytest.MonkeyPatch) -> Iterator[TwilioStandIn]:
    with TwilioStandIn(report_status="sent") as stand_in:
        monkeypatch.setenv("TEST_TWILIO_SID", stand_in.account_sid)
        monkeypatch.setenv("TEST_TWILIO_TOKEN", stand_in.auth_token)
        yield stand_in


class Screen:
    """An operator's console on one instance: every incident frame it was pushed."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.incidents: dict[int, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        async with httpx.AsyncClient(base_url=self.instance.url) as http:
            response = await http.post("/api/login", json={"username": "operator", "password": PASSWORD})
            response.raise_for_status()
            cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
        ws = await websockets.connect(
            f"ws://127.0.0.1:{self.instance.port}/api/ws",
            additional_headers={"Cookie": cookie},
            max_queue=None,
        )
        assert json.loads(await ws.recv()) == {"type": "hello"}
        self._task = asyncio.create_task(self._read(ws))

    async def _read(self, ws: websockets.ClientConnection) -> None:
        async with ws:
            async for text in ws:
                frame = json.loads(text)
                if frame["type"] == "incident":
                    self.incidents[frame["incident"]["id"]] = frame["incident"]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def until(predicate: Any, what: str, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def alarms_received(instance: Instance) -> float:
    text = httpx.get(f"{instance.url}/metrics").text
    [line] = [
        line
        for line in text.splitlines()
        if line.startswith('careline_messages_received_total{lane="alarm"}')
    ]
    return float(line.split()[-1])


def incidents(store: str) -> list[Any]:
    return store_rows(store, "SELECT id, device_id, trigger_count, status FROM incidents")


def notifications(store: str) -> list[Any]:
    return store_rows(store, "SELECT id, incident_id, tier, round, responder_id, status FROM notifications")


def _notification_of(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["n"][0])


def sms_per_notification(twilio: TwilioStandIn) -> Counter[int]:
    """Messages the stand-in accepted, by our notification id (`n` in their StatusCallback URL)."""
    return Counter(
        _notification_of(request.get("StatusCallback") or "")
        for request in twilio.requests
        if request.resource == "Messages"
    )


@pytest.mark.slow
async def test_an_instance_killed_mid_run_loses_no_alarm_and_repeats_no_step(
    mosquitto: Mosquitto, tmp_path: Path, twilio: TwilioStandIn
) -> None:
    with cluster_database() as store:
        add_operator(store)
        directory = pendants_directory(PENDANTS)
        a_config = instance_config("gw-a", mosquitto.url, store, directory)
        b_config = instance_config("gw-b", mosquitto.url, store, directory)
        steps = escalation(
            twilio.base_url, f"http://127.0.0.1:{b_config['http']['port']}", tier1_wait_s=5, in_doubt_wait_s=3
        )
        a = Instance({**a_config, **steps}, tmp_path)
        b = Instance({**b_config, **steps}, tmp_path)
        with running(a, b):
            screen = Screen(b)
            await screen.open()
            device = Publisher(mosquitto.port)
            try:
                for n in range(PENDANTS):
                    device.sos(f"home{n // 100:02d}", f"pendant{n:04d}")
                    if n == PENDANTS // 2:
                        a.kill()  # mid-run, with alarms in flight to it and its escalations under way
                    await asyncio.sleep(1 / RATE_PER_S)
                began = time.monotonic()
                await until(lambda: len(incidents(store)) >= PENDANTS, "every alarm's incident", 180)
                print(f"incidents: {time.monotonic() - began:.1f} s")
                # Each incident's two steps: the carer at once, the supervisor 5 s later.
                await until(lambda: len(notifications(store)) >= 2 * PENDANTS, "every due step", 240)
                print(f"steps: {time.monotonic() - began:.1f} s")
                await until(
                    lambda: all(row.status not in ("queued", "retrying") for row in notifications(store)),
                    "every notification sent",
                    240,
                )
                print(f"sent: {time.monotonic() - began:.1f} s")
                await asyncio.sleep(4)  # any second copy (an in-doubt resend) would arrive by now
                await until(lambda: len(screen.incidents) >= PENDANTS, "the survivor's screen", 30)
                b_received = alarms_received(b)
            finally:
                device.close()
                await screen.close()
            logs = b.logs()

        rows = incidents(store)
        # Exactly one incident per alarm: one per pendant, each from one press.
        assert Counter(row.device_id for row in rows) == Counter(f"pendant{n:04d}" for n in range(PENDANTS))
        assert {row.trigger_count for row in rows} == {1}
        # Every due step once: per incident one SMS to the carer (tier 1) and one to the supervisor
        # (tier 2), and the stand-in received each of those messages exactly once.
        planned = notifications(store)
        assert Counter((row.incident_id, row.tier) for row in planned) == Counter(
            (row.id, tier) for row in rows for tier in (1, 2)
        )
        assert {(row.tier, row.responder_id) for row in planned} == {(1, "carer"), (2, "boss")}
        sent = sms_per_notification(twilio)
        assert set(sent) == {row.id for row in planned}
        twice = [n for n, copies in sent.items() if copies != 1]
        callbacks = [
            (url, outcome) for url, outcome in twilio.reported if any(f"n={n}" in url for n in twice)
        ]
        assert twice == [], f"sent more than once: {twice}; their status callbacks: {callbacks}"
        assert Counter(r.get("To") for r in twilio.requests) == {CARER: PENDANTS, BOSS: PENDANTS}
        # The operator on B saw every incident, the ones A committed before it died included.
        assert set(screen.incidents) == {row.id for row in rows}
        # And the work was shared: A committed alarms before it died (B never received those), and B
        # adopted A's session after.
        assert b_received < PENDANTS, b_received
        assert "adopted instance gw-a" in logs, logs
        actions = Counter(
            row.action
            for row in store_rows(store, "SELECT action FROM audit_log WHERE action LIKE 'notification.%'")
        )
        print("survivor:", [line for line in logs.splitlines() if "adopt" in line], dict(actions), b_received)


async def test_one_instance_of_a_cluster_is_ready_and_keeps_door_reports(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    with cluster_database() as store:
        config = new_config(mosquitto.url, tmp_path)
        config["storage"]["url"] = store
        config["cluster"] = {"share_group": "careline", "heartbeat_s": 0.5, "peer_timeout_s": 3}
        async with live_gateway(config) as live:
            ready = await live.http.get("/api/readyz")
            assert (ready.status_code, ready.json()) == (200, {"status": "ready", "reasons": []})
            device = Publisher(mosquitto.port)
            try:
                device.event("day", "day-door-101", EventKind.DOOR_OPEN)
                await until(
                    lambda: store_rows(
                        store, "SELECT open FROM door_states WHERE device_id = 'day-door-101'"
                    ),
                    "the door report in the store",
                    10,
                )
            finally:
                device.close()
            [row] = store_rows(store, "SELECT instance, alarm_client_id, adopted_by FROM gateway_instances")
            name = config["broker"]["client_id"]
            assert tuple(row) == (name, f"{name}-alarm", None)
            # Without its broker an instance takes no alarm: the load balancer sends nobody to it.
            mosquitto.stop()
            await until(lambda: not live.gateway.alarm_mqtt.connected.is_set(), "the lane to notice", 10)
            not_ready = await live.http.get("/api/readyz")
            assert (not_ready.status_code, not_ready.json()) == (
                503,
                {"status": "not ready", "reasons": ["alarm lane not connected to the broker"]},
            )
            mosquitto.start()
            await until(lambda: live.gateway.alarm_mqtt.connected.is_set(), "the lane back", 15)
        # A clean stop: its peers need not wait for the timeout to adopt its session.
        [(heartbeat,)] = store_rows(store, "SELECT heartbeat_at FROM gateway_instances")
        assert heartbeat.year == 2000
