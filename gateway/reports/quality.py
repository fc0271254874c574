"""Service-quality indicators (服务质量监测指标) per site and site-local month, the table a district's
civil-affairs office takes: response times against the TEC yardsticks, the false-alarm rate, weekly
alarm-button test compliance (JGJ/T 484), visits done against planned and reassurance calls answered.

Each indicator is read for the whole period in one query per site group and bucketed into months here,
so a year of twenty sites is a handful of queries, not one per cell. Visits and reassurance calls come
from their own modules through `MonthlyCounts` functions, so this module knows only their totals."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from gateway.incidents.schema import AuditEntry, Incident, Outcome
from gateway.reports.config import ReportsConfig
from gateway.reports.reassurance import reassurance_answered
from gateway.reports.response_times import (
    YARDSTICKS,
    ReportFilter,
    response_times,
)
from gateway.reports.sql import all_of, epoch_seconds, in_sites
from gateway.reports.visits import visits_done_vs_planned
from gateway.reports.zones import Coded, local_seconds, month_label, month_numbers

#: A month as "YYYY-MM".
MonthLabel = str
#: Counts per (site, month) from another module (visits, reassurance calls): the connection, the sites,
#: the first and last month; each (site, month) maps to named counts.
MonthlyCounts = Callable[
    [Connection, Sequence["QualitySite"], MonthLabel, MonthLabel],
    Mapping[tuple[str, MonthLabel], Mapping[str, int]],
]
#: The longest table the office may ask for at once.
MAX_MONTHS = 24
DEVICE_TESTED = "device.tested"


@dataclass(frozen=True, slots=True)
class QualitySite:
    """A site as the indicators need it: its id, time zone, and the alarm devices to be tested weekly."""

    id: str
    zone: ZoneInfo
    testable_devices: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class QualityRow:
    site: str
    month: MonthLabel
    incidents: int = 0
    acknowledged: int = 0
    #: Share acknowledged within 60 s and 180 s (None without incidents), and the median in seconds.
    share_60s: float | None = None
    share_180s: float | None = None
    ack_median_s: float | None = None
    false_alarms: int = 0
    #: Weeks (Monday to Sunday, site-local, begun in this month and over by now) times testable devices,
    #: and how many of those device-weeks saw at least one test.
    device_weeks: int = 0
    device_weeks_tested: int = 0
    #: Counts other modules contribute (visits planned/done/late/missed, calls placed/answered, ...).
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def false_alarm_rate(self) -> float | None:
        return self.false_alarms / self.incidents if self.incidents else None

    @property
    def test_compliance(self) -> float | None:
        return self.device_weeks_tested / self.device_weeks if self.device_weeks else None


def month_labels(first: MonthLabel, last: MonthLabel) -> list[MonthLabel]:
    """Every month from `first` to `last`, both included."""
    start, end = np.datetime64(first, "M"), np.datetime64(last, "M")
    return [month_label(int(m)) for m in range(int(start.astype(np.int64)), int(end.astype(np.int64)) + 1)]


def months_before(month: MonthLabel, count: int) -> MonthLabel:
    return month_label(int(np.datetime64(month, "M").astype(np.int64)) - count)


def month_bounds(month: MonthLabel, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) in UTC of a site-local month."""
    first = date.fromisoformat(f"{month}-01")
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return _local_midnight(first, zone), _local_midnight(following, zone)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def service_quality(
    connection: Connection,
    sites: Sequence[QualitySite],
    first: MonthLabel,
    last: MonthLabel,
    now: datetime,
    settings: ReportsConfig,
    contributions: Sequence[MonthlyCounts] = (),
) -> list[QualityRow]:
    """One row per site and month from `first` to `last`, in site then month order; months with nothing
    in them are rows of zeros (an office compares months, a missing one reads as a gap)."""
    months = month_labels(first, last)
    if not sites or not months:
        return []
    zones = {s.id: s.zone for s in sites}
    start = min(month_bounds(months[0], s.zone)[0] for s in sites)
    end = max(month_bounds(months[-1], s.zone)[1] for s in sites)
    ids = frozenset(zones)
    cells: dict[tuple[str, MonthLabel], dict[str, Any]] = defaultdict(dict)
    _response(connection, ReportFilter(start, end, ids), settings, zones, cells)
    _false_alarms(connection, ReportFilter(start, end, ids), zones, cells)
    _test_compliance(connection, sites, months, now, cells)
    counts: dict[tuple[str, MonthLabel], dict[str, int]] = defaultdict(dict)
    for contribute in contributions:
        for key, named in contribute(connection, sites, months[0], months[-1]).items():
            counts[key].update(named)
    return [
        QualityRow(site.id, month, **cells.get((site.id, month), {}), counts=counts.get((site.id, month), {}))
        for site in sites
        for month in months
    ]


