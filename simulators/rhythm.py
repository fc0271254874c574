"""A care home's daily rhythm, as its sensors see it: the live simulation and the history both use it.

Residents sleep from about 21:30 to 06:30 (site-local time): their beds are occupied then, rooms and
corridors are quiet, and now and then someone gets up. By day the beds are empty (but for a nap), the
day rooms and corridors are busy and doors open. Vital signs drift slowly around each resident's own
resting values and are lower at night; batteries drain a little every hour; radio links flicker.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from devices.model import Binding, DeviceType, EventKind

Readings = dict[EventKind, float | bool]

#: Per hour, in percent: a pendant's coin cell lasts about a year and a half (a week costs ~1 %).
BATTERY_DRAIN_PCT_PER_HOUR = 0.006
#: A bed exit at night starts with this chance at each look, and lasts a few looks.
BED_EXIT_CHANCE = 0.03
_ACTIVITY_BY_DAY = {DeviceType.MOTION_SENSOR: 0.7, DeviceType.PRESENCE_SENSOR: 0.6}
_ACTIVITY_BY_NIGHT = {DeviceType.MOTION_SENSOR: 0.06, DeviceType.PRESENCE_SENSOR: 0.1}
_ZIGBEE = "zigbee2mqtt"


def is_night(local: datetime) -> bool:
    minutes = local.hour * 60 + local.minute
    return minutes >= 21 * 60 + 30 or minutes < 6 * 60 + 30


@dataclass
class _Vitals:
    heart_rate: float
    spo2: float
    body_temperature: float


@dataclass
class _Device:
    binding: Binding
    battery: float
    link: float
    vitals: _Vitals | None = None
    #: Looks left of a bed exit under way (0: none).
    out_of_bed: int = 0
    seen: dict[EventKind, float | bool] = field(default_factory=dict)


class CareHomeRhythm:
    """The readings every wellbeing sensor gives at a moment, plus each device's battery and link.

    Deterministic for a seed and a sequence of moments; call `readings` with moments in time order.
    """

    def __init__(self, bindings: Sequence[Binding], zones: Mapping[str, str], rng: random.Random) -> None:
        self._rng = rng
        self._zones = {site: ZoneInfo(zone) for site, zone in zones.items()}
        self._devices = [self._new_device(b) for b in bindings]
        self._last: datetime | None = None

    def _new_device(self, binding: Binding) -> _Device:
        rng = self._rng
        link = rng.uniform(90, 220) if binding.profile == _ZIGBEE else rng.uniform(70, 95)
        device = _Device(binding, battery=rng.uniform(35, 100), link=link)
        if binding.device_type is DeviceType.VITALS_MONITOR:
            device.vitals = _Vitals(rng.uniform(62, 80), rng.uniform(95.5, 98.5), rng.uniform(36.3, 36.9))
        return device

    @property
    def bindings(self) -> list[Binding]:
        return [d.binding for d in self._devices]

    def local(self, binding: Binding, at: datetime) -> datetime:
        zone = self._zones.get(binding.site)
        return at.astimezone(zone) if zone else at

    def readings(self, at: datetime, *, health_every: int = 1) -> list[tuple[Binding, Readings]]:
        """What each wellbeing sensor says at `at`; every `health_every`-th device (in turn) also sends
        its battery and link quality."""
        hours = 0.0 if self._last is None else max(0.0, (at - self._last).total_seconds() / 3600)
        self._last = at
        out: list[tuple[Binding, Readings]] = []
        for device in self._devices:
            device.battery = max(1.0, device.battery - BATTERY_DRAIN_PCT_PER_HOUR * hours)
            readings = self._sensed(device, self.local(device.binding, at))
            if health_every <= 1 or self._rng.randrange(health_every) == 0:
                readings.update(self._health(device))
            if readings:
                out.append((device.binding, readings))
        return out

    def _sensed(self, device: _Device, local: datetime) -> Readings:
        kind = device.binding.device_type
        night = is_night(local)
        if device.vitals is not None:
            return self._vitals(device.vitals, night)
        if kind is DeviceType.BED_SENSOR:
            return {EventKind.BED_OCCUPIED: self._in_bed(device, night)}
        if kind in _ACTIVITY_BY_DAY:
            chance = (_ACTIVITY_BY_NIGHT if night else _ACTIVITY_BY_DAY)[kind]
            sensed = EventKind.PRESENCE
            return {sensed: self._rng.random() < chance}
        return {}

    def _vitals(self, vitals: _Vitals, night: bool) -> Readings:
        rng = self._rng
        # A slow random walk pulled back to the resident's own values; a little lower while asleep.
        rest = -6.0 if night else 0.0
        vitals.heart_rate += rng.gauss(0, 1.2) + 0.05 * (72 + rest - vitals.heart_rate)
        vitals.spo2 += rng.gauss(0, 0.25) + 0.1 * (97 - vitals.spo2)
        vitals.body_temperature += rng.gauss(0, 0.03) + 0.05 * (36.6 - 0.1 * night - vitals.body_temperature)
        return {
            EventKind.HEART_RATE: round(min(max(vitals.heart_rate, 52.0), 105.0)),
            EventKind.SPO2: round(min(max(vitals.spo2, 93.0), 100.0), 1),
            EventKind.BODY_TEMPERATURE: round(min(max(vitals.body_temperature, 35.9), 37.4), 2),
        }

    def _in_bed(self, device: _Device, night: bool) -> bool:
        if not night:
            return self._rng.random() < 0.1  # a nap
        if device.out_of_bed > 0:
            device.out_of_bed -= 1
            return False
        if self._rng.random() < BED_EXIT_CHANCE:
            device.out_of_bed = self._rng.randint(1, 3)
            return False
        return True

    def _health(self, device: _Device) -> Readings:
        low, high = (40.0, 255.0) if device.binding.profile == _ZIGBEE else (40.0, 100.0)
        device.link = min(max(device.link + self._rng.gauss(0, 6), low), high)
        return {EventKind.BATTERY: round(device.battery), EventKind.LINK_QUALITY: round(device.link)}

    def door_openings(self, at: datetime, doors: Sequence[Binding], *, chance_by_day: float) -> list[Binding]:
        """Doors opened at `at`: often by day, seldom at night (when each opening near a resident at
        risk of wandering is an alarm)."""
        opened = []
        for door in doors:
            night = is_night(self.local(door, at))
            if self._rng.random() < (chance_by_day / 40 if night else chance_by_day):
                opened.append(door)
        return opened
