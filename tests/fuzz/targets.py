"""The decoder fuzz target's harness: the registry the decoders see, the topics an input can pick, and
the checks every decoded event must pass. Not instrumented: coverage counts the modules under test."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from devices.model import EARLIEST_EVENT_TIME, LATEST_EVENT_TIME, Binding, DeviceEvent, DeviceType
from devices.registry import DeviceRegistry

RECEIVED = datetime(2025, 3, 14, 8, 30, tzinfo=UTC)
NATIVE = [Binding(f"n-{t.value}", t, "sunrise", "204", "wang") for t in DeviceType]
ZIGBEE = [
    Binding(f"z-{t.value}", t, "sunrise", "101", "chen", "zigbee2mqtt", f"wing-a/{t.value}")
    for t in DeviceType
]
REGISTRY = DeviceRegistry([*NATIVE, *ZIGBEE])

#: The first byte of a decoder input picks one of these; the rest is the payload. Seed files in
#: corpus/decoders/ are named after their topic's index.
TOPICS: tuple[str, ...] = (
    *(f"careline/sunrise/{b.device_id}/alarm" for b in NATIVE),
    *(f"zigbee2mqtt/{b.friendly_name}" for b in ZIGBEE),
    *(f"zigbee2mqtt/{b.friendly_name}/availability" for b in ZIGBEE),
    "careline/sunrise/n-sos_button/telemetry",
    "careline/harbour/n-sos_button/alarm",
    "careline/sunrise/unknown-device/alarm",
    "zigbee2mqtt/bridge/devices",
    "zigbee2mqtt/wing-a/sos_button/set",
    "elsewhere/entirely",
)


def topic_of(selector: int) -> str:
    return TOPICS[selector % len(TOPICS)]


def check_event(event: DeviceEvent) -> None:
    """The decoder contract beyond "events or DecodeError": attribution from the binding, text every
    store can encode, finite numbers, a time every store keeps, bounded faults."""
    binding = REGISTRY.by_id(event.device_id)
    if binding is None:
        raise AssertionError(f"event of a device not bound: {event.device_id!r}")
    if (event.site, event.room, event.resident) != (binding.site, binding.room, binding.resident):
        raise AssertionError(f"event attributed elsewhere than its binding: {event!r}")
    if not EARLIEST_EVENT_TIME <= event.ts < LATEST_EVENT_TIME:
        raise AssertionError(f"event time no store keeps: {event.ts!r}")
    texts = [event.message_key, *event.faults, *event.extra]
    texts += [v for v in (event.value, *event.extra.values()) if isinstance(v, str)]
    for text in texts:
        text.encode("utf-8")
    for number in (event.value, *event.extra.values()):
        if isinstance(number, float) and not math.isfinite(number):
            raise AssertionError(f"non-finite number in an event: {event!r}")
    if len(event.faults) > 9:
        raise AssertionError(f"{len(event.faults)} faults kept")
