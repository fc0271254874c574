"""The telemetry lane: decode, keep what is undecodable, hand events to telemetry sinks.

Bounded: when telemetry floods faster than we keep up, the newest surplus is dropped and counted
rather than growing memory without limit. Nothing here is awaited by the alarm lane.

Each message is dead-lettered once: `zigbee2mqtt/#` also brings the topics of alarm devices, which the
alarm lane receives too; an undecodable message there is the alarm lane's to keep, so this lane only
counts it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from paho.mqtt.client import topic_matches_sub

from devices.decode import decode
from devices.model import (
    DEAD_LETTER_PREFIX_BYTES,
    DecodeError,
    DeviceEvent,
    EventKind,
    Lane,
    RawMessage,
    SpoofedMessageError,
    UnboundDeviceError,
)
from devices.registry import DeviceRegistry
from gateway.metrics import Metrics
from gateway.unbound import UnboundDevices
from rules.state import JsonDict, mapping, moment
from rules.wellbeing.common import flag
from rules.wellbeing.config import DeviceHealthConfig

log = logging.getLogger(__name__)

TelemetrySink = Callable[[Sequence[DeviceEvent]], None]
#: A message that could not be decoded, why, and the device it claimed to come from.
DeadLetterItem = tuple[RawMessage, str, str | None]
DEAD_LETTER_FLUSH_S = 1.0
#: Telemetry messages handled between two yields to the event loop.
CHUNK = 100
DEAD_LETTER_BACKLOG_MAX = 10_000


@dataclass(slots=True)
class DeviceState:
    device_id: str
    last_seen: datetime
    battery: float | None = None
    online: bool = True
    #: Zigbee link quality (LQI, 0..255) or the device's own signal figure, as last reported.
    link_quality: float | None = None
    #: At or below the site's `device_health.battery_low_pct` (or the device said so), until it reads
    #: above that plus `battery_recover_pct`, as the device-health rule decides.
    battery_low: bool = False
    #: When the device went offline / its battery went low; None while it is not. The managers' board
    #: times its faults from these (JGJ/T 484: a workaround within 2 hours of a device fault).
    offline_since: datetime | None = None
    battery_low_since: datetime | None = None


_TIMES = ("last_seen", "offline_since", "battery_low_since")
#: A `DeviceState` as it crosses from the telemetry process to the gateway once a second: its fields in
#: order. A tuple, not `asdict`: for thousands of devices asdict's deep copies were a tenth of the
#: telemetry process's time.
DeviceStateWire = tuple[
    str, datetime, float | None, bool, float | None, bool, datetime | None, datetime | None
]


def state_to_wire(state: DeviceState) -> DeviceStateWire:
    return (
        state.device_id,
        state.last_seen,
        state.battery,
        state.online,
        state.link_quality,
        state.battery_low,
        state.offline_since,
        state.battery_low_since,
    )


def state_from_wire(wire: DeviceStateWire) -> DeviceState:
    return DeviceState(*wire)


def _state_to_json(state: DeviceState) -> JsonDict:
    data = asdict(state)
    for name in _TIMES:
        data[name] = data[name].isoformat() if data[name] is not None else None
    return data


def _state_from_json(data: Mapping[str, Any]) -> DeviceState:
    def time_or_none(name: str) -> datetime | None:
        return moment(data[name]) if data[name] is not None else None

    def number_or_none(name: str) -> float | None:
        return float(data[name]) if data[name] is not None else None

    return DeviceState(
        str(data["device_id"]),
        moment(data["last_seen"]),
        battery=number_or_none("battery"),
        online=bool(data["online"]),
        link_quality=number_or_none("link_quality"),
        battery_low=bool(data["battery_low"]),
        offline_since=time_or_none("offline_since"),
        battery_low_since=time_or_none("battery_low_since"),
    )


def _default_rules(_site: str) -> DeviceHealthConfig:
    return DeviceHealthConfig()


class DeviceHealth:
    """Last sign of life per device, its battery, link quality and since when it is faulty, for the
    operators' device list and the managers' device board. `rules` gives a site's device-health settings
    (the battery threshold), as the device-health rule reads them. Kept across restarts like the rules'
    state (`snapshot`, `restore`), so a fault is still timed from when it began."""

    name = "device_board"
    state_version = 1

    def __init__(self, rules: Callable[[str], DeviceHealthConfig] = _default_rules) -> None:
        self.devices: dict[str, DeviceState] = {}
        self._rules = rules

    def snapshot(self) -> JsonDict:
        return {"devices": [_state_to_json(state) for state in self.devices.values()]}

    def restore(self, state: Mapping[str, Any], *, saved_at: datetime, now: datetime) -> None:
        devices = [_state_from_json(mapping(item)) for item in state["devices"]]
        self.devices = {device.device_id: device for device in devices}

    def __call__(self, events: Sequence[DeviceEvent]) -> None:
        for event in events:
            if event.extra.get("manual") is True:
                continue  # a carer's thermometer reading (dashboard/risks_api.py), no device of ours
            state = self.devices.get(event.device_id)
            if state is None:
                state = self.devices[event.device_id] = DeviceState(event.device_id, event.received_at)
            state.last_seen = max(state.last_seen, event.received_at)
            if event.kind is EventKind.AVAILABILITY:
                self._availability(state, bool(event.value), event.received_at)
            elif event.kind is EventKind.BATTERY and isinstance(event.value, int | float):
                self._battery_level(state, float(event.value), event)
            elif event.kind is EventKind.BATTERY_LOW:
                self._battery_flag(state, event)
            elif event.kind is EventKind.LINK_QUALITY and isinstance(event.value, int | float):
                state.link_quality = float(event.value)

    @staticmethod
    def _availability(state: DeviceState, online: bool, at: datetime) -> None:
        state.online = online
        state.offline_since = None if online else state.offline_since or at

    def _battery_level(self, state: DeviceState, level: float, event: DeviceEvent) -> None:
        state.battery = level
        rules = self._rules(event.site)
        if level <= rules.battery_low_pct:
            _battery_low(state, event.received_at)
        elif level > rules.battery_low_pct + rules.battery_recover_pct:
            state.battery_low, state.battery_low_since = False, None

    @staticmethod
    def _battery_flag(state: DeviceState, event: DeviceEvent) -> None:
        low = flag(event.value, none_means=True)
        if low:
            _battery_low(state, event.received_at)
        elif low is False and state.battery is None:
            # A level, when the device reports one, decides; the flag alone clears only flag-only devices.
            state.battery_low, state.battery_low_since = False, None

    def forget_unbound(self, registry: DeviceRegistry) -> None:
        """Devices the directory no longer holds leave the operators' device list."""
        self.devices = {device: state for device, state in self.devices.items() if registry.by_id(device)}


