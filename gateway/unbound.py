"""Devices heard but not bound: what an installer watches while fitting a new pendant.

A message naming a device the directory does not hold (an unknown native device id, an unknown
Zigbee2MQTT friendly name) is not a fault of the message, so it is not kept as a dead letter: it is
counted here, per device, with when it was last heard, on which topic and the start of its payload.

The table is bounded however many ids a broken or hostile publisher invents. It is a segmented LRU: a
device heard once waits in *probation*; heard again, it moves to the *protected* part. A flood of
one-off random ids only churns probation, so a pendant pressed a few times stays listed. Whatever is
pushed out is counted (`forgotten`), never silently lost.

The telemetry child keeps its own table as a one-second buffer (`drain`) and the gateway merges what it
sends (`merge`), so `/api/devices/unbound` lists both lanes in one place.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from devices.model import RawMessage, UnboundDeviceError
from devices.registry import DeviceRegistry

CAPACITY = 1_000
_IDENTIFIER_CHARS = 128
_TOPIC_CHARS = 256
_PAYLOAD_BYTES = 96

#: (profile, identifier): a native device id and a friendly name may be spelled alike.
Key = tuple[str, str]
#: Told how many messages of a lane and profile were counted (a Prometheus counter, in the gateway).
Counted = Callable[[str, str, int], None]


@dataclass(slots=True)
class Sighting:
    """One device heard but not bound."""

    profile: str
    #: The native device id, or the Zigbee2MQTT friendly name.
    identifier: str
    #: The site the native topic named (Zigbee2MQTT topics name none).
    site: str | None
    lane: str
    topic: str
    payload_prefix: str
    first_seen: datetime
    last_seen: datetime
    count: int

    @classmethod
    def of(cls, raw: RawMessage, unbound: UnboundDeviceError) -> Sighting:
        return cls(
            profile=unbound.profile,
            identifier=unbound.identifier[:_IDENTIFIER_CHARS],
            site=unbound.site[:_IDENTIFIER_CHARS] if unbound.site else None,
            lane=raw.lane.value,
            topic=raw.topic[:_TOPIC_CHARS],
            payload_prefix=raw.payload[:_PAYLOAD_BYTES].decode("utf-8", errors="replace"),
            first_seen=raw.received_at,
            last_seen=raw.received_at,
            count=1,
        )

    @property
    def key(self) -> Key:
        return (self.profile, self.identifier)

    def absorb(self, later: Sighting) -> None:
        """Add a later sighting of the same device: counts add up, the newest message describes it."""
        self.count += later.count
        self.first_seen = min(self.first_seen, later.first_seen)
        if later.last_seen >= self.last_seen:
            self.last_seen = later.last_seen
            self.lane, self.topic, self.payload_prefix = later.lane, later.topic, later.payload_prefix
            self.site = later.site or self.site


@dataclass(slots=True)
class Drained:
    """What a table counted between two drains: sent from the telemetry child to the gateway."""

    sightings: list[Sighting]
    messages: dict[tuple[str, str], int]
    forgotten: int

    def to_wire(self) -> dict[str, Any]:
        """Plain values for the process boundary."""
        return {
            "sightings": [asdict(s) for s in self.sightings],
            "messages": [[lane, profile, count] for (lane, profile), count in self.messages.items()],
            "forgotten": self.forgotten,
        }

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> Drained:
        return cls(
            [Sighting(**row) for row in wire["sightings"]],
            {(lane, profile): count for lane, profile, count in wire["messages"]},
            wire["forgotten"],
        )

    def __bool__(self) -> bool:
        return bool(self.sightings or self.messages or self.forgotten)


class UnboundDevices:
    def __init__(self, capacity: int = CAPACITY, *, counted: Counted | None = None) -> None:
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self._probation: OrderedDict[Key, Sighting] = OrderedDict()
        self._protected: OrderedDict[Key, Sighting] = OrderedDict()
        self._probation_max = capacity // 2
        self._protected_max = capacity - self._probation_max
        self._counted = counted
        #: Messages counted per (lane, profile) since the last `drain`.
        self._messages: dict[tuple[str, str], int] = {}
        #: Devices pushed out of the table to keep it bounded.
        self.forgotten = 0
        self.capacity = capacity

    def __len__(self) -> int:
        return len(self._probation) + len(self._protected)

    def record(self, raw: RawMessage, unbound: UnboundDeviceError) -> None:
        """One message from a device the directory does not hold."""
        sighting = Sighting.of(raw, unbound)
        self._count(sighting.lane, sighting.profile, 1)
        self._add(sighting)

    def merge(self, drained: Drained, registry: DeviceRegistry | None = None) -> None:
        """What another table counted (the telemetry child's, drained). Devices `registry` binds by now
        are left out of the listing (their messages were decoded before the child took the new
        directory) but still counted."""
        for (lane, profile), count in drained.messages.items():
            self._count(lane, profile, count)
        self.forgotten += drained.forgotten
        for sighting in drained.sightings:
            if registry is None or not registry.binds(sighting.profile, sighting.identifier):
                self._add(sighting)

    def drain(self) -> Drained:
        """Everything counted since the last drain; the table starts empty again."""
        drained = Drained(
            [*self._probation.values(), *self._protected.values()], self._messages, self.forgotten
        )
        self._probation, self._protected = OrderedDict(), OrderedDict()
        self._messages, self.forgotten = {}, 0
        return drained

    def forget_bound(self, registry: DeviceRegistry) -> int:
        """Drop the devices `registry` binds (fitted at last); how many were dropped."""
        dropped = 0
        for part in (self._probation, self._protected):
            for key in [key for key in part if registry.binds(*key)]:
                del part[key]
                dropped += 1
        return dropped

    def listing(self) -> list[Sighting]:
        """Most recently heard first."""
        return sorted(
            (*self._probation.values(), *self._protected.values()), key=lambda s: s.last_seen, reverse=True
        )

    def _count(self, lane: str, profile: str, count: int) -> None:
        self._messages[(lane, profile)] = self._messages.get((lane, profile), 0) + count
        if self._counted is not None:
            self._counted(lane, profile, count)

    def _add(self, sighting: Sighting) -> None:
        key = sighting.key
        known = self._protected.get(key)
        if known is not None:
            known.absorb(sighting)
            self._protected.move_to_end(key)
            return
        known = self._probation.pop(key, None)
        if known is not None:
            known.absorb(sighting)
            sighting = known
        if sighting.count > 1:
            self._protected[key] = sighting
            self._trim(self._protected, self._protected_max)
        else:
            self._probation[key] = sighting
            self._trim(self._probation, self._probation_max)

    def _trim(self, part: OrderedDict[Key, Sighting], limit: int) -> None:
        while len(part) > limit:
            part.popitem(last=False)
            self.forgotten += 1
