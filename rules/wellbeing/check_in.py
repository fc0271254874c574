"""Missed check-in: a resident who promised to say "I am OK" each morning has not done so by the deadline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from devices.model import DeviceEvent, EventKind
from rules.context import ResidentFacts, RuleContext
from rules.model import AlarmDecision, Decision, Severity
from rules.state import JsonDict, event_from_json, event_to_json, mapping, moment, residents_kept
from rules.wellbeing.common import (
    WellbeingSource,
    all_residents,
    config_lookup,
    flag,
    resident_watched_since,
    residents_of,
    synthetic_event,
    zone_of,
)


class MissedCheckInRule:
    """Raises at most once per local day. A day whose deadline passed before the gateway started is not
    judged (nobody was listening); after a restart earlier in the day, a check-in sent before the restart
    is known only if its snapshot was kept (`restore`); the evidence says since when the gateway was
    watching."""

    name = "missed_check_in"
    #: The event kinds this rule reads (rules/engine.py dispatches by them).
    kinds = frozenset({EventKind.CHECK_IN})
    state_version = 1

    def __init__(self, context: RuleContext, config: WellbeingSource, start: datetime) -> None:
        self._context = context
        self._config = config_lookup(config)
        self._start = start
        #: Resident -> local date of their latest check-in.
        self._checked_in: dict[str, date] = {}
        self._last_event: dict[str, DeviceEvent] = {}
        #: Resident -> local date already alarmed.
        self._alarmed: dict[str, date] = {}

    def snapshot(self) -> JsonDict:
        residents = residents_kept(self._context)
        return {
            "watching_since": self._start.isoformat(),
            "checked_in": {r: d.isoformat() for r, d in self._checked_in.items() if r in residents},
            "last_event": {r: event_to_json(e) for r, e in self._last_event.items() if r in residents},
            "alarmed": {r: d.isoformat() for r, d in self._alarmed.items() if r in residents},
        }

    def restore(self, state: Mapping[str, Any], *, saved_at: datetime, now: datetime) -> None:
        start = moment(state["watching_since"])
        checked_in = {r: _date(d) for r, d in mapping(state["checked_in"]).items()}
        last_event = {r: event_from_json(mapping(e)) for r, e in mapping(state["last_event"]).items()}
        alarmed = {r: _date(d) for r, d in mapping(state["alarmed"]).items()}
        self._start = min(start, self._start)
        self._checked_in, self._last_event, self._alarmed = checked_in, last_event, alarmed

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        if event.kind is not EventKind.CHECK_IN or flag(event.value, none_means=True) is False:
            return ()
        day = event.received_at.astimezone(zone_of(self._context, event.site)).date()
        for resident in residents_of(self._context, event):
            self._checked_in[resident.id] = max(day, self._checked_in.get(resident.id, day))
            self._last_event[resident.id] = event
        return ()

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        decisions: list[Decision] = []
        for resident in all_residents(self._context):
            day = self._missed_day(resident, now)
            if day is not None:
                self._alarmed[resident.id] = day
                decisions.append(self._alarm(resident, now))
        return decisions

    def _missed_day(self, resident: ResidentFacts, now: datetime) -> date | None:
        """The local date whose check-in is overdue, or None."""
        rules = self._config(resident.site).for_resident(resident.id).check_in
        if not rules.enabled:
            return None
        local = now.astimezone(zone_of(self._context, resident.site))
        today = local.date()
        deadline = datetime.combine(today, rules.by, tzinfo=local.tzinfo)
        if local < deadline or resident_watched_since(self._context, resident.id, self._start) > deadline:
            return None
        if self._checked_in.get(resident.id) == today or self._alarmed.get(resident.id) == today:
            return None
        return today

    def _alarm(self, resident: ResidentFacts, now: datetime) -> AlarmDecision:
        key = f"check_in:{resident.site}:resident:{resident.id}"
        zone = zone_of(self._context, resident.site)
        local = now.astimezone(zone)
        midnight = datetime.combine(local.date(), datetime.min.time(), tzinfo=zone)
        event = synthetic_event(
            self.name,
            key,
            now,
            site=resident.site,
            resident=resident.id,
            room=resident.room,
            last=self._last_event.get(resident.id),
            kind=EventKind.CHECK_IN,
        )
        by = self._config(resident.site).for_resident(resident.id).check_in.by
        evidence: dict[str, str | float | bool] = {
            "due_by": by.strftime("%H:%M"),
            "local_date": local.date().isoformat(),
            "watching_since": max(resident_watched_since(self._context, resident.id, self._start), midnight)
            .astimezone(zone)
            .isoformat(),
        }
        last_day = self._checked_in.get(resident.id)
        if last_day is not None:
            evidence["last_check_in_date"] = last_day.isoformat()
        return AlarmDecision(self.name, Severity.MEDIUM, key, event, evidence)


def _date(text: object) -> date:
    if not isinstance(text, str):
        raise TypeError(f"not a date: {text!r}")
    return date.fromisoformat(text)
