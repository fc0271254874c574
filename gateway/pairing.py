"""Zigbee devices paired with Zigbee2MQTT, offered for binding: what an administrator fitting a new
pendant picks from.

Zigbee2MQTT publishes its whole device list, retained, on `zigbee2mqtt/bridge/devices` and each join,
interview and leave on `zigbee2mqtt/bridge/event`. A small aiomqtt subscriber in the gateway process
follows both; nothing here is on the alarm path (a bound device's alarms reach the alarm lane on its
own topic, whatever this listener does).

Bounded: a payload larger than `MAX_BRIDGE_BYTES` is refused and counted, at most `MAX_DEVICES` are kept,
each with at most `MAX_EXPOSES` expose names. Bad input is counted and leaves the last good list alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import aiomqtt

from devices.model import DeviceType
from gateway.config import BrokerConfig

log = logging.getLogger(__name__)

BRIDGE_DEVICES = "zigbee2mqtt/bridge/devices"
BRIDGE_EVENT = "zigbee2mqtt/bridge/event"
#: A large network's device list (hundreds of devices with their exposes) runs to several hundred KiB.
MAX_BRIDGE_BYTES = 2 * 1024 * 1024
MAX_DEVICES = 2_000
MAX_EXPOSES = 64
_TEXT_CHARS = 128
_EXPOSE_DEPTH = 4

#: Known models (Zigbee2MQTT's `definition.model`), the type to suggest for them.
MODEL_TYPES: Mapping[str, DeviceType] = {
    "TS0215A": DeviceType.SOS_BUTTON,
    "TS0215A_sos": DeviceType.SOS_BUTTON,
    "HS1EB": DeviceType.SOS_BUTTON,
    "HS1EB-E": DeviceType.SOS_BUTTON,
    "SOS-BUTTON": DeviceType.SOS_BUTTON,
    "MIR-HE200-TY": DeviceType.FALL_SENSOR,
    "ZY-M100": DeviceType.FALL_SENSOR,
    "TS0601_fall": DeviceType.FALL_SENSOR,
    "TS0203": DeviceType.DOOR_SENSOR,
    "MCCGQ11LM": DeviceType.DOOR_SENSOR,
    "MCCGQ01LM": DeviceType.DOOR_SENSOR,
    "SNZB-04": DeviceType.DOOR_SENSOR,
    "HS1SA": DeviceType.SMOKE_DETECTOR,
    "HS1SA-E": DeviceType.SMOKE_DETECTOR,
    "TS0205": DeviceType.SMOKE_DETECTOR,
    "JTYJ-GD-01LM/BW": DeviceType.SMOKE_DETECTOR,
    "RTCGQ11LM": DeviceType.MOTION_SENSOR,
    "RTCGQ01LM": DeviceType.MOTION_SENSOR,
    "TS0202": DeviceType.MOTION_SENSOR,
    "SNZB-03": DeviceType.MOTION_SENSOR,
    "RTCZCGQ11LM": DeviceType.PRESENCE_SENSOR,
}
_SOS_ACTIONS = frozenset({"sos", "emergency", "panic", "alarm"})  # as devices/zigbee2mqtt.py reads them
#: What a device reports, when its model is unknown, in the order to trust it.
_EXPOSE_TYPES = (
    ("smoke", DeviceType.SMOKE_DETECTOR),
    ("contact", DeviceType.DOOR_SENSOR),
    ("presence", DeviceType.PRESENCE_SENSOR),
    ("occupancy", DeviceType.MOTION_SENSOR),
)


@dataclass(frozen=True, slots=True)
class Suggestion:
    type: DeviceType
    #: Why: "model" (the model table), "exposes" (what it reports), "unknown" (neither told).
    basis: str


def suggest_type(model: str | None, exposes: Iterable[str], actions: Iterable[str] = ()) -> Suggestion:
    """The device type a paired device most likely is: its model first, then what it exposes."""
    if model and model in MODEL_TYPES:
        return Suggestion(MODEL_TYPES[model], "model")
    names = set(exposes)
    if _SOS_ACTIONS & {a.lower() for a in actions} or "sos" in names:
        return Suggestion(DeviceType.SOS_BUTTON, "exposes")
    for expose, device_type in _EXPOSE_TYPES:
        if expose in names:
            return Suggestion(device_type, "exposes")
    return Suggestion(DeviceType.OTHER, "unknown")


@dataclass(frozen=True, slots=True)
class PairedDevice:
    ieee_address: str
    friendly_name: str
    vendor: str | None
    model: str | None
    description: str | None
    exposes: tuple[str, ...]
    actions: tuple[str, ...]
    #: Zigbee2MQTT's `interview_completed`; a device still being interviewed has no definition yet.
    interviewed: bool
    seen_at: datetime

    @property
    def suggestion(self) -> Suggestion:
        return suggest_type(self.model, self.exposes, self.actions)


def _text(value: Any) -> str | None:
    return value[:_TEXT_CHARS] if isinstance(value, str) and value else None


def _exposes(items: Any, depth: int = 0) -> tuple[list[str], list[str]]:
    """Expose names and the values of `action` enums, walking composite exposes' `features`."""
    names: list[str] = []
    actions: list[str] = []
    if not isinstance(items, list) or depth > _EXPOSE_DEPTH:
        return names, actions
    for item in items:
        if not isinstance(item, dict):
            continue
        name = _text(item.get("property")) or _text(item.get("name"))
        if name:
            names.append(name)
            if name == "action" and isinstance(item.get("values"), list):
                actions += [v[:_TEXT_CHARS] for v in item["values"] if isinstance(v, str)]
        inner_names, inner_actions = _exposes(item.get("features"), depth + 1)
        names += inner_names
        actions += inner_actions
    return list(dict.fromkeys(names))[:MAX_EXPOSES], list(dict.fromkeys(actions))[:MAX_EXPOSES]