def _response(
    connection: Connection,
    filters: ReportFilter,
    settings: ReportsConfig,
    zones: Mapping[str, ZoneInfo],
    cells: dict[tuple[str, MonthLabel], dict[str, Any]],
) -> None:
    report = response_times(connection, filters, settings, zones, group="site", bucket="month")
    within = {target.within_s for target in YARDSTICKS}
    assert within == {60, 180}, "the indicators name the TEC yardsticks' 60 s and 180 s"
    for row in report.rows:
        if row.group is None or row.bucket is None:
            continue
        shares = {t.within_s: t.share for t in row.kpi.targets}
        cells[(row.group, row.bucket)].update(
            incidents=row.kpi.incidents,
            acknowledged=row.kpi.acknowledged,
            share_60s=shares[60],
            share_180s=shares[180],
            ack_median_s=row.kpi.acknowledge.median_s,
        )


def _false_alarms(
    connection: Connection,
    filters: ReportFilter,
    zones: Mapping[str, ZoneInfo],
    cells: dict[tuple[str, MonthLabel], dict[str, Any]],
) -> None:
    query = select(Incident.site, epoch_seconds(Incident.opened_at)).where(
        all_of(
            Incident.opened_at >= filters.start,
            Incident.opened_at < filters.end,
            in_sites(filters.sites),
            Incident.outcome == Outcome.FALSE_ALARM.value,
        )
    )
    rows = connection.execute(query).all()
    if not rows:
        return
    site_names = np.array([r[0] for r in rows], dtype=np.str_)
    opened = np.array([r[1] for r in rows], dtype=np.float64)
    sites = Coded.of(site_names)
    months = month_numbers(local_seconds(opened, sites, zones, ZoneInfo("UTC")))
    keys, tally = np.unique(np.stack([sites.codes.astype(np.int64), months]), axis=1, return_counts=True)
    for (code, month), count in zip(keys.T.tolist(), tally.tolist(), strict=True):
        cells[(sites.names[code], month_label(month))]["false_alarms"] = int(count)


def _test_compliance(
    connection: Connection,
    sites: Sequence[QualitySite],
    months: Sequence[MonthLabel],
    now: datetime,
    cells: dict[tuple[str, MonthLabel], dict[str, Any]],
) -> None:
    """JGJ/T 484 asks for a weekly test of every alarm button: each (device, week) with a test counts."""
    weeks = {s.id: _weeks_of(s.zone, months, now) for s in sites}
    testable = {s.id: s.testable_devices for s in sites}
    zones = {s.id: s.zone for s in sites}
    spans = [w for site_weeks in weeks.values() for ws in site_weeks.values() for w in ws]
    tested: dict[str, set[tuple[str, date]]] = defaultdict(set)
    if spans and any(testable.values()):
        start, end = min(w[1] for w in spans), max(w[2] for w in spans)
        query = select(AuditEntry.at, AuditEntry.actor, AuditEntry.details).where(
            AuditEntry.action == DEVICE_TESTED, AuditEntry.at >= start, AuditEntry.at < end
        )
        for at, actor, details in connection.execute(query):
            where, device = _tested_device(actor, details)
            if where is not None and device is not None and device in testable.get(where, ()):
                tested[where].add((device, _monday_of(_utc(at), zones[where])))
    for site in sites:
        for month, month_weeks in weeks[site.id].items():
            mondays = {monday for monday, _, _ in month_weeks}
            done = sum(1 for _, monday in tested[site.id] if monday in mondays)
            cells[(site.id, month)].update(
                device_weeks=len(mondays) * len(site.testable_devices), device_weeks_tested=done
            )


