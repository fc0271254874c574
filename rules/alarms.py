"""Immediate alarms: SOS and smoke. A repeated trigger joins the open incident through its key."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from devices.model import DeviceEvent, DeviceType, EventKind
from rules.model import AlarmDecision, Decision, DeviceTestDecision, Severity


def subject_of(event: DeviceEvent) -> str:
    """Who an alarm is about: the resident when known, else the device."""
    return f"resident:{event.resident}" if event.resident else f"device:{event.device_id}"


class SosRule:
    name = "sos"

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        if event.kind is not EventKind.SOS:
            return ()
        # `event.test` is ignored on purpose: a pendant has no self-test, and a real press taken for a
        # test would be lost, which is worse than a false alarm.
        return (AlarmDecision(self.name, Severity.CRITICAL, f"sos:{event.site}:{subject_of(event)}", event),)

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        return ()


class SmokeRule:
    name = "smoke"

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        # Smoke clearing does not end the incident: a person must confirm the fire is out.
        if event.kind is not EventKind.SMOKE or event.value is False:
            return ()
        if event.test and event.device_type is DeviceType.SMOKE_DETECTOR:
            # The test button proves the detector works; waking the night staff for it would teach
            # them to ignore smoke alarms. Other devices have no such test: their smoke is smoke.
            return (DeviceTestDecision(self.name, event),)
        place = event.room or event.device_id
        return (AlarmDecision(self.name, Severity.CRITICAL, f"smoke:{event.site}:{place}", event),)

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        return ()
