"""Activity baseline: a resident far less active today than on their usual days, hour for hour.

Per resident, signs of life are counted per site-local hour. History is a (days, 24) array, oldest day
first, holding only days watched from midnight (a day the gateway started part-way through would read as
a quiet day). At each local hour's end the activity so far today is compared with the same hours of the
previous days: z = (today - mean) / max(std, std_floor).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from devices.model import DeviceEvent, EventKind
from rules.context import ResidentFacts, RuleContext
from rules.model import AlarmDecision, Decision, Severity
from rules.wellbeing.common import (
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
        midnight = datetime.combine(day, time(0), tzinfo=zone)
        since = resident_watched_since(self._context, resident.id, self._start)
        if since <= midnight:
            return 0
        local_start = since.astimezone(zone)
        if local_start.date() > day:
            return HOURS
        whole_hour = local_start.minute == 0 and local_start.second == 0 and local_start.microsecond == 0
        return local_start.hour if whole_hour else local_start.hour + 1

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
