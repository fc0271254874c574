"""Pressure sores (GB/T 38600): residents flagged `pressure_sores` are turned every few hours.

The bed sensor reports how the resident lies (`bed_position`). When it has seen no change of position
for `repositioning.hours` while the resident is in bed, the carer gets a task (a low-severity incident).
A change of position seen by the sensor closes the task ("repositioned", audited as the sensor's) and
restarts the timer; so does the carer marking it done on the console. With no change the reminder
comes again every interval (it joins the task while it is open).

Due reminders are found on the clock's tick and on every report from the bed, so a bed that reports
often is judged on its own reports' receive times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from devices.model import EARLIEST_EVENT_TIME, DeviceEvent, DeviceType, EventKind
from rules.context import RuleContext
from rules.model import AlarmDecision, CancelDecision, Decision, Severity
from rules.wellbeing.common import WellbeingSource, config_lookup, flag, flagged_resident, synthetic_event

RISK = "pressure_sores"
#: The outcome a task closed by the sensor gets (gateway.incidents.schema.Outcome.REPOSITIONED).
REPOSITIONED = "repositioned"


@dataclass(slots=True)
class _Bed:
    last: DeviceEvent
    position: str | None
    #: When the next reminder is due; None while the resident is out of bed.
    due_at: datetime | None
    #: A reminder went out since the last change of position.
    reminded: bool = False


class RepositioningRule:
    name = "repositioning_due"
    #: The event kinds this rule reads (rules/engine.py dispatches by them).
    kinds = frozenset({EventKind.BED_POSITION, EventKind.BED_OCCUPIED, EventKind.PRESENCE})

    def __init__(self, context: RuleContext, config: WellbeingSource) -> None:
        self._context = context
        self._config = config_lookup(config)
        #: Resident -> their bed, once it has reported.
        self._beds: dict[str, _Bed] = {}

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        in_bed = _in_bed(event)
        if event.kind is not EventKind.BED_POSITION and in_bed is None:
            return ()
        resident = flagged_resident(self._context, event, RISK)
        if resident is None or not self._config(event.site).repositioning.enabled:
            return ()
        at, bed = event.received_at, self._beds.get(resident.id)
        changed = (
            bed is not None and event.kind is EventKind.BED_POSITION and str(event.value) != bed.position
        )
        # A change of position that comes late closes the task; it does not first raise one.
        decisions = self._due(resident.id, at) if bed is not None and not changed else []
        interval = self._interval(event.site)
        if bed is None:
            position = str(event.value) if event.kind is EventKind.BED_POSITION else None
            self._beds[resident.id] = _Bed(event, position, at + interval if in_bed is not False else None)
        elif event.kind is EventKind.BED_POSITION:
            bed.last = event
            if changed:
                decisions += self._changed(resident.id, bed, event, interval)
        else:
            bed.last = event
            if not in_bed:
                bed.due_at = None
            elif bed.due_at is None:
                # Back in bed: lying starts now.
                bed.due_at = at + interval
        return decisions

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        return [decision for resident in list(self._beds) for decision in self._due(resident, now)]

    def _due(self, resident: str, now: datetime) -> list[Decision]:
        bed = self._beds[resident]
        if bed.due_at is None or now < bed.due_at:
            return []
        if self._context.resident(resident) is None:
            del self._beds[resident]  # left the directory
            return []
        bed.reminded = True
        bed.due_at = now + self._interval(bed.last.site)
        key = _key(bed.last.site, resident)
        event = synthetic_event(self.name, key, now, site=bed.last.site, resident=resident, last=bed.last)
        evidence: dict[str, str | float | bool] = {"hours": self._config(bed.last.site).repositioning.hours}
        if bed.position is not None:
            evidence["position"] = bed.position
        return [AlarmDecision(self.name, Severity.LOW, key, event, evidence)]

    def _changed(self, resident: str, bed: _Bed, event: DeviceEvent, interval: timedelta) -> list[Decision]:
        bed.position = str(event.value)
        bed.due_at = event.received_at + interval
        if not bed.reminded:
            return []
        bed.reminded = False
        key = _key(event.site, resident)
        return [CancelDecision(self.name, key, event, REPOSITIONED, EARLIEST_EVENT_TIME)]

    def _interval(self, site: str) -> timedelta:
        return timedelta(hours=self._config(site).repositioning.hours)


def _key(site: str, resident: str) -> str:
    return f"repositioning_due:{site}:resident:{resident}"


def _in_bed(event: DeviceEvent) -> bool | None:
    """A bed's occupancy: native `bed_occupied`, or a Zigbee2MQTT bed mat's `presence`."""
    if event.kind is EventKind.BED_OCCUPIED or (
        event.kind is EventKind.PRESENCE and event.device_type is DeviceType.BED_SENSOR
    ):
        return flag(event.value)
    return None
