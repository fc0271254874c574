"""Inactivity: nobody has seen a sign of life from a resident for hours, during their active hours."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from devices.model import DeviceEvent, EventKind
from rules.context import ResidentFacts, RuleContext
from rules.model import AlarmDecision, Decision, Severity
from rules.state import (
    DevicesKept,
    JsonDict,
    event_from_json,
    event_to_json,
    mapping,
    moment,
    residents_kept,
    texts,
)
from rules.wellbeing.common import (
    SIGN_OF_LIFE_KINDS,
    SignsOfLife,
    WellbeingSource,
    all_residents,
    config_lookup,
    resident_watched_since,
    residents_of,
    synthetic_event,
    zone_of,
)


class InactivityRule:
    """Raises once per quiet spell; the next sign of life re-arms it. Residents not heard from since the
    gateway started are timed from `start`. The last signs of life survive a restart (`restore`): the
    timer goes on from the last one heard before it, and a spell already alarmed is not alarmed again."""

    name = "inactivity"
    #: The event kinds this rule reads (rules/engine.py dispatches by them).
    kinds = SIGN_OF_LIFE_KINDS
    state_version = 1

    def __init__(self, context: RuleContext, config: WellbeingSource, start: datetime) -> None:
        self._context = context
        self._config = config_lookup(config)
        self._start = start
        self._signs = SignsOfLife()
        self._last_sign: dict[str, DeviceEvent] = {}
        self._alarmed: set[str] = set()
        #: When this rule took back a snapshot: a quiet spell older than that spans the restart.
        self._restored_at: datetime | None = None

    def snapshot(self) -> JsonDict:
        residents = residents_kept(self._context)
        return {
            "watching_since": self._start.isoformat(),
            "signs": self._signs.snapshot(DevicesKept(self._context)),
            "last_sign": {r: event_to_json(e) for r, e in self._last_sign.items() if r in residents},
            "alarmed": sorted(self._alarmed & residents),
        }

    def restore(self, state: Mapping[str, Any], *, saved_at: datetime, now: datetime) -> None:
        start = moment(state["watching_since"])
        signs = SignsOfLife.restored(state["signs"])
        last = {resident: event_from_json(mapping(e)) for resident, e in mapping(state["last_sign"]).items()}
        alarmed = set(texts(state["alarmed"]))
        # Watched without a break since the earlier start: the restart is not a sign of life.
        self._start = min(start, self._start)
        self._signs, self._last_sign, self._alarmed = signs, last, alarmed
        self._restored_at = now

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        if not self._signs.observe(event):
            return ()
        for resident in residents_of(self._context, event):
            last = self._last_sign.get(resident.id)
            if last is None or event.received_at >= last.received_at:
                self._last_sign[resident.id] = event
            self._alarmed.discard(resident.id)
        return ()

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        decisions: list[Decision] = []
        for resident in all_residents(self._context):
            if resident.id not in self._alarmed and self._overdue(resident, now):
                self._alarmed.add(resident.id)
                decisions.append(self._alarm(resident, now))
        return decisions

    def last_sign_of_life(self, resident_id: str) -> datetime:
        last = self._last_sign.get(resident_id)
        return (
            last.received_at
            if last is not None
            else resident_watched_since(self._context, resident_id, self._start)
        )

    def _overdue(self, resident: ResidentFacts, now: datetime) -> bool:
        rules = self._config(resident.site).for_resident(resident.id).inactivity
        if not rules.enabled:
            return False
        local = now.astimezone(zone_of(self._context, resident.site))
        if not rules.active_hours.contains(local.time()):
            return False
        return now - self.last_sign_of_life(resident.id) >= timedelta(hours=rules.hours)

    def _alarm(self, resident: ResidentFacts, now: datetime) -> AlarmDecision:
        key = f"inactivity:{resident.site}:resident:{resident.id}"
        zone = zone_of(self._context, resident.site)
        since = self.last_sign_of_life(resident.id)
        last = self._last_sign.get(resident.id)
        event = synthetic_event(
            self.name,
            key,
            now,
            site=resident.site,
            resident=resident.id,
            room=resident.room,
            last=last,
            kind=EventKind.MOTION,
        )
        evidence: dict[str, str | float | bool] = {
            "hours_without_sign_of_life": round((now - since).total_seconds() / 3600, 2),
            "threshold_hours": self._config(resident.site).for_resident(resident.id).inactivity.hours,
            "last_sign_of_life": since.astimezone(zone).isoformat(),
            "local_time": now.astimezone(zone).strftime("%H:%M"),
            "since_gateway_start": last is None,
        }
        if self._restored_at is not None and since < self._restored_at:
            # Signs of life sent while the gateway was down were not heard: the responder should know.
            evidence["gateway_restarted_at"] = self._restored_at.astimezone(zone).isoformat()
        return AlarmDecision(self.name, Severity.HIGH, key, event, evidence)
