"""Activity baseline: a resident far less active today than on their usual days, hour for hour.

Per resident, signs of life are counted per site-local hour. History is a (days, 24) array, oldest day
first, holding only days watched from midnight (a day the gateway started part-way through would read as
a quiet day). At each local hour's end the activity so far today is compared with the same hours of the
previous days: z = (today - mean) / max(std, std_floor).

The counts survive a restart (`snapshot`, `restore`). When the gateway was down longer than
`UNWATCHED_GAP`, the day under way is judged only from the next whole hour on, like a day the gateway
started in (the hours it was down would read as quiet ones), and it does not join the history. With no
snapshot, `seed_from_signs` builds the history from the signs of life kept in the sensor log.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from devices.model import DeviceEvent, EventKind
from rules.context import ResidentFacts, RuleContext
from rules.model import AlarmDecision, Decision, Severity
from rules.state import DevicesKept, JsonDict, event_from_json, event_to_json, mapping, residents_kept
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
from rules.wellbeing.config import BaselineConfig

HOURS = 24
#: A restart shorter than this (the snapshot's age when it is restored) leaves the day under way whole.
UNWATCHED_GAP = timedelta(minutes=10)


@dataclass(slots=True)
class _Activity:
    history: npt.NDArray[np.float64]
    #: How many of the latest rows of `history` hold real days.
    known_days: int
    day: date
    today: npt.NDArray[np.float64]
    #: First local hour of `day` that was watched in full.
    first_hour: int
    #: Hours of `day` already compared (so each hour's end is judged once).
    judged_hours: int = 0
    alarmed_day: date | None = None
    last_event: DeviceEvent | None = None


@dataclass(frozen=True, slots=True)
class Comparison:
    hours: tuple[int, int]
    today: float
    mean: float
    std: float
    z: float
    days: int


class ActivityBaselineRule:
    name = "activity_baseline"
    #: The event kinds this rule reads (rules/engine.py dispatches by them).
    kinds = SIGN_OF_LIFE_KINDS
    state_version = 1

    def __init__(self, context: RuleContext, config: WellbeingSource, start: datetime) -> None:
        self._context = context
        self._config = config_lookup(config)
        self._start = start
        self._signs = SignsOfLife()
        self._activity: dict[str, _Activity] = {}

    def seed(self, resident_id: str, day_counts: npt.ArrayLike) -> None:
        """Load past activity (days, 24), oldest first, the last row being yesterday; replaces the history."""
        counts = np.asarray(day_counts, dtype=np.float64)
        if counts.ndim != 2 or counts.shape[1] != HOURS:
            raise ValueError(f"day_counts must have shape (days, 24), not {counts.shape}")
        if not np.all(np.isfinite(counts)) or np.any(counts < 0):
            raise ValueError("day_counts must be finite and not negative")
        activity = self._state(self._resident(resident_id), self._start)
        days = activity.history.shape[0]
        kept = counts[-days:]
        activity.history[:] = 0.0
        if len(kept):
            activity.history[-len(kept) :] = kept
        activity.known_days = len(kept)

    def without_history(self) -> list[ResidentFacts]:
        """Residents with the rule on and no day of history (nothing restored, nothing seeded)."""
        return [
            resident
            for resident in all_residents(self._context)
            if self._config(resident.site).for_resident(resident.id).baseline.enabled
            and (resident.id not in self._activity or self._activity[resident.id].known_days == 0)
        ]

    def history_days(self, resident: ResidentFacts) -> int:
        """How many days of history the resident's baseline keeps."""
        return self._config(resident.site).for_resident(resident.id).baseline.days

    def seed_from_signs(self, events: Iterable[DeviceEvent], now: datetime) -> dict[str, int]:
        """Seed the residents `without_history` from past events (the sensor log, any order): signs of life
        per local hour of the whole days before today, as the rule would have counted them. A day with no
        sign of life at all is left out: the sensors or the gateway were off, it is not a quiet day.
        Returns resident -> days seeded."""
        wanted = {resident.id: resident for resident in self.without_history()}
        counts: dict[str, dict[date, npt.NDArray[np.float64]]] = defaultdict(dict)
        signs = SignsOfLife()
        for event in sorted(events, key=lambda e: e.received_at):
            if not signs.observe(event):
                continue
            for resident in residents_of(self._context, event):
                if resident.id in wanted:
                    local = event.received_at.astimezone(zone_of(self._context, resident.site))
                    counts[resident.id].setdefault(local.date(), np.zeros(HOURS))[local.hour] += 1
        seeded: dict[str, int] = {}
        for resident_id, days in counts.items():
            resident = wanted[resident_id]
            today = now.astimezone(zone_of(self._context, resident.site)).date()
            span = self.history_days(resident)
            whole = sorted(d for d in days if today - timedelta(days=span) <= d < today)
            if whole:
                self.seed(resident_id, np.vstack([days[d] for d in whole]))
                seeded[resident_id] = len(whole)
        return seeded

    def snapshot(self) -> JsonDict:
        residents = residents_kept(self._context)
        return {
            "signs": self._signs.snapshot(DevicesKept(self._context)),
            "activity": {r: _activity_to_json(a) for r, a in self._activity.items() if r in residents},
        }

    def restore(self, state: Mapping[str, Any], *, saved_at: datetime, now: datetime) -> None:
        signs = SignsOfLife.restored(state["signs"])
        whole_day = now - saved_at <= UNWATCHED_GAP
        activity: dict[str, _Activity] = {}
        for resident_id, data in mapping(state["activity"]).items():
            resident = self._context.resident(resident_id)
            if resident is not None:
                activity[resident.id] = self._restored(resident, mapping(data), whole_day, now)
        self._signs, self._activity = signs, activity

    def _restored(
        self, resident: ResidentFacts, data: Mapping[str, Any], whole_day: bool, now: datetime
    ) -> _Activity:
        days = self._config(resident.site).for_resident(resident.id).baseline.days
        known = _counts(data["history"], rows=None)[-days:]
        history = np.zeros((days, HOURS))
        if len(known):
            history[-len(known) :] = known
        alarmed = data["alarmed_day"]
        last = data["last_event"]
        activity = _Activity(
            history,
            len(known),
            date.fromisoformat(str(data["day"])),
            _counts([data["today"]], rows=1)[0],
            _hour(data["first_hour"]),
            _hour(data["judged_hours"]),
            date.fromisoformat(str(alarmed)) if alarmed is not None else None,
            event_from_json(mapping(last)) if last is not None else None,
        )
        if not whole_day:
            zone = zone_of(self._context, resident.site)
            activity.day = now.astimezone(zone).date()
            activity.today = np.zeros(HOURS)
            activity.first_hour = _first_hour_since(now, activity.day, zone)
            activity.judged_hours = 0
        return activity

    def history(self, resident_id: str) -> npt.NDArray[np.float64]:
        """The known days (oldest first), a copy."""
        activity = self._activity.get(resident_id)
        if activity is None:
            return np.zeros((0, HOURS))
        return activity.history[activity.history.shape[0] - activity.known_days :].copy()

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        if not self._signs.observe(event):
            return ()
        for resident in residents_of(self._context, event):
            activity = self._state(resident, event.received_at)
            local = event.received_at.astimezone(zone_of(self._context, resident.site))
            if local.date() == activity.day:
                activity.today[local.hour] += 1
            activity.last_event = event
        return ()

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        decisions: list[Decision] = []
        for resident in all_residents(self._context):
            rules = self._config(resident.site).for_resident(resident.id).baseline
            if not rules.enabled:
                continue
            activity = self._state(resident, now)
            hour = now.astimezone(zone_of(self._context, resident.site)).hour
            if hour <= activity.judged_hours:
                continue
            activity.judged_hours = hour
            comparison = _compare(activity, hour, rules)
            if comparison is None or comparison.z > rules.z_threshold or activity.alarmed_day == activity.day:
                continue
            activity.alarmed_day = activity.day
            decisions.append(self._alarm(resident, activity, comparison, now))
        return decisions

    def _resident(self, resident_id: str) -> ResidentFacts:
        resident = self._context.resident(resident_id)
        if resident is None:
            raise KeyError(f"unknown resident {resident_id!r}")
        return resident

    def _state(self, resident: ResidentFacts, now: datetime) -> _Activity:
        """The resident's counts, rolled forward to the local day of `now`."""
        zone = zone_of(self._context, resident.site)
        day = now.astimezone(zone).date()
        activity = self._activity.get(resident.id)
        if activity is None:
            days = self._config(resident.site).for_resident(resident.id).baseline.days
            activity = _Activity(
                np.zeros((days, HOURS)), 0, day, np.zeros(HOURS), self._first_hour(resident, day, zone)
            )
            self._activity[resident.id] = activity
        while activity.day < day:
            if activity.first_hour == 0:
                activity.history = np.vstack([activity.history[1:], activity.today])
                activity.known_days = min(activity.known_days + 1, activity.history.shape[0])
            activity.day += timedelta(days=1)
            activity.today = np.zeros(HOURS)
            activity.first_hour = self._first_hour(resident, activity.day, zone)
            activity.judged_hours = 0
        return activity

    def _first_hour(self, resident: ResidentFacts, day: date, zone: ZoneInfo) -> int:
        """First local hour of `day` watched from its beginning (24: none). A resident added to the
        directory while the gateway runs is watched from then, like one present at the start."""
        return _first_hour_since(resident_watched_since(self._context, resident.id, self._start), day, zone)

    def _alarm(
        self, resident: ResidentFacts, activity: _Activity, comparison: Comparison, now: datetime
    ) -> AlarmDecision:
        key = f"baseline:{resident.site}:resident:{resident.id}"
        event = synthetic_event(
            self.name,
            key,
            now,
            site=resident.site,
            resident=resident.id,
            room=resident.room,
            last=activity.last_event,
            kind=EventKind.MOTION,
        )
        first, last = comparison.hours
        evidence: dict[str, str | float | bool] = {
            "hours": f"{first:02d}:00-{last:02d}:00",
            "today": comparison.today,
            "usual_mean": round(comparison.mean, 2),
            "usual_std": round(comparison.std, 2),
            "z": round(comparison.z, 2),
            "history_days": comparison.days,
        }
        return AlarmDecision(self.name, Severity.MEDIUM, key, event, evidence)


