"""Payloads real devices send, for the simulators, the tests and the benchmarks."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from devices.model import Binding, EventKind


def careline_topic(binding: Binding, channel: str = "alarm") -> str:
    return f"careline/{binding.site}/{binding.device_id}/{channel}"


def careline_event(
    kind: EventKind,
    value: float | bool | str | None = None,
    *,
    event_id: str | None = None,
    ts_ms: float | None = None,
    extra: dict[str, Any] | None = None,
) -> bytes:
    body: dict[str, Any] = {
        "v": 1,
        "event_id": event_id or uuid.uuid4().hex,
        "ts": int(ts_ms if ts_ms is not None else time.time() * 1000),
        "kind": kind.value,
    }
    if value is not None:
        body["value"] = value
    if extra:
        body["extra"] = extra
    return json.dumps(body).encode()


def zigbee2mqtt_topic(binding: Binding) -> str:
    return f"zigbee2mqtt/{binding.friendly_name or binding.device_id}"


def zigbee2mqtt_state(**state: Any) -> bytes:
    """A Zigbee2MQTT state message, e.g. ``zigbee2mqtt_state(action="emergency", battery=100)``."""
    return json.dumps(state).encode()


def alarm_message(
    binding: Binding, kind: EventKind, value: float | bool | str | None = None
) -> tuple[str, bytes]:
    """Topic and payload for an alarm from a device in its own profile."""
    if binding.profile == "zigbee2mqtt":
        return zigbee2mqtt_topic(binding), zigbee2mqtt_state(**_zigbee2mqtt_keys(kind), linkquality=96)
    return careline_topic(binding), careline_event(kind, value)


def _zigbee2mqtt_keys(kind: EventKind) -> dict[str, Any]:
    keys: dict[EventKind, dict[str, Any]] = {
        EventKind.SOS: {"action": "emergency", "battery": 97},
        EventKind.FALL: {"fall": True, "presence": True},
        EventKind.FALL_CANCEL: {"action": "fall_cancel"},
        EventKind.DOOR_OPEN: {"contact": False, "battery": 91},
        EventKind.DOOR_CLOSED: {"contact": True, "battery": 91},
        EventKind.SMOKE: {"smoke": True, "battery": 88},
    }
    return keys[kind]


#: The Zigbee2MQTT state keys of the readings the simulators send from Zigbee devices.
_ZIGBEE2MQTT_READINGS: dict[EventKind, str] = {
    EventKind.BATTERY: "battery",
    EventKind.LINK_QUALITY: "linkquality",
    EventKind.PRESENCE: "occupancy",
    EventKind.MOTION: "occupancy",
    EventKind.TEMPERATURE: "temperature",
    EventKind.HUMIDITY: "humidity",
}


def telemetry_message(
    binding: Binding, readings: dict[EventKind, float | bool], *, ts_ms: float | None = None
) -> list[tuple[str, bytes]]:
    """Topics and payloads for readings from a device in its own profile: a Zigbee device sends them
    together in one state message, a native device one event per reading on its telemetry topic."""
    if binding.profile == "zigbee2mqtt":
        state = {_ZIGBEE2MQTT_READINGS[kind]: value for kind, value in readings.items()}
        return [(zigbee2mqtt_topic(binding), zigbee2mqtt_state(**state))]
    topic = careline_topic(binding, "telemetry")
    return [(topic, careline_event(kind, value, ts_ms=ts_ms)) for kind, value in readings.items()]
