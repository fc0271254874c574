"""Time to acknowledge and to resolve, and the share acknowledged within 60 s and 180 s against the
TEC Quality yardsticks (97.5 % and 99 %), per site, shift, alarm type or operator, by day or month.

One indexed query fetches the period's incidents with their times as epoch seconds computed in SQL
(site and `opened_at` are what `ix_incidents_site_opened` / `ix_incidents_opened_at` serve); the
durations, the grouping by site-local day, month and shift, and the percentiles are done with numpy."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, select

from gateway.incidents.schema import Incident
from gateway.reports.config import ReportsConfig
from gateway.reports.sql import all_of, epoch_seconds, in_sites
from gateway.reports.zones import (
    Coded,
    day_label,
    day_numbers,
    local_seconds,
    minute_of_day,
    month_label,
    month_numbers,
)

Group = Literal["site", "shift", "rule", "operator"]
Bucket = Literal["day", "month", "none"]
#: Test calls are not alarms anyone had to answer (the console's outcome): they do not count.
NOT_COUNTED_OUTCOMES = ("test_call",)


@dataclass(frozen=True, slots=True)
class Yardstick:
    """Acknowledged within `within_s` seconds in at least `share` of calls (UK TEC Quality)."""

    within_s: int
    share: float


YARDSTICKS = (Yardstick(60, 0.975), Yardstick(180, 0.99))


@dataclass(frozen=True, slots=True)
class ReportFilter:
    start: datetime
    end: datetime
    #: The sites to count (None: every site); a scoped manager's sites intersected with the one asked.
    sites: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Durations:
    median_s: float | None
    p90_s: float | None
    mean_s: float | None

    @classmethod
    def of(cls, seconds: npt.NDArray[np.float64]) -> Durations:
        if seconds.size == 0:
            return cls(None, None, None)
        ordered = np.sort(seconds)
        median, p90 = _quantile(ordered, 0.5), _quantile(ordered, 0.9)
        return cls(round(median, 3), round(p90, 3), round(float(ordered.mean()), 3))


def _quantile(ordered: npt.NDArray[np.float64], q: float) -> float:
    """numpy's default ("linear") percentile of sorted values, without its per-call overhead: a year by
    day and shift asks for thousands."""
    position = q * (ordered.size - 1)
    below = int(position)
    above = min(below + 1, ordered.size - 1)
    return float(ordered[below] + (ordered[above] - ordered[below]) * (position - below))


@dataclass(frozen=True, slots=True)
class TargetResult:
    within_s: int
    target: float
    count: int
    #: Share of the group's incidents acknowledged within `within_s` (None without incidents).
    share: float | None
    met: bool | None


@dataclass(frozen=True, slots=True)
class ResponseKpi:
    incidents: int
    acknowledged: int
    resolved: int
    acknowledge: Durations
    resolve: Durations
    targets: tuple[TargetResult, ...]


@dataclass(frozen=True, slots=True)
class ResponseRow:
    group: str | None
    bucket: str | None
    kpi: ResponseKpi


@dataclass(frozen=True, slots=True)
class ResponseReport:
    start: datetime
    end: datetime
    group: Group
    bucket: Bucket
    total: ResponseKpi
    #: Every group together, per bucket: what the chart draws.
    series: tuple[ResponseRow, ...]
    rows: tuple[ResponseRow, ...]


@dataclass(frozen=True, slots=True)
class _Columns:
    """The period's incidents, one array per column, in the same order."""

    site: npt.NDArray[np.str_]
    #: The rule or the operator when grouping by them (else the site again).
    key: npt.NDArray[np.str_]
    opened: npt.NDArray[np.float64]
    ack_s: npt.NDArray[np.float64]
    resolve_s: npt.NDArray[np.float64]


def operator_of(actor: str | None) -> str:
    """Who acknowledged, without the channel a responder answered through ("" when nobody has)."""
    return "" if actor is None else actor.split(" via ", 1)[0]


def _operators(actors: tuple[str | None, ...]) -> npt.NDArray[np.str_]:
    # A few dozen distinct actors among a year's incidents: each is read once, not once per incident.
    distinct, inverse = np.unique(np.array([a or "" for a in actors], dtype=np.str_), return_inverse=True)
    return np.array([operator_of(a or None) for a in distinct.tolist()], dtype=np.str_)[inverse]


def _duration(opened: npt.NDArray[np.float64], ends: tuple[float | None, ...]) -> npt.NDArray[np.float64]:
    # None becomes NaN.
    seconds = np.array(ends, dtype=np.float64) - opened
    return np.asarray(np.round(seconds, 3), dtype=np.float64)