def _first_hour_since(since: datetime, day: date, zone: ZoneInfo) -> int:
    """First local hour of `day` watched in full when watching began at `since` (24: none)."""
    midnight = datetime.combine(day, time(0), tzinfo=zone)
    if since <= midnight:
        return 0
    local_start = since.astimezone(zone)
    if local_start.date() > day:
        return HOURS
    whole_hour = local_start.minute == 0 and local_start.second == 0 and local_start.microsecond == 0
    return local_start.hour if whole_hour else local_start.hour + 1


def _activity_to_json(activity: _Activity) -> JsonDict:
    history = activity.history[activity.history.shape[0] - activity.known_days :]
    return {
        "history": history.tolist(),
        "day": activity.day.isoformat(),
        "today": activity.today.tolist(),
        "first_hour": activity.first_hour,
        "judged_hours": activity.judged_hours,
        "alarmed_day": activity.alarmed_day.isoformat() if activity.alarmed_day is not None else None,
        "last_event": event_to_json(activity.last_event) if activity.last_event is not None else None,
    }


def _counts(table: object, *, rows: int | None) -> npt.NDArray[np.float64]:
    """Counts per hour, (days, 24), finite and not negative; `rows` if it must have that many."""
    if not isinstance(table, list):
        raise TypeError("counts: not a list")
    counts = np.asarray(table, dtype=np.float64).reshape(-1, HOURS) if table else np.zeros((0, HOURS))
    if (rows is not None and counts.shape[0] != rows) or len(table) != counts.shape[0]:
        raise ValueError(f"counts: {len(table)} rows of 24 expected")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError("counts must be finite and not negative")
    return counts


def _hour(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= HOURS:
        raise ValueError(f"not an hour of the day: {value!r}")
    return value


def _compare(activity: _Activity, hour: int, rules: BaselineConfig) -> Comparison | None:
    """Today's activity over the watched hours before `hour` against the same hours of the known days;
    None when there is too little history or no whole hour to compare."""
    first = activity.first_hour
    days = activity.known_days
    if days < rules.min_days or hour <= first:
        return None
    history = activity.history
    past = history[history.shape[0] - days :, first:hour].sum(axis=1)
    mean = float(past.mean())
    std = max(float(past.std(ddof=1)), rules.std_floor)
    so_far = float(activity.today[first:hour].sum())
    return Comparison((first, hour), so_far, mean, std, (so_far - mean) / std, days)
