"""Immediate alarms: SOS and smoke. A repeated trigger joins the open incident through its key."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from devices.model import DeviceEvent, EventKind
from rules.model import AlarmDecision, Decision, Severity


def subject_of(event: DeviceEvent) -> str:
    """Who an alarm is about: the resident when known, else the device."""
    return f"resident:{event.resident}" if event.resident else f"device:{event.device_id}"


class SosRule:
    name = "sos"

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        if event.kind is not EventKind.SOS:
            return ()
        return (AlarmDecision(self.name, Severity.CRITICAL, f"sos:{event.site}:{subject_of(event)}", event),)

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        return ()


class SmokeRule:
    name = "smoke"

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        # Smoke clearing does not end the incident: a person must confirm the fire is out.
        if event.kind is not EventKind.SMOKE or event.value is False:
            return ()
        place = event.room or event.device_id
        return (AlarmDecision(self.name, Severity.CRITICAL, f"smoke:{event.site}:{place}", event),)

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        return ()