def _battery_low(state: DeviceState, at: datetime) -> None:
    state.battery_low = True
    state.battery_low_since = state.battery_low_since or at


class TelemetryLane:
    def __init__(
        self,
        registry: DeviceRegistry,
        keep_dead_letters: Callable[[list[DeadLetterItem]], Awaitable[None]],
        metrics: Metrics,
        queue_max: int,
        sinks: Sequence[TelemetrySink] = (),
        alarm_topics: Sequence[str] = (),
        unbound: UnboundDevices | None = None,
    ) -> None:
        self._registry = registry
        #: Messages from devices the directory does not hold are counted there, not dead-lettered.
        self.unbound = unbound if unbound is not None else UnboundDevices()
        self._keep_dead_letters = keep_dead_letters
        self._metrics = metrics
        self._sinks = list(sinks)
        #: What the alarm lane subscribes to: undecodable messages there are its dead letters, not ours.
        self._alarm_topics = tuple(alarm_topics)
        #: Messages not decoded yet, at most `queue_max`. A deque taken in batches rather than an
        #: asyncio.Queue taken one by one: at 10,000 messages a second the queue's own bookkeeping per
        #: message showed in the profile.
        self._waiting: deque[RawMessage] = deque()
        self._queue_max = queue_max
        self._arrived = asyncio.Event()
        self._dead: list[DeadLetterItem] = []

    def use(self, registry: DeviceRegistry, alarm_topics: Sequence[str]) -> None:
        """Decode with `registry` from the next message on (the directory applied live), leaving the
        alarm lane's new topics to it."""
        self._registry = registry
        self._alarm_topics = tuple(alarm_topics)

    def submit(self, raw: RawMessage) -> None:
        self.submit_many([raw])

    def submit_many(self, raws: list[RawMessage]) -> None:
        """Take what arrived (on the event loop); past `queue_max` waiting, the surplus is dropped and
        counted."""
        self._metrics.messages_received.labels("telemetry").inc(len(raws))
        room = self._queue_max - len(self._waiting)
        if room < len(raws):
            self._metrics.telemetry_dropped.inc(len(raws) - max(room, 0))
            raws = raws[: max(room, 0)]
        self._waiting.extend(raws)
        self._arrived.set()

    @property
    def waiting(self) -> int:
        """Messages received and not decoded yet."""
        return len(self._waiting)

    async def run(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._waiting:
                self._handle(self._take(CHUNK))
                # Small chunks and a yield between them: an alarm arriving meanwhile runs next, not after
                # a long stretch of telemetry.
                await asyncio.sleep(0)

    def _take(self, n: int) -> list[RawMessage]:
        waiting = self._waiting
        return [waiting.popleft() for _ in range(min(n, len(waiting)))]

    def _handle(self, raws: list[RawMessage]) -> None:
        events: list[DeviceEvent] = []
        for raw in raws:
            events += self._decode(raw)
        self._metrics.queue_depth.labels("telemetry").set(len(self._waiting))
        if events:
            self._metrics.telemetry_lag.set((datetime.now(UTC) - events[-1].ts).total_seconds())
        for sink in self._sinks:
            try:
                sink(events)
            except Exception:
                log.exception("telemetry sink %r failed", sink)

    def _decode(self, raw: RawMessage) -> list[DeviceEvent]:
        try:
            return decode(raw, self._registry)
        except UnboundDeviceError as exc:
            self.unbound.record(raw, exc)
            return []
        except DecodeError as exc:
            if any(topic_matches_sub(pattern, raw.topic) for pattern in self._alarm_topics):
                self._metrics.telemetry_left_to_alarm_lane.inc()
            else:
                self.keep_dead_letter((raw, exc.reason, exc.device_id))
                if isinstance(exc, SpoofedMessageError):
                    self._metrics.spoofed.labels("telemetry").inc()
            return []

    def keep_dead_letter(self, letter: DeadLetterItem) -> None:
        """Counted now, stored with the next batch; only a prefix of the payload is held."""
        raw, reason, device_id = letter
        self._metrics.dead_letters.labels("telemetry").inc()
        self._dead.append((raw.prefix(DEAD_LETTER_PREFIX_BYTES), reason, device_id))

    def keep_refused_event(self, event: DeviceEvent, reason: str) -> None:
        """An event a sink could not take whole (the InfluxDB writer: a value of the wrong type)."""
        self.keep_dead_letter((refused_event_message(event), reason, event.device_id))

    async def flush_dead_letters_forever(self) -> None:
        # Batched once a second: a storm of bad telemetry costs the shared store one commit per second.
        while True:
            await asyncio.sleep(DEAD_LETTER_FLUSH_S)
            await self.flush_dead_letters()

    async def flush_dead_letters(self) -> None:
        if not self._dead:
            return
        letters, self._dead = self._dead, []
        try:
            await self._keep_dead_letters(letters)
        except Exception:
            # Keep them for the next round, within bounds: bad telemetry must not grow memory forever.
            log.exception("could not store %d telemetry dead letters; retrying", len(letters))
            self._dead = (letters + self._dead)[-DEAD_LETTER_BACKLOG_MAX:]


def refused_event_message(event: DeviceEvent) -> RawMessage:
    """A dead letter's message for a decoded event: what the device said, as the gateway understood it."""
    described = {
        "kind": str(event.kind),
        "value": event.value,
        "extra": event.extra,
        "ts": event.ts.isoformat(),
        "message_key": event.message_key,
    }
    return RawMessage(
        topic=f"(telemetry event {event.kind})",
        # A lone surrogate (JSON "\ud800") has no UTF-8 form: it is kept as its escape.
        payload=json.dumps(described, ensure_ascii=False).encode("utf-8", "backslashreplace"),
        received_at=event.received_at,
        lane=Lane.TELEMETRY,
    )
