"""Doors: opened at night for a resident at risk of wandering, and doors left open too long."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from devices.model import DeviceEvent, EventKind
from rules.context import RuleContext
from rules.model import AlarmDecision, Decision, Severity
from rules.state import DevicesKept, JsonDict, event_from_json, event_to_json, mapping, texts


class DoorAtNightRule:
    name = "door_night"
    state_version = 1

    def __init__(self, context: RuleContext) -> None:
        self._context = context
        #: Doors last reported open. Zigbee2MQTT repeats `contact` in every periodic report, so only
        #: the change from closed (or unknown) to open is an opening.
        self._open: set[str] = set()

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        if event.kind is EventKind.DOOR_CLOSED:
            self._open.discard(event.device_id)
        if event.kind is not EventKind.DOOR_OPEN or event.device_id in self._open:
            return ()
        self._open.add(event.device_id)
        if self._context.locked_zone_exit(event.site, event.device_id) is not None:
            # A locked zone's exit alarms at every hour (rules/locked_zone.py), so not twice at night.
            return ()
        site = self._context.site(event.site)
        if not site.rules.door_at_night:
            return ()
        # Night is judged on the gateway's clock in the site's zone: device clocks drift.
        local = event.received_at.astimezone(site.zone)
        if not site.rules.night.contains(local.time()):
            return ()
        at_risk = [
            r
            for r in self._context.residents_watched_by(event.site, event.room, event.resident)
            if r.wandering_risk
        ]
        if not at_risk:
            return ()
        evidence: dict[str, str | float | bool] = {
            "local_time": local.strftime("%H:%M"),
            "residents_at_risk": ",".join(r.id for r in at_risk),
        }
        return (
            AlarmDecision(
                self.name, Severity.HIGH, f"door_night:{event.site}:{event.device_id}", event, evidence
            ),
        )

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        return ()

    def snapshot(self) -> JsonDict:
        # Kept so the first periodic "open" after a restart is not taken for a new opening at night.
        kept = DevicesKept(self._context)
        return {"open": sorted(device for device in self._open if device in kept)}

    def restore(self, state: Mapping[str, Any], *, saved_at: datetime, now: datetime) -> None:
        self._open = set(texts(state["open"]))


class DoorLeftOpenRule:
    """Raises when a door stays open past the site's limit. Its timers survive a restart (`snapshot`,
    `restore`): a door opened before it is timed from its opening, and one that came due while the
    gateway was down raises at the first tick."""

    name = "door_left_open"
    state_version = 1

    def __init__(self, context: RuleContext) -> None:
        self._context = context
        self._open_since: dict[str, DeviceEvent] = {}

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        if event.kind is EventKind.DOOR_CLOSED:
            self._open_since.pop(event.device_id, None)
        elif event.kind is EventKind.DOOR_OPEN and self._limit(event.site) > timedelta(0):
            self._open_since.setdefault(event.device_id, event)
        return ()

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        self._forget_unbound()
        due = [
            event for event in self._open_since.values() if now - event.received_at >= self._limit(event.site)
        ]
        decisions: list[Decision] = []
        for event in due:
            del self._open_since[event.device_id]
            minutes = round((now - event.received_at).total_seconds() / 60, 1)
            decisions.append(
                AlarmDecision(
                    self.name,
                    Severity.MEDIUM,
                    f"door_left_open:{event.site}:{event.device_id}",
                    event,
                    {"open_minutes": minutes},
                )
            )
        return decisions

    def snapshot(self) -> JsonDict:
        kept = DevicesKept(self._context)
        return {"open_since": [event_to_json(e) for d, e in self._open_since.items() if d in kept]}

    def restore(self, state: Mapping[str, Any], *, saved_at: datetime, now: datetime) -> None:
        events = [event_from_json(mapping(item)) for item in state["open_since"]]
        self._open_since = {event.device_id: event for event in events}

    def _forget_unbound(self) -> None:
        """A door whose device or site left the directory while open is no longer timed: nobody would
        know where to go, and the device's next report (if it is bound again) starts a new timer."""
        for device_id, event in list(self._open_since.items()):
            if self._context.device_left(device_id) or not self._context.has_site(event.site):
                del self._open_since[device_id]

    def _limit(self, site: str) -> timedelta:
        return timedelta(minutes=self._context.rules_for(site).door_left_open_minutes)
