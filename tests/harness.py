"""A real gateway for end-to-end tests: real broker, real SQLite, real HTTP server, real WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import websockets
from paho.mqtt.enums import CallbackAPIVersion
from services import free_port
from stores import store_url

from careline.bootstrap import Gateway, bootstrap
from dashboard.auth import Role, UserExistsError
from dashboard.security import CSRF_HEADER
from devices.model import EventKind
from gateway.clock import Clock, zone_where_local_hour_is
from gateway.config import CarelineConfig
from simulators.payloads import careline_event

PASSWORD = "correct-horse-battery"


def site_config(broker_url: str, db_path: Path, http_port: int, **broker: Any) -> dict[str, Any]:
    """Two sites: one where it is night now and one where it is day, same devices in each."""
    sites, residents, devices = [], [], []
    for site, hour in (("night", 2), ("day", 14)):
        sites.append(
            {
                "id": site,
                "name": f"{site.title()} House",
                "timezone": zone_where_local_hour_is(hour),
                "rooms": [{"id": "101"}, {"id": "102"}],
                "rules": {"fall_cancel_window_s": 60, "door_left_open_minutes": 10},
                # No unstaffed-console alarm (docs/duty.md) in tests that move a fake clock on by hours
                # with no console open; tests/test_duty.py turns it on where it is tested.
                "duty": {"console_unstaffed_after_min": 0},
            }
        )
        residents += [
            {"id": f"{site}-wang", "name": "王秀英", "site": site, "room": "101", "wandering_risk": True},
            {"id": f"{site}-li", "name": "李建国", "site": site, "room": "102"},
        ]
        devices += [
            {
                "id": f"{site}-pendant-wang",
                "type": "sos_button",
                "site": site,
                "resident": f"{site}-wang",
                "room": "101",
            },
            {
                "id": f"{site}-pendant-li",
                "type": "sos_button",
                "profile": "zigbee2mqtt",
                "site": site,
                "resident": f"{site}-li",
                "room": "102",
                "friendly_name": f"{site}/102/pendant",
            },
            {
                "id": f"{site}-fall-101",
                "type": "fall_sensor",
                "site": site,
                "room": "101",
                "resident": f"{site}-wang",
            },
            {"id": f"{site}-door-101", "type": "door_sensor", "site": site, "room": "101"},
            {"id": f"{site}-door-102", "type": "door_sensor", "site": site, "room": "102"},
        ]
    return {
        "broker": {
            "url": broker_url,
            "client_id": f"gw-{uuid.uuid4().hex[:8]}",
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1,
            **broker,
        },
        "storage": {"url": store_url(db_path)},
        "http": {"host": "127.0.0.1", "port": http_port},
        "sites": sites,
        "residents": residents,
        "devices": devices,
    }


class Publisher:
    """A device-side paho client publishing QoS 1, queueing while the broker is away."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex[:8]}", clean_session=False
        )
        self.client.reconnect_delay_set(1, 1)
        self._connected = threading.Event()
        self.client.on_connect = lambda c, *_: (self._nodelay(c), self._connected.set())
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise RuntimeError("publisher could not connect")

    @staticmethod
    def _nodelay(client: mqtt.Client) -> None:
        sock = client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, topic: str, payload: bytes, qos: int = 1) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=qos)

    def sos(self, site: str, device: str, event_id: str | None = None) -> str:
        event_id = event_id or uuid.uuid4().hex
        self.send(f"careline/{site}/{device}/alarm", careline_event(EventKind.SOS, event_id=event_id))
        return event_id

    def event(self, site: str, device: str, kind: EventKind, value: Any = None) -> None:
        self.send(f"careline/{site}/{device}/alarm", careline_event(kind, value))

    def zigbee(self, friendly_name: str, **state: Any) -> None:
        self.send(f"zigbee2mqtt/{friendly_name}", json.dumps(state).encode())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class LiveGateway:
    def __init__(self, gateway: Gateway, http: httpx.AsyncClient, ws_url: str) -> None:
        self.gateway = gateway
        self.http = http
        self.ws_url = ws_url

    @property
    def base_url(self) -> str:
        return str(self.http.base_url)

    async def incidents(self, status: str = "all") -> list[dict[str, Any]]:
        response = await self.http.get("/api/incidents", params={"status": status})
        response.raise_for_status()
        incidents: list[dict[str, Any]] = response.json()["incidents"]
        return incidents

    async def wait_for(self, predicate: Any, what: str, limit_s: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            incidents = await self.incidents()
            if predicate(incidents):
                return incidents
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; incidents: {await self.incidents()}")

    async def poll(self, path: str, done: Any, limit_s: float = 10.0) -> Any:
        """GET `path` until `done(json)` holds or time runs out; the last answer either way."""
        deadline = time.monotonic() + limit_s
        while True:
            answer = (await self.http.get(path)).json()
            if done(answer) or time.monotonic() > deadline:
                return answer
            await asyncio.sleep(0.05)

    @asynccontextmanager
    async def websocket(self) -> AsyncIterator[websockets.ClientConnection]:
        cookie = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        async with websockets.connect(self.ws_url, additional_headers={"Cookie": cookie}) as ws:
            hello = json.loads(await ws.recv())
            assert hello == {"type": "hello"}
            yield ws


async def next_incident_frame(ws: websockets.ClientConnection, limit_s: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(limit_s):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "incident":
                incident: dict[str, Any] = frame["incident"]
                return incident


@asynccontextmanager
async def live_gateway(config: dict[str, Any], clock: Clock | None = None) -> AsyncIterator[LiveGateway]:
    """`clock` is the gateway's (the store's, the sessions', the pages' "now"); its telemetry process
    keeps the system clock."""
    gateway = bootstrap(CarelineConfig.model_validate(config), clock=clock)
    gateway.open_store()
    # A gateway started again on the same store (a restart) finds its operator there.
    with contextlib.suppress(UserExistsError):
        gateway.users.create("operator", PASSWORD, Role.OPERATOR)
    stop = asyncio.Event()
    serving = asyncio.create_task(gateway.serve(stop))
    port = gateway.config.http.port
    try:
        await asyncio.sleep(0.1)
        await gateway.wait_connected()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            await _until_http_up(http)
            response = await http.post("/api/login", json={"username": "operator", "password": PASSWORD})
            response.raise_for_status()
            # What the operator page does: every change carries the session's CSRF token.
            http.headers[CSRF_HEADER] = response.json()["csrf_token"]
            yield LiveGateway(gateway, http, f"ws://127.0.0.1:{port}/api/ws")
    finally:
        stop.set()
        await serving


async def _until_http_up(http: httpx.AsyncClient) -> None:
    for _ in range(100):
        try:
            await http.get("/api/healthz")
            return
        except httpx.TransportError:
            await asyncio.sleep(0.05)
    raise RuntimeError("dashboard did not come up")


def new_config(mosquitto_url: str, tmp_path: Path, **broker: Any) -> dict[str, Any]:
    return site_config(mosquitto_url, tmp_path / "careline.db", free_port(), **broker)
