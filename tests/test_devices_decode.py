"""The decode entry point: topic routing and its only-DecodeError contract."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest

import devices
from devices.decode import MAX_PAYLOAD_BYTES, PROFILES, decode
from devices.model import (
    DEAD_LETTER_PREFIX_BYTES,
    Binding,
    DecodeError,
    DeviceEvent,
    DeviceType,
    EventKind,
    Lane,
    RawMessage,
)
from devices.registry import DeviceRegistry

RECEIVED = datetime(2025, 3, 14, 8, 30, tzinfo=UTC)
PENDANT = Binding("pendant-7", DeviceType.SOS_BUTTON, "sunrise", "204", "wang")
DOOR = Binding("door-9", DeviceType.DOOR_SENSOR, "sunrise", "204", "wang", "zigbee2mqtt", "wing-b/204/door")
REGISTRY = DeviceRegistry([PENDANT, DOOR])
CARELINE_SOS = {"v": 1, "event_id": "evt-00000042", "ts": 1741940999000, "kind": "sos"}


def message(topic: str, payload: bytes | dict[str, object]) -> RawMessage:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return RawMessage(topic=topic, payload=raw, received_at=RECEIVED, lane=Lane.ALARM)


class BrokenRegistry(DeviceRegistry):
    """Stands in for a decoder bug: the lookup itself blows up."""

    def by_id(self, device_id: str) -> Binding | None:
        raise RuntimeError("registry exploded")

    def by_friendly_name(self, name: str) -> Binding | None:
        raise KeyError(name)


def test_the_profiles_are_named_as_in_the_device_configuration() -> None:
    assert PROFILES == ("careline", "zigbee2mqtt")


def test_careline_topics_go_to_the_careline_profile() -> None:
    [event] = decode(message("careline/sunrise/pendant-7/alarm", CARELINE_SOS), REGISTRY)

    assert (event.kind, event.message_key) == (EventKind.SOS, "careline:pendant-7:evt-00000042")


def test_zigbee2mqtt_topics_go_to_the_zigbee2mqtt_profile() -> None:
    events = decode(message("zigbee2mqtt/wing-b/204/door", {"contact": False}), REGISTRY)

    assert [(event.device_id, event.kind) for event in events] == [("door-9", EventKind.DOOR_OPEN)]


def test_zigbee2mqtt_bridge_chatter_decodes_to_nothing() -> None:
    assert decode(message("zigbee2mqtt/bridge/state", b"online"), REGISTRY) == []


@pytest.mark.parametrize(
    "topic", ["homie/door/state", "careline", "zigbee2mqtt", "Careline/sunrise/x/alarm", ""]
)
def test_a_topic_no_profile_owns_is_a_decode_error(topic: str) -> None:
    with pytest.raises(DecodeError, match="no device profile for topic"):
        decode(message(topic, CARELINE_SOS), REGISTRY)


@pytest.mark.parametrize(
    ("topic", "exception"),
    [
        ("careline/sunrise/pendant-7/alarm", "RuntimeError: registry exploded"),
        ("zigbee2mqtt/any", "KeyError"),
    ],
)
def test_an_unexpected_failure_inside_a_decoder_becomes_a_decode_error(topic: str, exception: str) -> None:
    with pytest.raises(DecodeError, match=f"^decoder failed: {exception}") as caught:
        decode(message(topic, CARELINE_SOS), BrokenRegistry([]))

    assert caught.value.__cause__ is not None


def test_the_package_exports_a_curated_surface() -> None:
    assert sorted(devices.__all__) == sorted(
        [
            "decode",
            "DecodeError",
            "DeviceEvent",
            "DeviceRegistry",
            "Binding",
            "RawMessage",
            "EventKind",
            "DeviceType",
            "Lane",
        ]
    )
    assert devices.decode is decode


_TOPICS = [
    "careline/sunrise/pendant-7/alarm",
    "careline/sunrise/pendant-7/telemetry",
    "careline/harbour/pendant-7/alarm",
    "careline/sunrise/door-9/status",
    "zigbee2mqtt/wing-b/204/door",
    "zigbee2mqtt/wing-b/204/door/availability",
    "zigbee2mqtt/wing-b/204/door/set",
    "zigbee2mqtt/bridge/devices",
    "zigbee2mqtt/unknown",
    "somewhere/else",
]


def _random_document(rng: random.Random) -> object:
    keys = ["v", "event_id", "ts", "kind", "value", "contact", "action", "battery", "state", "last_seen"]
    values: list[object] = [None, True, 1, 1741940999000, -3.5, "sos", "online", "evt-00000042", [], {}]
    return {rng.choice(keys): rng.choice(values) for _ in range(rng.randrange(6))}


def test_any_topic_and_any_bytes_produce_events_or_a_decode_error() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        if rng.random() < 0.5:
            payload = rng.randbytes(rng.randrange(48))
        else:
            payload = json.dumps(_random_document(rng)).encode()
        try:
            events = decode(message(rng.choice(_TOPICS), payload), REGISTRY)
        except DecodeError:
            continue
        assert all(isinstance(event, DeviceEvent) for event in events)


@pytest.mark.parametrize(
    ("topic", "device_id"),
    [("careline/sunrise/pendant-7/alarm", "pendant-7"), ("zigbee2mqtt/wing-b/204/door", "door-9")],
)
def test_a_payload_ingest_kept_only_a_prefix_of_is_refused_with_its_real_size(
    topic: str, device_id: str
) -> None:
    whole = message(topic, b"{" + b" " * 100_000 + b"}")
    kept = whole.prefix(DEAD_LETTER_PREFIX_BYTES)
    assert (len(kept.payload), kept.size) == (DEAD_LETTER_PREFIX_BYTES, 100_002)
    with pytest.raises(DecodeError, match="payload of 100002 bytes exceeds 65536") as refused:
        decode(kept, REGISTRY)
    assert refused.value.device_id == device_id
    assert MAX_PAYLOAD_BYTES == 65536
