"""How often alarms were false, per device or per alarm type: counted in the database (one GROUP BY).
A resident cancelling their own call is counted apart: the device worked, the resident was fine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, Connection, case, func, select

from gateway.incidents.schema import Incident, Outcome
from gateway.reports.response_times import NOT_COUNTED_OUTCOMES, ReportFilter
from gateway.reports.sql import all_of, in_sites

By = Literal["device", "rule"]


@dataclass(frozen=True, slots=True)
class FalseAlarmRow:
    key: str
    #: The device's site (by device); None by rule, where a type spans sites.
    site: str | None
    incidents: int
    false_alarms: int
    cancelled_by_resident: int

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.incidents if self.incidents else 0.0

    @property
    def cancelled_rate(self) -> float:
        return self.cancelled_by_resident / self.incidents if self.incidents else 0.0


def _count(outcome: Outcome) -> ColumnElement[int]:
    return func.sum(case((Incident.outcome == outcome.value, 1), else_=0))


def false_alarms(connection: Connection, filters: ReportFilter, by: By = "device") -> list[FalseAlarmRow]:
    """Incidents opened in [start, end) per device (with its site) or per rule, the most false first."""
    keys = [Incident.device_id, Incident.site] if by == "device" else [Incident.rule]
    false_count = _count(Outcome.FALSE_ALARM).label("false_alarms")
    query = (
        select(
            *keys,
            func.count().label("incidents"),
            false_count,
            _count(Outcome.CANCELLED_BY_RESIDENT).label("cancelled"),
        )
        .where(
            all_of(
                Incident.opened_at >= filters.start,
                Incident.opened_at < filters.end,
                in_sites(filters.sites),
                Incident.outcome.is_(None) | Incident.outcome.not_in(NOT_COUNTED_OUTCOMES),
            )
        )
        .group_by(*keys)
    )
    rows = [
        FalseAlarmRow(
            key=row[0],
            site=row[1] if by == "device" else None,
            incidents=int(row.incidents),
            false_alarms=int(row.false_alarms or 0),
            cancelled_by_resident=int(row.cancelled or 0),
        )
        for row in connection.execute(query)
    ]
    return sorted(rows, key=lambda r: (-r.false_alarm_rate, -r.false_alarms, r.key, r.site or ""))
