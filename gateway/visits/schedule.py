"""When a plan's visits fall: pure functions of the plan, the site's time zone and a period."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.config import WEEKDAYS, CarelineConfig, ResidentConfig, VisitPlanConfig

#: The wellbeing checklist a carer fills at each visit (texts: `visits.check.<item>` in the catalogue).
CHECKLIST: tuple[str, ...] = ("eats_drinks", "takes_medicine", "home_safe_warm", "mood", "mobility")
CHECKLIST_ANSWERS: tuple[str, ...] = ("yes", "no", "concern")


@dataclass(frozen=True, slots=True)
class Occurrence:
    site: str
    resident: str
    plan: str
    carer: str
    planned_at: datetime
    due_by: datetime


def falls_on(plan: VisitPlanConfig, day: date) -> bool:
    if plan.weekdays:
        return WEEKDAYS[day.weekday()] in plan.weekdays
    # The plan's own validator makes sure both are there when there are no weekdays.
    every, starting = plan.every_days or 1, plan.starting or day
    return day >= starting and (day - starting).days % every == 0


def plan_occurrences(
    resident: ResidentConfig, plan: VisitPlanConfig, zone: ZoneInfo, start: datetime, end: datetime
) -> Iterator[Occurrence]:
    """The plan's visits planned in [start, end), in time order. Local days are walked so that a visit
    at 10:00 stays at 10:00 local time across a daylight-saving change."""
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    while day <= last:
        if falls_on(plan, day):
            # In UTC, as every time the store keeps and every clock tells.
            planned = datetime.combine(day, plan.at, zone).astimezone(UTC)
            if start <= planned < end:
                yield Occurrence(
                    resident.site,
                    resident.id,
                    plan.id,
                    plan.carer,
                    planned,
                    planned + timedelta(minutes=plan.window_min),
                )
        day += timedelta(days=1)


def occurrences(config: CarelineConfig, start: datetime, end: datetime) -> list[Occurrence]:
    """Every active resident's planned visits in [start, end)."""
    zones = {site.id: site.zone for site in config.sites}
    return [
        occurrence
        for resident in config.residents
        if resident.active and resident.site in zones
        for plan in resident.visits
        for occurrence in plan_occurrences(resident, plan, zones[resident.site], start, end)
    ]
