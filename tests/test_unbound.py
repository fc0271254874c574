"""The unbound-device table: counted per device, bounded under a flood, merged across the process boundary."""

from __future__ import annotations

import pickle
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from devices import decode
from devices.model import Binding, DeviceType, Lane, RawMessage, UnboundDeviceError
from devices.registry import DeviceRegistry
from gateway.unbound import Drained, UnboundDevices

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
REGISTRY = DeviceRegistry(
    [
        Binding("pendant-1", DeviceType.SOS_BUTTON, "home"),
        Binding(
            "z-pendant", DeviceType.SOS_BUTTON, "home", profile="zigbee2mqtt", friendly_name="hall/pendant"
        ),
    ]
)


def message(
    topic: str, payload: bytes = b'{"v":1}', *, at: datetime = T0, lane: Lane = Lane.ALARM
) -> RawMessage:
    return RawMessage(topic=topic, payload=payload, received_at=at, lane=lane, qos=1)


def unbound_of(raw: RawMessage, registry: DeviceRegistry = REGISTRY) -> UnboundDeviceError:
    with pytest.raises(UnboundDeviceError) as caught:
        decode(raw, registry)
    return caught.value


def heard(
    table: UnboundDevices,
    topic: str,
    *,
    at: datetime = T0,
    lane: Lane = Lane.ALARM,
    registry: DeviceRegistry = REGISTRY,
) -> None:
    raw = message(topic, at=at, lane=lane)
    table.record(raw, unbound_of(raw, registry))


def test_the_decoders_name_what_the_topic_says_for_a_device_not_bound() -> None:
    native = unbound_of(message("careline/home/ghost-1/alarm"))
    assert (native.profile, native.identifier, native.site, native.device_id) == (
        "careline",
        "ghost-1",
        "home",
        "ghost-1",
    )
    assert native.reason == "unknown device 'ghost-1'"
    zigbee = unbound_of(message("zigbee2mqtt/kitchen/radar/availability", b"online"))
    assert (zigbee.profile, zigbee.identifier, zigbee.site, zigbee.device_id) == (
        "zigbee2mqtt",
        "kitchen/radar",
        None,
        None,
    )


def test_each_device_is_counted_with_its_last_topic_and_payload_prefix() -> None:
    counted: list[tuple[str, str, int]] = []
    table = UnboundDevices(counted=lambda lane, profile, n: counted.append((lane, profile, n)))
    heard(table, "careline/home/ghost-1/alarm", at=T0)
    heard(table, "careline/home/ghost-1/telemetry", at=T0 + timedelta(seconds=5), lane=Lane.TELEMETRY)
    heard(table, "zigbee2mqtt/new-button", at=T0 + timedelta(seconds=1))
    first, second = table.listing()
    assert (first.identifier, first.count, first.topic, first.lane) == (
        "ghost-1",
        2,
        "careline/home/ghost-1/telemetry",
        "telemetry",
    )
    assert (first.first_seen, first.last_seen) == (T0, T0 + timedelta(seconds=5))
    assert first.payload_prefix == '{"v":1}'
    assert (second.identifier, second.profile, second.count) == ("new-button", "zigbee2mqtt", 1)
    assert counted == [("alarm", "careline", 1), ("telemetry", "careline", 1), ("alarm", "zigbee2mqtt", 1)]


def test_what_a_device_sends_is_kept_only_in_part() -> None:
    table = UnboundDevices()
    long_id = "x" * 400  # the topic stays within devices.decode.MAX_TOPIC_CHARS (512)
    raw = message(f"careline/home/{long_id}/alarm", b"\xff" + b"A" * 10_000)
    table.record(raw, unbound_of(raw))
    (sighting,) = table.listing()
    assert len(sighting.identifier) == 128
    assert len(sighting.topic) == 256
    assert sighting.payload_prefix.startswith("\ufffd")
    assert len(sighting.payload_prefix) <= 96


def test_a_flood_of_random_ids_stays_bounded_and_keeps_a_pendant_heard_more_than_once() -> None:
    table = UnboundDevices(capacity=200)
    heard(table, "careline/home/new-pendant/alarm")
    heard(table, "careline/home/new-pendant/alarm")
    for n in range(20_000):
        heard(table, f"careline/home/{uuid.uuid4().hex}/telemetry", at=T0 + timedelta(milliseconds=n))
    assert len(table) <= 200
    assert table.forgotten == 20_000 - 100
    assert any(s.identifier == "new-pendant" and s.count == 2 for s in table.listing())


def test_devices_bound_since_are_dropped_from_the_list() -> None:
    table = UnboundDevices()
    heard(table, "careline/home/ghost-1/alarm")
    heard(table, "zigbee2mqtt/new-button")
    heard(table, "zigbee2mqtt/other")
    fitted = DeviceRegistry(
        [
            Binding("ghost-1", DeviceType.SOS_BUTTON, "home"),
            Binding("nb", DeviceType.SOS_BUTTON, "home", profile="zigbee2mqtt", friendly_name="new-button"),
        ]
    )
    assert table.forget_bound(fitted) == 2
    assert [s.identifier for s in table.listing()] == ["other"]


def test_what_the_telemetry_child_drains_merges_into_the_gateways_table_across_a_pickle() -> None:
    counted: list[tuple[str, str, int]] = []
    child = UnboundDevices(capacity=4)
    gateway = UnboundDevices(counted=lambda lane, profile, n: counted.append((lane, profile, n)))
    for n in range(6):
        heard(child, f"zigbee2mqtt/device-{n}", lane=Lane.TELEMETRY)
    heard(child, "zigbee2mqtt/device-5", lane=Lane.TELEMETRY)
    heard(gateway, "zigbee2mqtt/device-5", lane=Lane.TELEMETRY)
    drained = child.drain()
    assert len(child) == 0
    assert not child.drain()
    wire = pickle.loads(pickle.dumps(drained.to_wire()))
    gateway.merge(Drained.from_wire(wire), REGISTRY)
    # Every message is counted, though the child's small table forgot four of its six devices.
    assert counted == [("telemetry", "zigbee2mqtt", 1), ("telemetry", "zigbee2mqtt", 7)]
    assert gateway.forgotten == 4
    assert {s.identifier: s.count for s in gateway.listing()} == {"device-5": 3, "device-4": 1}


def test_sightings_of_devices_bound_by_the_time_they_arrive_are_counted_but_not_listed() -> None:
    child, gateway = UnboundDevices(), UnboundDevices()
    # Decoded by the child before it took the directory that binds the hall pendant.
    heard(child, "zigbee2mqtt/hall/pendant", lane=Lane.TELEMETRY, registry=DeviceRegistry([]))
    heard(child, "zigbee2mqtt/elsewhere", lane=Lane.TELEMETRY)
    gateway.merge(child.drain(), REGISTRY)
    assert [s.identifier for s in gateway.listing()] == ["elsewhere"]