def _tested_device(actor: str, details: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """(site, device) of a `device.tested` entry: a self-test names the device as its actor, an
    operator's test call names it in the details."""
    details = details or {}
    device = details.get("device")
    if device is None and actor.startswith("device:"):
        device = actor.removeprefix("device:")
    site = details.get("site")
    return (site if isinstance(site, str) else None), (device if isinstance(device, str) else None)


def _weeks_of(
    zone: ZoneInfo, months: Sequence[MonthLabel], now: datetime
) -> dict[MonthLabel, list[tuple[date, datetime, datetime]]]:
    """Per month, its weeks (Monday, start, end in UTC) that began in it and are over by `now`: a week
    still running is not yet a missed test."""
    weeks: dict[MonthLabel, list[tuple[date, datetime, datetime]]] = {}
    for month in months:
        first = date.fromisoformat(f"{month}-01")
        monday = first + timedelta(days=(7 - first.weekday()) % 7)
        found = []
        while f"{monday:%Y-%m}" == month:
            start, end = _local_midnight(monday, zone), _local_midnight(monday + timedelta(days=7), zone)
            if end <= now:
                found.append((monday, start, end))
            monday += timedelta(days=7)
        weeks[month] = found
    return weeks


def _monday_of(moment: datetime, zone: ZoneInfo) -> date:
    local = moment.astimezone(zone).date()
    return local - timedelta(days=local.weekday())


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def visit_counts(
    connection: Connection, sites: Sequence[QualitySite], first: MonthLabel, last: MonthLabel
) -> dict[tuple[str, MonthLabel], dict[str, int]]:
    """Planned home visits of each month (docs/visits.md): planned, done (late included), late, missed."""
    start = min(month_bounds(first, s.zone)[0] for s in sites)
    end = max(month_bounds(last, s.zone)[1] for s in sites)
    with Session(bind=connection) as session:
        found = visits_done_vs_planned(session, sites, start, end)
    return {
        (c.site, c.month): {
            "visits_planned": c.planned,
            "visits_done": c.done,
            "visits_late": c.late,
            "visits_missed": c.missed,
        }
        for c in found
        if c.month is not None
    }


def reassurance_counts(
    connection: Connection, sites: Sequence[QualitySite], first: MonthLabel, last: MonthLabel
) -> dict[tuple[str, MonthLabel], dict[str, int]]:
    """Daily reassurance calls of each month (docs/reassurance.md): calls and SMS placed, answered, and
    the resident-days that ended well, needing help, or with no answer."""
    start = date.fromisoformat(f"{first}-01")
    end = month_bounds(last, ZoneInfo("UTC"))[1].date() - timedelta(days=1)
    with Session(bind=connection) as session:
        found = reassurance_answered(session, frozenset(s.id for s in sites), start, end)
    return {
        (m.site, m.month): {
            "calls_placed": m.placed,
            "calls_answered": m.answered,
            "days_well": m.well,
            "days_help": m.help,
            "days_no_answer": m.no_answer,
        }
        for m in found
    }


#: The care workflows' counts, and their columns in the table (after the incidents' own).
CARE_WORKFLOWS: tuple[MonthlyCounts, ...] = (visit_counts, reassurance_counts)
CARE_WORKFLOW_COLUMNS = (
    "visits_planned",
    "visits_done",
    "visits_late",
    "visits_missed",
    "calls_placed",
    "calls_answered",
    "days_well",
    "days_help",
    "days_no_answer",
)

QUALITY_COLUMNS = (
    "site",
    "month",
    "incidents",
    "acknowledged",
    "share_60s",
    "share_180s",
    "ack_median_s",
    "false_alarms",
    "false_alarm_rate",
    "device_weeks",
    "device_weeks_tested",
    "test_compliance",
)


def quality_cells(row: QualityRow, extra_columns: Sequence[str]) -> dict[str, Any]:
    """A row as the JSON and CSV cells, extra counts in `extra_columns` order (absent counts are empty)."""
    cells: dict[str, Any] = {
        "site": row.site,
        "month": row.month,
        "incidents": row.incidents,
        "acknowledged": row.acknowledged,
        "share_60s": row.share_60s,
        "share_180s": row.share_180s,
        "ack_median_s": row.ack_median_s,
        "false_alarms": row.false_alarms,
        "false_alarm_rate": row.false_alarm_rate,
        "device_weeks": row.device_weeks,
        "device_weeks_tested": row.device_weeks_tested,
        "test_compliance": row.test_compliance,
    }
    cells.update({name: row.counts.get(name) for name in extra_columns})
    return cells