def _fetch(connection: Connection, filters: ReportFilter, group: Group) -> _Columns:
    opened = epoch_seconds(Incident.opened_at)
    key = {"rule": Incident.rule, "operator": Incident.acknowledged_by}.get(group, Incident.site)
    query = select(
        Incident.site,
        key,
        opened,
        epoch_seconds(Incident.acknowledged_at),
        epoch_seconds(Incident.resolved_at),
    ).where(
        all_of(
            Incident.opened_at >= filters.start,
            Incident.opened_at < filters.end,
            in_sites(filters.sites),
            Incident.outcome.is_(None) | Incident.outcome.not_in(NOT_COUNTED_OUTCOMES),
        )
    )
    rows = connection.execute(query).all()
    columns: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [()] * 5
    # Durations are differences of epoch seconds taken here: SQL would read `opened_at` three times.
    # julianday() is exact to about 20 µs: to the millisecond, 16:00:00 stays 16:00 (not 15:59:59.99998,
    # the day before) and 60 s stays 60 s.
    opened_s = np.asarray(np.round(np.array(columns[2], dtype=np.float64), 3), dtype=np.float64)
    return _Columns(
        site=np.array(columns[0], dtype=np.str_),
        key=_operators(columns[1]) if group == "operator" else np.array(columns[1], dtype=np.str_),
        opened=opened_s,
        ack_s=_duration(opened_s, columns[3]),
        resolve_s=_duration(opened_s, columns[4]),
    )


def _kpi(ack_s: npt.NDArray[np.float64], resolve_s: npt.NDArray[np.float64]) -> ResponseKpi:
    n = int(ack_s.size)
    acked = ack_s[~np.isnan(ack_s)]
    resolved = resolve_s[~np.isnan(resolve_s)]
    targets = []
    for yardstick in YARDSTICKS:
        # Not acknowledged (yet) counts as not within: the share is of every incident of the group.
        count = int(np.count_nonzero(acked <= yardstick.within_s))
        share = count / n if n else None
        met = None if share is None else share >= yardstick.share
        targets.append(TargetResult(yardstick.within_s, yardstick.share, count, share, met))
    return ResponseKpi(
        incidents=n,
        acknowledged=int(acked.size),
        resolved=int(resolved.size),
        acknowledge=Durations.of(acked),
        resolve=Durations.of(resolved),
        targets=tuple(targets),
    )


def _groups(
    keys: Coded, buckets: npt.NDArray[np.int64] | None
) -> Iterator[tuple[int, int | None, npt.NDArray[np.intp]]]:
    """Each (group, bucket) present, in order, with the indices of its incidents: one integer sort, not
    a scan per group (a year by day and operator has thousands of groups)."""
    if keys.codes.size == 0:
        return
    if buckets is None:
        combined = keys.codes.astype(np.int64)
    else:
        first = int(buckets.min())
        span = int(buckets.max()) - first + 1
        combined = keys.codes.astype(np.int64) * span + (buckets - first)
    present, inverse = np.unique(combined, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    ends = np.cumsum(np.bincount(inverse, minlength=present.size))
    for value, indices in zip(present.tolist(), np.split(order, ends[:-1]), strict=True):
        if buckets is None:
            yield value, None, indices
        else:
            yield value // span, first + value % span, indices


def response_times(
    connection: Connection,
    filters: ReportFilter,
    settings: ReportsConfig,
    zones: Mapping[str, ZoneInfo],
    *,
    group: Group = "site",
    bucket: Bucket = "none",
    default_zone: ZoneInfo = ZoneInfo("UTC"),
) -> ResponseReport:
    """The report of incidents opened in [start, end); `zones` gives each site's time zone."""
    data = _fetch(connection, filters, group)
    sites = Coded.of(data.site)
    local = local_seconds(data.opened, sites, zones, default_zone)
    buckets, label = None, None
    if bucket != "none":
        buckets = day_numbers(local) if bucket == "day" else month_numbers(local)
        label = day_label if bucket == "day" else month_label
    if group == "shift":
        names = [s.name for s in settings.shifts]
        # Shift order as configured, not alphabetical: codes are the shifts' positions.
        keys = Coded(names, np.array(settings.shift_of_minute(), dtype=np.intp)[minute_of_day(local)])
    else:
        keys = sites if group == "site" else Coded.of(data.key)

    def rows_of(of: Coded, named: bool) -> tuple[ResponseRow, ...]:
        return tuple(
            ResponseRow(
                of.names[key] if named else None,
                None if at is None or label is None else label(at),
                _kpi(data.ack_s[indices], data.resolve_s[indices]),
            )
            for key, at, indices in _groups(of, buckets)
        )

    everyone = Coded([""], np.zeros(data.opened.size, dtype=np.intp))
    series = rows_of(everyone, named=False) if buckets is not None else ()
    return ResponseReport(
        filters.start,
        filters.end,
        group,
        bucket,
        _kpi(data.ack_s, data.resolve_s),
        series,
        rows_of(keys, True),
    )
