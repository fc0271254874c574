"""Planned home visits done against planned: per site and site-local month (for service-quality
indicators), per carer and per site over a period (the managers' visits page).

Counting: `planned` is every visit planned in the period; `done` those that took place (checked in,
late ones included); `late` those checked in after their due-by; `missed` those nobody checked in to;
`pending` those not yet due or still under way. So planned = done + missed + pending.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.incidents.schema import Visit

VISIT_COLUMNS = ("key", "site", "month", "planned", "done", "late", "missed", "pending", "done_share")


@dataclass(slots=True)
class VisitCounts:
    key: str
    site: str
    month: str | None = None
    planned: int = 0
    done: int = 0
    late: int = 0
    missed: int = 0
    pending: int = 0

    @property
    def done_share(self) -> float | None:
        """Done of those that were due (pending left out), None when none was due yet."""
        due = self.done + self.missed
        return round(self.done / due, 4) if due else None

    def count(self, status: str, late: bool) -> None:
        self.planned += 1
        if status in ("done", "late") or (status == "in_progress" and late):
            self.done += 1
            self.late += int(late)
        elif status == "missed":
            self.missed += 1
        elif status == "in_progress":
            self.done += 1
        else:
            self.pending += 1

    def as_row(self) -> dict[str, Any]:
        return {**asdict(self), "done_share": self.done_share}


@dataclass(frozen=True, slots=True)
class _Row:
    site: str
    carer: str
    planned_at: datetime
    status: str
    late: bool


def _rows(session: Session, sites: Iterable[str] | None, start: datetime, end: datetime) -> list[_Row]:
    query = select(Visit.site, Visit.carer, Visit.planned_at, Visit.status, Visit.late).where(
        Visit.planned_at >= start, Visit.planned_at < end
    )
    if sites is not None:
        query = query.where(Visit.site.in_(sorted(sites)))
    return [_Row(*row) for row in session.execute(query.order_by(Visit.planned_at))]


def _grouped(rows: Iterable[_Row], key: Callable[[_Row], tuple[str, str, str | None]]) -> list[VisitCounts]:
    counts: dict[tuple[str, str, str | None], VisitCounts] = {}
    for row in rows:
        group = key(row)
        counts.setdefault(group, VisitCounts(group[0], group[1], group[2])).count(row.status, row.late)
    return [counts[group] for group in sorted(counts, key=lambda g: (g[1], g[2] or "", g[0]))]


class ZonedSite(Protocol):
    """A site with its time zone: a `SiteConfig`, or the indicators' `QualitySite`."""

    @property
    def id(self) -> str: ...
    @property
    def zone(self) -> ZoneInfo: ...


def visits_done_vs_planned(
    session: Session, sites: Sequence[ZonedSite], start: datetime, end: datetime
) -> list[VisitCounts]:
    """Per site and site-local month ("2026-11"): planned, done, late, missed, pending, for the visits
    planned in [start, end) at `sites`."""
    zones: dict[str, ZoneInfo] = {site.id: site.zone for site in sites}
    rows = _rows(session, zones, start, end)
    return _grouped(rows, lambda r: (r.site, r.site, f"{r.planned_at.astimezone(zones[r.site]):%Y-%m}"))


def visits_per_carer(
    session: Session, sites: Iterable[str] | None, start: datetime, end: datetime
) -> list[VisitCounts]:
    """Per carer (and the site visited) over [start, end)."""
    return _grouped(_rows(session, sites, start, end), lambda r: (r.carer, r.site, None))


def visits_per_site(
    session: Session, sites: Iterable[str] | None, start: datetime, end: datetime
) -> list[VisitCounts]:
    return _grouped(_rows(session, sites, start, end), lambda r: (r.site, r.site, None))
