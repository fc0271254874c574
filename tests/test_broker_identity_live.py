"""Broker identity in a running gateway, on a real Mosquitto with the dynamic-security plugin behind TLS:
logins follow the directory, credentials are shown once, and an SOS from a provisioned device becomes an
incident over the secured broker."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from broker_identity_fixtures import NOT_AUTHORIZED, V5Client, admin_client, certs
from harness import PASSWORD, LiveGateway, live_gateway, new_config
from services import MosquittoDynsec
from stores import store_bytes, store_execute, store_rows

from dashboard.auth import Role
from dashboard.security import CSRF_HEADER
from devices.model import EventKind
from gateway.broker_identity.certs import CertFiles
from simulators.payloads import careline_event

__all__ = ["certs"]

GATEWAY_ENV = "CARELINE_TEST_MQTT_PASSWORD"
ADMIN_ENV = "CARELINE_TEST_DYNSEC_ADMIN"


@pytest.fixture
def tls_broker(certs: CertFiles) -> Any:
    with MosquittoDynsec(certs=certs) as broker:
        yield broker


def secured_config(
    broker: MosquittoDynsec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    admin_password: str | None = None,
) -> dict[str, Any]:
    monkeypatch.setenv(GATEWAY_ENV, broker.gateway.password)
    monkeypatch.setenv(ADMIN_ENV, admin_password or broker.admin.password)
    assert broker.certs is not None
    return new_config(
        broker.url,
        tmp_path,
        username=broker.gateway.username,
        password_env=GATEWAY_ENV,
        tls={"ca_file": str(broker.certs.ca_cert)},
        identity={
            "enabled": True,
            "admin_username": broker.admin.username,
            "admin_password_env": ADMIN_ENV,
            "reconcile_s": 1,
        },
    )


@asynccontextmanager
async def signed_in(
    live: LiveGateway, username: str, role: Role, sites: tuple[str, ...] = ()
) -> AsyncIterator[httpx.AsyncClient]:
    live.gateway.users.create(username, PASSWORD, role, language="en")
    if sites:
        store_execute(
            live.gateway.config.storage.url,
            "UPDATE users SET sites = :sites WHERE username = :username",
            sites=json.dumps(list(sites)),
            username=username,
        )
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        response = await client.post("/api/login", json={"username": username, "password": PASSWORD})
        response.raise_for_status()
        client.headers[CSRF_HEADER] = response.json()["csrf_token"]
        yield client


async def issued(http: httpx.AsyncClient, path: str) -> dict[str, Any]:
    response = await http.post(path)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


async def until(predicate: Any, what: str, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def sample(live: LiveGateway, name: str) -> float:
    return live.gateway.metrics.registry.get_sample_value(name) or 0.0


def device_client(broker: MosquittoDynsec, credentials: dict[str, Any]) -> V5Client:
    assert broker.certs is not None
    return V5Client(broker, credentials["username"], credentials["password"], ca_file=broker.certs.ca_cert)


async def test_an_sos_from_a_provisioned_device_becomes_an_incident_over_the_tls_broker(
    tls_broker: MosquittoDynsec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with live_gateway(secured_config(tls_broker, tmp_path, monkeypatch)) as live:
        async with signed_in(live, "installer", Role.MANAGER) as manager:
            login = await issued(manager, "/api/broker-identity/devices/night-pendant-wang/credentials")
        assert (login["host"], login["port"], login["tls"]) == ("127.0.0.1", tls_broker.port, True)
        assert login["qr_svg"].startswith("data:image/svg+xml")
        pendant = device_client(tls_broker, login)
        try:
            assert pendant.connected.is_set()
            # Its own topic is accepted; another device's is refused by the broker.
            assert (
                pendant.publish("careline/night/night-fall-101/alarm", careline_event(EventKind.FALL))
                == NOT_AUTHORIZED
            )
            assert (
                pendant.publish("careline/night/night-pendant-wang/alarm", careline_event(EventKind.SOS)) == 0
            )
            incidents = await live.wait_for(lambda found: len(found) == 1, "the SOS incident")
        finally:
            pendant.close()
        assert incidents[0]["device_id"] == "night-pendant-wang"
        assert incidents[0]["rule"] == "sos"


async def test_a_client_that_does_not_trust_the_ca_is_refused(tls_broker: MosquittoDynsec) -> None:
    # It trusts the system's CAs only (a device shipped without the lab CA): the handshake fails before
    # any MQTT is spoken; with the lab CA the same handshake succeeds.
    assert tls_broker.certs is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tls_broker, ssl.create_default_context())
    handshake(tls_broker, ssl.create_default_context(cafile=str(tls_broker.certs.ca_cert)))


def handshake(broker: MosquittoDynsec, context: ssl.SSLContext) -> None:
    with (
        socket.create_connection((broker.host, broker.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=broker.host),
    ):
        pass


async def test_a_device_added_through_the_directory_gets_a_login_and_retiring_it_ends_it_at_once(
    tls_broker: MosquittoDynsec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        live_gateway(secured_config(tls_broker, tmp_path, monkeypatch)) as live,
        signed_in(live, "admin", Role.ADMIN) as admin,
    ):
        added = await admin.post(
            "/api/directory/devices", json={"id": "pendant-new", "type": "sos_button", "site": "day"}
        )
        assert added.status_code == 200, added.text
        login = await issued(admin, "/api/broker-identity/devices/pendant-new/credentials")
        device = device_client(tls_broker, login)
        try:
            assert device.connected.is_set()
            assert device.publish("careline/day/pendant-new/telemetry", b"{}") in (0, 16)
            retired = await admin.post("/api/directory/devices/pendant-new/retire")
            assert retired.status_code == 200, retired.text
            await until(device.disconnected.is_set, "the retired device to be disconnected", 5)
        finally:
            device.close()
        again = device_client(tls_broker, login)
        again.close()
        assert again.refused
        refused = await admin.post("/api/broker-identity/devices/pendant-new/credentials")
        assert refused.status_code == 409
        assert "not active" in refused.json()["detail"]


async def test_credentials_are_shown_once_kept_nowhere_rotated_and_refused_to_operators(
    tls_broker: MosquittoDynsec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = secured_config(tls_broker, tmp_path, monkeypatch)
    for device in config["devices"]:
        if device.get("profile") == "zigbee2mqtt":
            device["hub"] = f"hub-{device['site']}"
    async with live_gateway(config) as live:
        path = "/api/broker-identity/devices/night-pendant-wang/credentials"
        assert (await live.http.post(path)).status_code == 403  # the harness signs in an operator
        assert (await live.http.post("/api/broker-identity/hubs/hub-night/credentials")).status_code == 403
        assert (await live.http.get("/api/broker-identity/hubs")).status_code == 403
        async with signed_in(live, "installer", Role.MANAGER) as manager:
            listed = (await manager.get("/api/broker-identity/hubs")).json()
            assert [(h["id"], h["devices"]) for h in listed] == [
                ("hub-day", ["day-pendant-li"]),
                ("hub-night", ["night-pendant-li"]),
            ]
            first = await issued(manager, path)
            holder = device_client(tls_broker, first)
            second = await issued(manager, path)
            hub = await issued(manager, "/api/broker-identity/hubs/hub-night/credentials")
            zigbee = await manager.post("/api/broker-identity/devices/night-pendant-li/credentials")
            missing = await manager.post("/api/broker-identity/hubs/hub-nowhere/credentials")
        async with signed_in(live, "night-manager", Role.MANAGER, sites=("night",)) as night_manager:
            listed = (await night_manager.get("/api/broker-identity/hubs")).json()
            assert [h["id"] for h in listed] == ["hub-night"]
            for foreign in ("devices/day-pendant-wang", "hubs/hub-day"):
                answer = await night_manager.post(f"/api/broker-identity/{foreign}/credentials")
                assert answer.status_code == 404, foreign
        assert (zigbee.status_code, missing.status_code) == (409, 404)
        assert "hub" in zigbee.json()["detail"]
        assert first["password"] != second["password"]
        await until(holder.disconnected.is_set, "the session with the old password to end", 5)
        holder.close()
        old = device_client(tls_broker, first)
        old.close()
        assert old.refused
        new = device_client(tls_broker, second)
        hub_client = device_client(tls_broker, hub)
        try:
            assert new.connected.is_set()
            assert hub_client.publish("zigbee2mqtt/night/102/pendant", b'{"action":"sos"}') in (0, 16)
            assert hub_client.publish("zigbee2mqtt/day/102/pendant", b'{"action":"sos"}') == NOT_AUTHORIZED
            # The hub's own pendant raises its SOS; the other home's, forged, never arrived.
            await live.wait_for(lambda found: len(found) >= 1, "the hub's SOS")
            await asyncio.sleep(0.5)
            assert [i["device_id"] for i in await live.incidents()] == ["night-pendant-li"]
        finally:
            new.close()
            hub_client.close()
    # The database (its files, or on PostgreSQL a dump of it), its WAL and the broker's own file hold
    # none of the passwords.
    stored = await asyncio.to_thread(store_bytes, live.gateway.config.storage.url, tmp_path / "careline.db")
    for secret in (first["password"], second["password"], hub["password"]):
        assert secret.encode() not in stored
        assert secret.encode() not in tls_broker.dynsec_path.read_bytes()
    rows = store_rows(
        live.gateway.config.storage.url,
        # As text on either backend (psycopg would decode PostgreSQL's json itself).
        "SELECT actor, CAST(details AS TEXT) FROM audit_log"
        " WHERE action = 'broker.credentials_issued' ORDER BY id",
    )
    assert [(actor, json.loads(details)["username"]) for actor, details in rows] == [
        ("user:installer", "careline.device.night-pendant-wang"),
        ("user:installer", "careline.device.night-pendant-wang"),
        ("user:installer", "careline.hub.hub-night"),
    ]


async def test_an_unreachable_provisioning_never_holds_up_the_directory_nor_alarms(
    tls_broker: MosquittoDynsec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = secured_config(tls_broker, tmp_path, monkeypatch, admin_password="not-the-admin-password")
    async with live_gateway(config) as live:
        identity = live.gateway.broker_identity
        assert identity is not None
        async with signed_in(live, "admin", Role.ADMIN) as admin:
            started = time.monotonic()
            added = await admin.post(
                "/api/directory/devices", json={"id": "pendant-new", "type": "sos_button", "site": "day"}
            )
            took = time.monotonic() - started
            assert added.status_code == 200, added.text
            assert took < 2.0, took
            refused = await admin.post("/api/broker-identity/devices/pendant-new/credentials")
            assert refused.status_code == 503
        await until(
            lambda: sample(live, "careline_broker_identity_failures_total") >= 1,
            "the failure to be counted",
            10,
        )
        metrics = (await live.http.get("/metrics")).text
        assert "careline_broker_identity_failures_total" in metrics
        assert "careline_broker_identity_in_step 0.0" in metrics


async def test_a_change_made_while_the_broker_is_down_reaches_it_when_it_is_back(
    tls_broker: MosquittoDynsec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with live_gateway(secured_config(tls_broker, tmp_path, monkeypatch)) as live:
        identity = live.gateway.broker_identity
        assert identity is not None
        async with signed_in(live, "admin", Role.ADMIN) as admin:
            await until(lambda: sample(live, "careline_broker_identity_in_step") == 1, "the first reconcile")
            tls_broker.stop()
            started = time.monotonic()
            added = await admin.post(
                "/api/directory/devices", json={"id": "pendant-new", "type": "sos_button", "site": "day"}
            )
            assert added.status_code == 200, added.text
            assert time.monotonic() - started < 2.0
            await until(
                lambda: sample(live, "careline_broker_identity_failures_total") >= 1,
                "the failure to be counted",
            )
            await asyncio.to_thread(tls_broker.start)
            await until(
                lambda: sample(live, "careline_broker_identity_in_step") == 1,
                "a reconcile after the broker is back",
            )
        clients = await admin_client(tls_broker).one(
            {"command": "listClients", "verbose": False, "count": -1, "offset": 0}
        )
        assert "careline.device.pendant-new" in clients["clients"]
