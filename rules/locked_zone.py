"""Locked dementia care zones: an exit of the zone opening is an alarm at any hour.

Residents of a locked zone may not leave it unaccompanied by day either, so unlike the night-door rule
this one neither looks at the clock nor at who is flagged at risk of wandering: the zone is the risk.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from devices.model import DeviceEvent, EventKind
from rules.context import RuleContext
from rules.model import AlarmDecision, Decision, Severity


class LockedZoneExitRule:
    name = "locked_zone_exit"

    def __init__(self, context: RuleContext) -> None:
        self._context = context
        #: Exits last reported open: Zigbee2MQTT repeats `contact` in every report, so only the change
        #: from closed (or unknown) to open is an opening.
        self._open: set[str] = set()

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        if event.kind is EventKind.DOOR_CLOSED:
            self._open.discard(event.device_id)
        if event.kind is not EventKind.DOOR_OPEN or event.device_id in self._open:
            return ()
        self._open.add(event.device_id)
        zone = self._context.locked_zone_exit(event.site, event.device_id)
        if zone is None:
            return ()
        local = event.received_at.astimezone(self._context.site(event.site).zone)
        evidence: dict[str, str | float | bool] = {"zone": zone, "local_time": local.strftime("%H:%M")}
        key = f"locked_zone_exit:{event.site}:{event.device_id}"
        return (AlarmDecision(self.name, Severity.HIGH, key, event, evidence),)

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        return ()
