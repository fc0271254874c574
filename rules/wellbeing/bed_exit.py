"""Bed exit at night: a resident got up and has not come back to bed in time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from devices.model import DeviceEvent, EventKind
from rules.context import RuleContext
from rules.model import AlarmDecision, Decision, Severity
from rules.state import (
    DevicesKept,
    JsonDict,
    event_from_json,
    event_to_json,
    mapping,
    residents_kept,
    subject_kept,
)
from rules.wellbeing.common import (
    WellbeingSource,
    config_lookup,
    flag,
    flagged_resident,
    subject_of_event,
    synthetic_event,
    zone_of,
)


class BedExitRule:
    """Only the change from in bed (or unknown) to out of bed starts the timer, and only at night (judged on
    the gateway's clock in the site's zone); Zigbee2MQTT repeats the state in periodic reports. Back in bed
    stops the timer. Timers survive a restart (`restore`)."""

    name = "bed_exit"
    #: The event kinds this rule reads (rules/engine.py dispatches by them).
    kinds = frozenset({EventKind.BED_OCCUPIED})
    state_version = 1

    def __init__(self, context: RuleContext, config: WellbeingSource) -> None:
        self._context = context
        self._config = config_lookup(config)
        #: Subject -> last known bed state.
        self._in_bed: dict[str, bool] = {}
        #: Subject -> (resident id, the event that left the bed) for timers still running.
        self._out_since: dict[str, tuple[str | None, DeviceEvent]] = {}

    def snapshot(self) -> JsonDict:
        residents, devices = residents_kept(self._context), DevicesKept(self._context)
        return {
            "in_bed": {s: v for s, v in self._in_bed.items() if subject_kept(s, residents, devices)},
            "out_since": [
                {"subject": s, "resident": resident, "event": event_to_json(event)}
                for s, (resident, event) in self._out_since.items()
                if subject_kept(s, residents, devices)
            ],
        }

    def restore(self, state: Mapping[str, Any], *, saved_at: datetime, now: datetime) -> None:
        in_bed = {str(s): v for s, v in mapping(state["in_bed"]).items() if isinstance(v, bool)}
        out_since: dict[str, tuple[str | None, DeviceEvent]] = {}
        for item in state["out_since"]:
            resident = mapping(item)["resident"]
            if resident is not None and not isinstance(resident, str):
                raise TypeError(f"bed exit resident {resident!r}")
            out_since[str(item["subject"])] = (resident, event_from_json(mapping(item["event"])))
        self._in_bed, self._out_since = in_bed, out_since

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        occupied = flag(event.value) if event.kind is EventKind.BED_OCCUPIED else None
        if occupied is None:
            return ()
        subject, resident = subject_of_event(self._context, event)
        was_in_bed = self._in_bed.get(subject)
        self._in_bed[subject] = occupied
        if occupied:
            self._out_since.pop(subject, None)
        elif (
            was_in_bed is not False and self._at_night(event, resident) and not self._left_to_fall_rule(event)
        ):
            self._out_since[subject] = (resident, event)
        return ()

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        decisions: list[Decision] = []
        for subject, (resident, left) in list(self._out_since.items()):
            limit = timedelta(minutes=self._config(left.site).for_resident(resident).bed_exit.minutes)
            if now - left.received_at >= limit:
                del self._out_since[subject]
                decisions.append(self._alarm(subject, resident, left, now))
        return decisions

    def _left_to_fall_rule(self, event: DeviceEvent) -> bool:
        """Residents flagged `falling_from_bed` are alarmed faster by rules/wellbeing/falling_from_bed.py."""
        return (
            self._config(event.site).falling_from_bed.enabled
            and flagged_resident(self._context, event, "falling_from_bed") is not None
        )

    def _at_night(self, event: DeviceEvent, resident: str | None) -> bool:
        rules = self._config(event.site).for_resident(resident).bed_exit
        local = event.received_at.astimezone(zone_of(self._context, event.site))
        return rules.enabled and rules.night.contains(local.time())

    def _alarm(self, subject: str, resident: str | None, left: DeviceEvent, now: datetime) -> AlarmDecision:
        key = f"bed_exit:{left.site}:{subject}"
        zone = zone_of(self._context, left.site)
        event = synthetic_event(self.name, key, now, site=left.site, resident=resident, last=left)
        evidence: dict[str, str | float | bool] = {
            "left_bed_at": left.received_at.astimezone(zone).strftime("%H:%M"),
            "minutes_out_of_bed": round((now - left.received_at).total_seconds() / 60, 1),
        }
        return AlarmDecision(self.name, Severity.HIGH, key, event, evidence)
