"""Per-device and per-hub identities on a real Mosquitto with the dynamic-security plugin: a login may
publish only its own topics, and a retired device's login stops working at once."""

from __future__ import annotations

import asyncio

from broker_identity_fixtures import ACCEPTED, NOT_AUTHORIZED, V5Client, admin_client, native, secured, zigbee
from services import MosquittoDynsec

from gateway.broker_identity import BrokerIdentity, Identity, desired_identities
from gateway.config import DeviceConfig

__all__ = ["secured"]


async def test_hub_b_cannot_publish_on_hub_a_topics_nor_read_everything(secured: MosquittoDynsec) -> None:
    identity = BrokerIdentity(admin_client(secured))
    devices = [zigbee("radar-a", "hub-a", site="home-a"), zigbee("radar-b", "hub-b", site="home-b")]
    await identity.reconcile(devices)
    hub_a = await identity.issue(identity_of(devices, "careline.hub.hub-a"))
    hub_b = await identity.issue(identity_of(devices, "careline.hub.hub-b"))
    watcher = V5Client(secured, secured.gateway.username, secured.gateway.password)
    a = V5Client(secured, hub_a.username, hub_a.password)
    b = V5Client(secured, hub_b.username, hub_b.password)
    try:
        assert watcher.subscribe("zigbee2mqtt/#") == 1
        assert b.publish("zigbee2mqtt/home-a/radar-a", b'{"action":"cancel"}') == NOT_AUTHORIZED
        assert b.publish("zigbee2mqtt/home-a/radar-a/availability", b"offline") == NOT_AUTHORIZED
        assert b.publish("careline/home-a/radar-a/alarm") == NOT_AUTHORIZED
        assert b.publish("zigbee2mqtt/bridge/devices", b"[]") == NOT_AUTHORIZED
        assert b.publish("zigbee2mqtt/home-b/radar-b", b'{"fall":true}') in ACCEPTED
        assert a.publish("zigbee2mqtt/home-a/radar-a", b'{"fall":true}') in ACCEPTED
        received = watcher.wait_received(2)
        await asyncio.sleep(0.3)  # anything forged would have arrived by now, in order behind these
        assert sorted(watcher.received) == sorted(
            [
                ("zigbee2mqtt/home-b/radar-b", b'{"fall":true}'),
                ("zigbee2mqtt/home-a/radar-a", b'{"fall":true}'),
            ]
        ), received
        assert b.subscribe("#") == NOT_AUTHORIZED
        assert b.subscribe("careline/#") == NOT_AUTHORIZED
        # Zigbee2MQTT subscribes to its base topic; it is granted, but only its own devices reach it.
        assert b.subscribe("zigbee2mqtt/#") == 1
        assert a.publish("zigbee2mqtt/home-a/radar-a/set", b"{}") in ACCEPTED
        assert b.publish("zigbee2mqtt/home-b/radar-b/set", b'{"mine":1}') in ACCEPTED
        assert [topic for topic, _ in b.wait_received(1)] == ["zigbee2mqtt/home-b/radar-b/set"]
        await asyncio.sleep(0.3)
        assert [topic for topic, _ in b.received] == ["zigbee2mqtt/home-b/radar-b/set"]
    finally:
        for client in (watcher, a, b):
            client.close()


async def test_a_native_device_publishes_only_under_its_own_topic(secured: MosquittoDynsec) -> None:
    identity = BrokerIdentity(admin_client(secured))
    devices = [native("pendant-1"), native("pendant-2")]
    await identity.reconcile(devices)
    one = await identity.issue(identity_of(devices, "careline.device.pendant-1"))
    device = V5Client(secured, one.username, one.password)
    try:
        assert device.publish("careline/home-a/pendant-1/alarm") in ACCEPTED
        assert device.publish("careline/home-a/pendant-1/telemetry") in ACCEPTED
        assert device.publish("careline/home-a/pendant-2/alarm") == NOT_AUTHORIZED
        assert device.publish("careline/home-b/pendant-1/alarm") == NOT_AUTHORIZED
        assert device.subscribe("careline/#") == NOT_AUTHORIZED
    finally:
        device.close()


async def test_retiring_a_device_disconnects_it_and_its_login_stops_working(secured: MosquittoDynsec) -> None:
    identity = BrokerIdentity(admin_client(secured))
    devices = [native("pendant-1")]
    await identity.reconcile(devices)
    credentials = await identity.issue(identity_of(devices, "careline.device.pendant-1"))
    device = V5Client(secured, credentials.username, credentials.password)
    assert device.connected.is_set()
    result = await identity.reconcile([native("pendant-1", state="retired")])
    assert result.deleted == ("careline.device.pendant-1",)
    assert device.disconnected.wait(2), "the retired device was still connected"
    again = V5Client(secured, credentials.username, credentials.password)
    try:
        assert again.refused
    finally:
        again.close()
        device.close()


async def test_issuing_again_rotates_the_password(secured: MosquittoDynsec) -> None:
    identity = BrokerIdentity(admin_client(secured))
    devices = [native("pendant-1")]
    first = await identity.issue(identity_of(devices, "careline.device.pendant-1"))
    connected = V5Client(secured, first.username, first.password)
    second = await identity.issue(identity_of(devices, "careline.device.pendant-1"))
    assert second.password != first.password
    assert connected.disconnected.wait(2), "a session with the old password stayed connected"
    old = V5Client(secured, first.username, first.password)
    new = V5Client(secured, second.username, second.password)
    try:
        assert old.refused
        assert new.connected.is_set()
    finally:
        for client in (connected, old, new):
            client.close()


async def test_a_hub_gaining_and_losing_devices_has_its_acls_follow(secured: MosquittoDynsec) -> None:
    identity = BrokerIdentity(admin_client(secured))
    first = [zigbee("radar-a", "hub-a")]
    await identity.reconcile(first)
    hub = await identity.issue(identity_of(first, "careline.hub.hub-a"))
    more = [*first, zigbee("door-a", "hub-a")]
    assert (await identity.reconcile(more)).changed == ("careline.hub.hub-a",)
    client = V5Client(secured, hub.username, hub.password)
    try:
        assert client.publish("zigbee2mqtt/home-a/door-a") in ACCEPTED
    finally:
        client.close()
    await identity.reconcile([zigbee("door-a", "hub-a")])
    client = V5Client(secured, hub.username, hub.password)
    try:
        assert client.publish("zigbee2mqtt/home-a/radar-a") == NOT_AUTHORIZED
        assert client.publish("zigbee2mqtt/home-a/door-a") in ACCEPTED
        # Its last device retired, the hub's login goes, and its session with it.
        gone = await identity.reconcile([zigbee("door-a", "hub-a", state="retired")])
        assert gone.deleted == ("careline.hub.hub-a",)
        assert client.disconnected.wait(2)
    finally:
        client.close()
    again = V5Client(secured, hub.username, hub.password)
    again.close()
    assert again.refused


async def test_reconcile_leaves_clients_it_does_not_manage_alone(secured: MosquittoDynsec) -> None:
    client = admin_client(secured)
    await client.run([{"command": "createClient", "username": "someone-else"}])
    await BrokerIdentity(client).reconcile([])
    names = (await client.one({"command": "listClients", "verbose": False, "count": -1, "offset": 0}))[
        "clients"
    ]
    assert set(names) == {"careline-admin", "careline-gateway", "someone-else"}


def identity_of(devices: list[DeviceConfig], username: str) -> Identity:
    return desired_identities(devices)[username]
