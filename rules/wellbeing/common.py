"""What the wellbeing rules share: whose event it is, what counts as a sign of life, and the synthetic
event a timer-based alarm carries."""

from __future__ import annotations

from collections.abc import Callable, Container
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from devices.model import DeviceEvent, DeviceType, EventKind
from rules.context import ResidentFacts, RuleContext, SiteFacts
from rules.wellbeing.config import WellbeingConfig

#: device_id of a synthetic event when no device has been heard from yet.
NO_DEVICE = "(none)"

#: The wellbeing settings, either one for every site or looked up by site id.
WellbeingSource = WellbeingConfig | Callable[[str], WellbeingConfig]


def config_lookup(source: WellbeingSource) -> Callable[[str], WellbeingConfig]:
    if isinstance(source, WellbeingConfig):
        return lambda _site: source
    return source


def all_residents(context: RuleContext) -> tuple[ResidentFacts, ...]:
    """Every configured resident: timer rules must watch residents who never sent anything."""
    return tuple(context.residents())


def resident_watched_since(context: RuleContext, resident_id: str, start: datetime) -> datetime:
    """Since when the rules could have heard from a resident: the gateway's start, or later if the
    resident was added to the directory while it ran."""
    joined = context.resident_joined(resident_id)
    return start if joined is None else max(start, joined)


def device_watched_since(context: RuleContext, device_id: str, start: datetime) -> datetime:
    joined = context.device_joined(device_id)
    return start if joined is None else max(start, joined)


def site_of(context: RuleContext, site_id: str) -> SiteFacts | None:
    try:
        return context.site(site_id)
    except KeyError:
        return None


def zone_of(context: RuleContext, site_id: str) -> ZoneInfo:
    site = site_of(context, site_id)
    return site.zone if site is not None else ZoneInfo("UTC")


def residents_of(context: RuleContext, event: DeviceEvent) -> list[ResidentFacts]:
    """Residents an event tells about: the device's own resident, else its room's. A device tied to neither
    (a main exit, a hall sensor) speaks for everyone only in a private home, not in a care home."""
    site = site_of(context, event.site)
    if site is None:
        return []
    if event.resident is None and event.room is None and site.kind != "home":
        return []
    return context.residents_watched_by(event.site, event.room, event.resident)


def subject_of_event(context: RuleContext, event: DeviceEvent) -> tuple[str, str | None]:
    """(subject, resident id) for an event about one person: the resident when exactly one is known, else
    the device."""
    residents = residents_of(context, event)
    if event.resident is not None and any(r.id == event.resident for r in residents):
        return f"resident:{event.resident}", event.resident
    if len(residents) == 1:
        return f"resident:{residents[0].id}", residents[0].id
    return f"device:{event.device_id}", None


def flag(value: float | bool | str | None, *, none_means: bool | None = None) -> bool | None:
    """A reported on/off value; `none_means` for kinds whose bare report means "true" (tamper, motion)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "on", "1", "yes"):
            return True
        if text in ("false", "off", "0", "no"):
            return False
        return None
    return none_means


def number(value: float | bool | str | None) -> float | None:
    """A numeric reading, or None for booleans, text and NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    reading = float(value)
    return reading if reading == reading and abs(reading) != float("inf") else None


#: The kinds `SignsOfLife.observe` can count; the rules built on it read only these.
SIGN_OF_LIFE_KINDS = frozenset(
    {
        EventKind.CHECK_IN,
        EventKind.MOTION,
        EventKind.DOOR_OPEN,
        EventKind.DOOR_CLOSED,
        EventKind.PRESENCE,
        EventKind.BED_OCCUPIED,
    }
)


class SignsOfLife:
    """Decides which events show a person up and about: motion, a check-in, a door or bed changing state,
    presence appearing. State reports (doors, presence, beds) count only when the state changes: Zigbee2MQTT
    repeats them in every periodic report, and a repeated "door closed" is not somebody moving."""

    def __init__(self) -> None:
        self._state: dict[tuple[str, str], bool] = {}

    def observe(self, event: DeviceEvent) -> bool:
        kind = event.kind
        if kind is EventKind.CHECK_IN:
            return True
        if kind is EventKind.MOTION:
            return flag(event.value, none_means=True) is True
        if kind in (EventKind.DOOR_OPEN, EventKind.DOOR_CLOSED):
            return self._changed(event.device_id, "door", kind is EventKind.DOOR_OPEN)
        if kind is EventKind.PRESENCE:
            present = flag(event.value, none_means=True)
            if present is None:
                return False
            return self._changed(event.device_id, "presence", present) and present
        if kind is EventKind.BED_OCCUPIED:
            occupied = flag(event.value)
            return occupied is not None and self._changed(event.device_id, "bed", occupied)
        return False

    def _changed(self, device_id: str, what: str, state: bool) -> bool:
        previous = self._state.get((device_id, what))
        self._state[(device_id, what)] = state
        return previous != state

    def snapshot(self, devices: Container[str]) -> list[list[Any]]:
        """The last state of each device still in `devices`: without it, the first repeated "door closed"
        after a restart would count as somebody moving and hide an inactivity."""
        return [[device, what, state] for (device, what), state in self._state.items() if device in devices]

    @staticmethod
    def restored(rows: object) -> SignsOfLife:
        if not isinstance(rows, list):
            raise TypeError("signs of life: not a list")
        signs = SignsOfLife()
        for device, what, state in rows:
            if not isinstance(device, str) or not isinstance(what, str) or not isinstance(state, bool):
                raise TypeError(f"signs of life: {device!r}, {what!r}, {state!r}")
            signs._state[(device, what)] = state
        return signs


def synthetic_event(
    rule: str,
    key: str,
    now: datetime,
    *,
    site: str,
    resident: str | None = None,
    room: str | None = None,
    last: DeviceEvent | None = None,
    kind: EventKind = EventKind.HEARTBEAT,
    device_id: str = NO_DEVICE,
    device_type: DeviceType = DeviceType.OTHER,
) -> DeviceEvent:
    """The event a timer-based alarm carries: it describes the subject (the last device heard from, else
    `device_id`) and happens `now`. The message key is unique per rule, incident and moment."""
    extra: dict[str, float | bool | str] = {"synthetic": True}
    if last is not None:
        device_id, device_type, kind = last.device_id, last.device_type, last.kind
        room = room if room is not None else last.room
        extra["last_event_at"] = last.received_at.isoformat()
    return DeviceEvent(
        device_id=device_id,
        device_type=device_type,
        site=site,
        room=room,
        resident=resident,
        kind=kind,
        value=None,
        ts=now,
        received_at=now,
        message_key=f"rule:{rule}:{key}:{now.isoformat()}",
        extra=extra,
    )


def flagged_resident(context: RuleContext, event: DeviceEvent, risk: str) -> ResidentFacts | None:
    """The one resident an event is about, when that resident carries the risk flag `risk`."""
    _subject, resident_id = subject_of_event(context, event)
    resident = context.resident(resident_id)
    return resident if resident is not None and risk in resident.risks else None
