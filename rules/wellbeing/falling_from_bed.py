"""Falling from bed (GB/T 38600): a resident flagged `falling_from_bed` getting up at night.

For them getting up alone is the danger, so the alarm does not wait for "not back in 30 minutes" as the
general bed-exit rule does: it is raised at once, or after a short grace (`falling_from_bed.grace_s`).
The general rule leaves these residents to this one, so nobody is alarmed twice for one night walk.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from devices.model import DeviceEvent, EventKind
from rules.context import RuleContext
from rules.model import AlarmDecision, Decision, Severity
from rules.wellbeing.common import WellbeingSource, config_lookup, flag, flagged_resident, zone_of
from rules.wellbeing.config import FallingFromBedConfig

RISK = "falling_from_bed"


class FallingFromBedRule:
    name = "falling_from_bed"
    #: The event kinds this rule reads (rules/engine.py dispatches by them).
    kinds = frozenset({EventKind.BED_OCCUPIED})

    def __init__(self, context: RuleContext, config: WellbeingSource) -> None:
        self._context = context
        self._config = config_lookup(config)
        #: Resident -> last known bed state.
        self._in_bed: dict[str, bool] = {}
        #: Resident -> the event that left the bed, while the grace runs.
        self._leaving: dict[str, DeviceEvent] = {}

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        occupied = flag(event.value) if event.kind is EventKind.BED_OCCUPIED else None
        resident = flagged_resident(self._context, event, RISK) if occupied is not None else None
        if resident is None:
            return ()
        was_in_bed = self._in_bed.get(resident.id)
        self._in_bed[resident.id] = bool(occupied)
        if occupied:
            self._leaving.pop(resident.id, None)
            return ()
        settings = self._config(event.site).falling_from_bed
        if was_in_bed is False or not settings.enabled or not self._at_night(event, settings):
            return ()
        if settings.grace_s == 0:
            return (self._alarm(resident.id, event, event.received_at),)
        self._leaving[resident.id] = event
        return ()

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        decisions: list[Decision] = []
        for resident, left in list(self._leaving.items()):
            if now - left.received_at >= timedelta(seconds=self._config(left.site).falling_from_bed.grace_s):
                del self._leaving[resident]
                decisions.append(self._alarm(resident, left, now))
        return decisions

    def _at_night(self, event: DeviceEvent, settings: FallingFromBedConfig) -> bool:
        # The gateway's clock in the site's zone, as for every night window: device clocks drift.
        return settings.night.contains(
            event.received_at.astimezone(zone_of(self._context, event.site)).time()
        )

    def _alarm(self, resident: str, left: DeviceEvent, now: datetime) -> AlarmDecision:
        zone = zone_of(self._context, left.site)
        evidence: dict[str, str | float | bool] = {
            "left_bed_at": left.received_at.astimezone(zone).strftime("%H:%M"),
            "seconds_out_of_bed": round((now - left.received_at).total_seconds(), 1),
        }
        key = f"falling_from_bed:{left.site}:resident:{resident}"
        return AlarmDecision(self.name, Severity.HIGH, key, left, evidence)
