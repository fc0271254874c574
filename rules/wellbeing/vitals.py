"""Vital signs out of range: heart rate, SpO2 and body temperature, for longer than a brief spike.

An excursion starts when a reading leaves the normal range and ends only when a reading is back inside it
by the hysteresis margin, so a value dancing on a limit (120, 121, 120, 121 bpm) is one excursion and
raises one alarm. A reading that follows a silence longer than the kept window starts a new excursion
rather than claiming the gap was out of range too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from devices.model import DeviceEvent, EventKind
from rules.context import RuleContext
from rules.model import AlarmDecision, Decision, Severity
from rules.state import DevicesKept, JsonDict, mapping, moment, residents_kept, subject_kept
from rules.wellbeing.common import WellbeingSource, config_lookup, number, subject_of_event
from rules.wellbeing.config import VitalRange, VitalsConfig

#: Event kind -> name of its range in `VitalsConfig`.
VITAL_KINDS: dict[EventKind, str] = {
    EventKind.HEART_RATE: "heart_rate",
    EventKind.SPO2: "spo2",
    EventKind.BODY_TEMPERATURE: "body_temperature",
}
RING_CAPACITY = 1024


class RingBuffer:
    """The latest readings (gateway time in epoch seconds, value), oldest overwritten first."""

    def __init__(self, capacity: int = RING_CAPACITY) -> None:
        self._times: npt.NDArray[np.float64] = np.full(capacity, np.nan)
        self._values: npt.NDArray[np.float64] = np.full(capacity, np.nan)
        self._written = 0

    def add(self, at: float, value: float) -> None:
        slot = self._written % len(self._times)
        self._times[slot] = at
        self._values[slot] = value
        self._written += 1

    def since(self, start: float) -> npt.NDArray[np.float64]:
        """Values read at or after `start` (in no particular order)."""
        with np.errstate(invalid="ignore"):
            return self._values[self._times >= start]

    def readings_since(self, start: float) -> list[list[float]]:
        """[[time, value], ...] read at or after `start`, oldest first."""
        with np.errstate(invalid="ignore"):
            kept = self._times >= start
        times, values = self._times[kept], self._values[kept]
        order = np.argsort(times, kind="stable")
        return [[float(times[i]), float(values[i])] for i in order]


@dataclass(slots=True)
class _Track:
    ring: RingBuffer = field(default_factory=RingBuffer)
    #: Start of the current excursion; None while the readings are normal.
    out_since: datetime | None = None
    alarmed: bool = False
    last_at: datetime | None = None


class VitalsRule:
    """Excursions under way survive a restart (`restore`), with the readings since each began (what the
    alarm's evidence summarises); tracks of normal readings keep only their last time."""

    name = "vitals"
    #: The event kinds this rule reads (rules/engine.py dispatches by them).
    kinds = frozenset(VITAL_KINDS)
    state_version = 1

    def __init__(self, context: RuleContext, config: WellbeingSource) -> None:
        self._context = context
        self._config = config_lookup(config)
        self._tracks: dict[tuple[str, EventKind], _Track] = {}

    def snapshot(self) -> JsonDict:
        residents, devices = residents_kept(self._context), DevicesKept(self._context)
        return {
            "tracks": [
                _track_to_json(subject, kind, track)
                for (subject, kind), track in self._tracks.items()
                if subject_kept(subject, residents, devices)
            ]
        }

    def restore(self, state: Mapping[str, Any], *, saved_at: datetime, now: datetime) -> None:
        tracks = dict(_track_from_json(mapping(item)) for item in state["tracks"])
        self._tracks = tracks

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        range_name = VITAL_KINDS.get(event.kind)
        value = number(event.value)
        if range_name is None or value is None:
            return ()
        subject, resident = subject_of_event(self._context, event)
        rules = self._config(event.site).for_resident(resident).vitals
        if not rules.enabled:
            return ()
        track = self._tracks.setdefault((subject, event.kind), _Track())
        at = event.received_at
        track.ring.add(at.timestamp(), value)
        gap = at - track.last_at if track.last_at is not None else timedelta(0)
        track.last_at = max(at, track.last_at or at)
        if not _still_out(track, rules.range(range_name), value, at, gap, rules):
            return ()
        assert track.out_since is not None
        if track.alarmed or at - track.out_since < timedelta(seconds=rules.for_s):
            return ()
        track.alarmed = True
        key = f"vitals:{event.site}:{subject}:{event.kind.value}"
        evidence = _evidence(track, rules.range(range_name), value, at, rules)
        return (AlarmDecision(self.name, Severity.HIGH, key, event, evidence),)

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        # Forget subjects whose readings are normal and old, so the rule does not grow without limit.
        stale = [
            key
            for key, track in self._tracks.items()
            if track.out_since is None
            and track.last_at is not None
            and now - track.last_at > timedelta(hours=24)
        ]
        for key in stale:
            del self._tracks[key]
        return ()


def _track_to_json(subject: str, kind: EventKind, track: _Track) -> JsonDict:
    out_since = track.out_since
    return {
        "subject": subject,
        "kind": kind.value,
        "out_since": out_since.isoformat() if out_since is not None else None,
        "alarmed": track.alarmed,
        "last_at": track.last_at.isoformat() if track.last_at is not None else None,
        "readings": track.ring.readings_since(out_since.timestamp()) if out_since is not None else [],
    }


def _track_from_json(data: Mapping[str, Any]) -> tuple[tuple[str, EventKind], _Track]:
    kind = EventKind(data["kind"])
    if kind not in VITAL_KINDS:
        raise ValueError(f"not a vital sign: {kind}")
    track = _Track(
        out_since=moment(data["out_since"]) if data["out_since"] is not None else None,
        alarmed=bool(data["alarmed"]),
        last_at=moment(data["last_at"]) if data["last_at"] is not None else None,
    )
    for at, value in data["readings"][-RING_CAPACITY:]:
        track.ring.add(float(at), float(value))
    return (str(data["subject"]), kind), track


def _still_out(
    track: _Track, normal: VitalRange, value: float, at: datetime, gap: timedelta, rules: VitalsConfig
) -> bool:
    """Advance the excursion state with one reading; True while an excursion is under way."""
    if track.out_since is None:
        if normal.outside(value):
            track.out_since = at
        return track.out_since is not None
    if normal.back_to_normal(value):
        track.out_since = None
        track.alarmed = False
        return False
    if gap > timedelta(seconds=rules.window_s) and not track.alarmed:
        # Nothing is known about the silence: time the excursion from this reading.
        track.out_since = at
    return True


def _evidence(
    track: _Track, normal: VitalRange, value: float, at: datetime, rules: VitalsConfig
) -> dict[str, str | float | bool]:
    assert track.out_since is not None
    start = max(track.out_since, at - timedelta(seconds=rules.window_s))
    readings = track.ring.since(start.timestamp())
    evidence: dict[str, str | float | bool] = {
        "value": value,
        "direction": "low" if normal.low is not None and value < normal.low + normal.margin else "high",
        "out_of_range_s": round((at - track.out_since).total_seconds(), 1),
        "readings": int(readings.size),
        "min": round(float(np.min(readings)), 2),
        "max": round(float(np.max(readings)), 2),
        "mean": round(float(np.mean(readings)), 2),
    }
    if normal.low is not None:
        evidence["low"] = normal.low
    if normal.high is not None:
        evidence["high"] = normal.high
    return evidence