def parse_device(entry: Any, seen_at: datetime) -> PairedDevice | None:
    """One entry of `bridge/devices` or of a `device_interview` event; None for the coordinator or an
    entry without an address and a friendly name."""
    if not isinstance(entry, dict) or entry.get("type") == "Coordinator":
        return None
    ieee, name = _text(entry.get("ieee_address")), _text(entry.get("friendly_name"))
    if ieee is None or name is None:
        return None
    found = entry.get("definition")
    definition: dict[str, Any] = found if isinstance(found, dict) else {}
    names, actions = _exposes(definition.get("exposes"))
    return PairedDevice(
        ieee_address=ieee,
        friendly_name=name,
        vendor=_text(definition.get("vendor")) or _text(entry.get("manufacturer")),
        model=_text(definition.get("model")) or _text(entry.get("model_id")),
        description=_text(definition.get("description")),
        exposes=tuple(names),
        actions=tuple(actions),
        interviewed=bool(entry.get("interview_completed", bool(definition))),
        seen_at=seen_at,
    )


@dataclass
class PairedDevices:
    """What Zigbee2MQTT has paired, by IEEE address, bounded; refusals counted by reason."""

    now: Callable[[], datetime]
    #: Told the reason of each refusal (a Prometheus counter, in the gateway).
    on_refused: Callable[[str], None] = lambda reason: None
    devices: dict[str, PairedDevice] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    #: Devices left out because the list was longer than `MAX_DEVICES`.
    truncated: int = 0

    def _refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        self.on_refused(reason)
        log.warning("zigbee2mqtt bridge message refused: %s", reason)

    def _decode(self, payload: bytes) -> Any:
        if len(payload) > MAX_BRIDGE_BYTES:
            self._refuse("too_large")
            return None
        try:
            return json.loads(payload)
        except (UnicodeDecodeError, ValueError, RecursionError):
            self._refuse("not_json")
            return None

    def on_devices(self, payload: bytes) -> None:
        """`bridge/devices`: the whole list, replacing the one before (a bad list leaves it as it was)."""
        entries = self._decode(payload)
        if entries is None:
            return
        if not isinstance(entries, list):
            self._refuse("not_a_list")
            return
        now = self.now()
        found = [d for d in (parse_device(e, now) for e in entries) if d is not None]
        self.truncated = max(0, len(found) - MAX_DEVICES)
        kept = {d.ieee_address: d for d in found[:MAX_DEVICES]}
        # A device keeps when it was first seen: joining is what an installer waits for.
        self.devices = {
            ieee: replace(d, seen_at=self.devices[ieee].seen_at) if ieee in self.devices else d
            for ieee, d in kept.items()
        }

    def on_event(self, payload: bytes) -> None:
        """`bridge/event`: a device joined, was interviewed or left."""
        event = self._decode(payload)
        if event is None:
            return
        data = event.get("data") if isinstance(event, dict) else None
        if not isinstance(data, dict):
            self._refuse("not_an_event")
            return
        kind, ieee = event.get("type"), _text(data.get("ieee_address"))
        if ieee is None:
            self._refuse("not_an_event")
        elif kind == "device_leave":
            self.devices.pop(ieee, None)
        elif kind == "device_joined" or (kind == "device_interview" and data.get("status") == "successful"):
            device = parse_device({**data, "interview_completed": kind == "device_interview"}, self.now())
            if device is not None and (ieee in self.devices or len(self.devices) < MAX_DEVICES):
                self.devices[ieee] = device

    def listing(self) -> list[PairedDevice]:
        return sorted(self.devices.values(), key=lambda d: d.seen_at, reverse=True)


class BridgeListener:
    """Subscribes to Zigbee2MQTT's bridge topics with its own aiomqtt client; reconnects with backoff."""

    def __init__(self, config: BrokerConfig, paired: PairedDevices) -> None:
        self._config = config
        self._paired = paired
        self.connected = False

    def _client(self) -> aiomqtt.Client:
        config = self._config
        tls = None
        if config.uses_tls:
            tls = aiomqtt.TLSParameters(
                ca_certs=str(config.tls.ca_file) if config.tls and config.tls.ca_file else None,
                certfile=str(config.tls.cert_file) if config.tls and config.tls.cert_file else None,
                keyfile=str(config.tls.key_file) if config.tls and config.tls.key_file else None,
            )
        return aiomqtt.Client(
            config.host,
            config.port,
            identifier=f"{config.client_id}-pairing",
            username=config.username,
            password=config.password() if config.username else None,
            tls_params=tls,
            tls_insecure=bool(config.tls and config.tls.insecure) if tls else None,
            keepalive=config.keepalive_s,
            max_queued_incoming_messages=100,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )

    async def run(self) -> None:
        delay = self._config.reconnect_min_s
        while True:
            try:
                async with self._client() as client:
                    await client.subscribe([(BRIDGE_DEVICES, 0), (BRIDGE_EVENT, 0)])
                    self.connected = True
                    delay = self._config.reconnect_min_s
                    async for message in client.messages:
                        self._received(str(message.topic), message.payload)
            except aiomqtt.MqttError as exc:
                log.info("zigbee2mqtt bridge listener disconnected: %s", exc)
            finally:
                self.connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._config.reconnect_max_s)

    def _received(self, topic: str, payload: Any) -> None:
        data = payload if isinstance(payload, bytes) else str(payload).encode()
        if topic == BRIDGE_DEVICES:
            self._paired.on_devices(data)
        elif topic == BRIDGE_EVENT:
            self._paired.on_event(data)
