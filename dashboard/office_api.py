"""The managers' office: every incident and the audit trail with filters, the response-time and
false-alarm reports; JSON for the pages, CSV of every table. Managers and admins only; a manager
limited to some sites sees only theirs. Reads run on the store's read pool, never on the writer."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from dashboard.auth import Account
from dashboard.deps import Manager
from dashboard.device_board import TESTED_TYPES
from dashboard.openapi import JSON_OR_CSV, json_or_csv
from dashboard.review import ReviewTime, period
from gateway.config import CarelineConfig
from gateway.incidents.schema import Outcome
from gateway.incidents.views import AuditView, IncidentView
from gateway.reports.config import ReportsConfig
from gateway.reports.export import (
    FALSE_ALARM_COLUMNS,
    RESPONSE_COLUMNS,
    false_alarm_row,
    kpi_cells,
    response_row,
    to_csv,
)
from gateway.reports.false_alarms import By, false_alarms
from gateway.reports.history import AuditFilter, IncidentFilter, audit_history, incident_history
from gateway.reports.quality import (
    CARE_WORKFLOW_COLUMNS,
    CARE_WORKFLOWS,
    MAX_MONTHS,
    QUALITY_COLUMNS,
    QualitySite,
    month_labels,
    months_before,
    quality_cells,
    service_quality,
)
from gateway.reports.response_times import (
    YARDSTICKS,
    Bucket,
    Group,
    ReportFilter,
    response_times,
)

T = TypeVar("T")
#: A year's report, with room for a leap year and a period picked from the 1st of a month.
LONGEST = timedelta(days=400)
#: A CSV export holds every matching row up to this many (the header `X-Careline-Truncated` says so).
CSV_MAX_ROWS = 50_000
MAX_OFFSET = 10_000_000
Format = Literal["json", "csv"]
Text = Annotated[str | None, Query(max_length=200)]
INCIDENT_COLUMNS = (
    "id",
    "opened_at",
    "site",
    "site_name",
    "room",
    "resident",
    "resident_name",
    "device_id",
    "rule",
    "severity",
    "status",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_at",
    "resolved_by",
    "outcome",
    "note",
)
AUDIT_COLUMNS = ("id", "at", "actor", "action", "incident_id", "details", "hash")


class OfficeIncident(IncidentView):
    #: The incident on the console's incident screen.
    link: str


class IncidentPage(BaseModel):
    start: str
    end: str
    total: int
    offset: int
    limit: int
    #: Every outcome an incident may have, for the page's filter (new ones appear by themselves).
    outcomes: list[str]
    incidents: list[OfficeIncident]


class AuditPage(BaseModel):
    start: str
    end: str
    total: int
    offset: int
    limit: int
    entries: list[AuditView]


def _sites(account: Account, site: str | None) -> frozenset[str] | None:
    """The sites a query may count: the one asked for (if the account may see it), else the scope."""
    scope = account.scope
    if site is None:
        return scope
    if scope is not None and site not in scope:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"site {site} is not one of your sites")
    return frozenset({site})


def _csv(columns: tuple[str, ...], rows: Iterable[dict[str, Any]], name: str, more: bool = False) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if more:
        headers["X-Careline-Truncated"] = f"first {CSV_MAX_ROWS} rows"
    return Response(to_csv(columns, rows), media_type="text/csv; charset=utf-8", headers=headers)


def _stamp(moment: Any) -> str:
    return f"{moment:%Y%m%d}"


def office_router(ctx: Any) -> APIRouter:
    router = APIRouter(tags=["office"])

    def config() -> CarelineConfig:
        current: Callable[[], CarelineConfig] | None = ctx.current_config
        return current() if current is not None else CarelineConfig()

    def zones() -> dict[str, ZoneInfo]:
        return {site.id: site.zone for site in config().sites}

    def reports() -> ReportsConfig:
        return config().reports

    async def read(fn: Callable[[Session], T]) -> T:
        def run() -> T:
            with ctx.service.store.reading() as session:
                return fn(session)

        result: T = await ctx.service.report(run)
        return result

    def wing_rooms(wing: str | None, sites: frozenset[str] | None) -> dict[str, frozenset[str]] | None:
        if wing is None:
            return None
        rooms = {
            site.id: frozenset(room.id for room in site.rooms if room.wing == wing)
            for site in config().sites
            if sites is None or site.id in sites
        }
        rooms = {site: held for site, held in rooms.items() if held}
        if not rooms:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no room is in wing {wing}")
        return rooms

    @router.get("/api/office/incidents", responses=json_or_csv(IncidentPage))
    async def incidents(
        account: Manager,
        start: ReviewTime | None = None,
        end: ReviewTime | None = None,
        site: Text = None,
        wing: Text = None,
        resident: Text = None,
        rule: Text = None,
        outcome: Outcome | None = None,
        operator: Annotated[
            str | None, Query(max_length=200, description='acknowledged or resolved by: "user:li"')
        ] = None,
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
        limit: int = Query(100, ge=1, le=500),
        format: Format = "json",
    ) -> Any:
        """Incidents opened in the period, newest first, with the total matching; `format=csv` gives every
        match (up to 50,000 rows)."""
        begin, finish = period(start, end, longest=LONGEST, default=timedelta(days=7))
        sites = _sites(account, site)
        filters = IncidentFilter(
            begin, finish, sites, wing_rooms(wing, sites), resident, rule,
            None if outcome is None else outcome.value, operator,
        )  # fmt: skip
        directory = ctx.service.store.directory
        if format == "csv":
            found = await read(lambda s: incident_history(s, filters, 0, CSV_MAX_ROWS))
            rows = (IncidentView.of(i, directory).model_dump(mode="json") for i in found.items)
            name = f"careline-incidents-{_stamp(begin)}-{_stamp(finish)}.csv"
            return _csv(INCIDENT_COLUMNS, rows, name, found.total > CSV_MAX_ROWS)
        page = await read(lambda s: incident_history(s, filters, offset, limit))
        return {
            "start": begin.isoformat(),
            "end": finish.isoformat(),
            "total": page.total,
            "offset": offset,
            "limit": limit,
            #: Every outcome an incident may have, for the page's filter (new ones appear by themselves).
            "outcomes": [o.value for o in Outcome],
            "incidents": [
                {**IncidentView.of(i, directory).model_dump(mode="json"), "link": f"/incident/{i.id}"}
                for i in page.items
            ],
        }

    @router.get("/api/office/audit", responses=json_or_csv(AuditPage))
    async def audit(
        account: Manager,
        start: ReviewTime | None = None,
        end: ReviewTime | None = None,
        actor: Text = None,
        action: Text = None,
        incident: int | None = Query(None, ge=1, le=2**63 - 1),
        text: Text = None,
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
        limit: int = Query(100, ge=1, le=500),
        format: Format = "json",
    ) -> Any:
        """Audit entries of the period, newest first; a manager limited to some sites sees the entries
        about those sites' incidents only."""
        begin, finish = period(start, end, longest=LONGEST, default=timedelta(days=7))
        filters = AuditFilter(begin, finish, account.scope, actor, action, incident, text or None)
        if format == "csv":
            found = await read(lambda s: audit_history(s, filters, 0, CSV_MAX_ROWS))
            rows = (AuditView.model_validate(e).model_dump(mode="json") for e in found.items)
            name = f"careline-audit-{_stamp(begin)}-{_stamp(finish)}.csv"
            return _csv(AUDIT_COLUMNS, _audit_cells(rows), name, found.total > CSV_MAX_ROWS)
        page = await read(lambda s: audit_history(s, filters, offset, limit))
        return {
            "start": begin.isoformat(),
            "end": finish.isoformat(),
            "total": page.total,
            "offset": offset,
            "limit": limit,
            "entries": [AuditView.model_validate(e).model_dump(mode="json") for e in page.items],
        }

    @router.get("/api/reports/response-times", responses=JSON_OR_CSV)
    async def response_time_report(
        account: Manager,
        start: ReviewTime | None = None,
        end: ReviewTime | None = None,
        site: Text = None,
        group: Group = "site",
        bucket: Bucket = "none",
        format: Format = "json",
    ) -> Any:
        """Time to acknowledge and resolve, and the share acknowledged within 60 s / 180 s against the
        97.5 % / 99 % yardsticks, per group (and day or month, site-local)."""
        filters = _report_filter(account, start, end, site)
        begin, finish = filters.start, filters.end
        settings, site_zones = reports(), zones()
        report = await read(
            lambda s: response_times(
                s.connection(), filters, settings, site_zones, group=group, bucket=bucket
            )
        )
        rows = [response_row(row) for row in report.rows]
        if format == "csv":
            name = f"careline-response-times-{group}-{bucket}-{_stamp(begin)}-{_stamp(finish)}.csv"
            return _csv(RESPONSE_COLUMNS, rows, name)
        return {
            "start": begin.isoformat(),
            "end": finish.isoformat(),
            "group": group,
            "bucket": bucket,
            "yardsticks": [{"within_s": y.within_s, "share": y.share} for y in YARDSTICKS],
            "shifts": [
                {"name": s.name, "start": f"{s.start:%H:%M}", "end": f"{s.end:%H:%M}"}
                for s in settings.shifts
            ],
            "total": kpi_cells(report.total),
            "series": [response_row(row) for row in report.series],
            "rows": rows,
        }

    @router.get("/api/reports/false-alarms", responses=JSON_OR_CSV)
    async def false_alarm_report(
        account: Manager,
        start: ReviewTime | None = None,
        end: ReviewTime | None = None,
        site: Text = None,
        by: By = "device",
        format: Format = "json",
    ) -> Any:
        """Per device (or alarm type): incidents, how many were false alarms and how many the resident
        cancelled, the most false first."""
        filters = _report_filter(account, start, end, site)
        begin, finish = filters.start, filters.end
        found = await read(lambda s: false_alarms(s.connection(), filters, by))
        rows = [false_alarm_row(row) for row in found]
        if format == "csv":
            name = f"careline-false-alarms-{by}-{_stamp(begin)}-{_stamp(finish)}.csv"
            return _csv(FALSE_ALARM_COLUMNS, rows, name)
        return {"start": begin.isoformat(), "end": finish.isoformat(), "by": by, "rows": rows}

    @router.get("/api/reports/quality", responses=JSON_OR_CSV)
    async def quality_report(
        account: Manager,
        first: Month | None = None,
        last: Month | None = None,
        site: Text = None,
        format: Format = "json",
    ) -> Any:
        """Service-quality indicators per site and site-local month (the last three months unless given,
        at most 24): response times against the TEC yardsticks, false alarms, weekly button-test
        compliance, visits done against planned, reassurance calls answered."""
        now = ctx.service.store.now()
        first, last = _months(first, last, now)
        wanted = _sites(account, site)
        current = config()
        chosen = [
            QualitySite(s.id, s.zone, _testable(current, s.id))
            for s in current.sites
            if wanted is None or s.id in wanted
        ]
        settings = reports()
        found = await read(
            lambda s: service_quality(s.connection(), chosen, first, last, now, settings, CARE_WORKFLOWS)
        )
        rows = [quality_cells(row, CARE_WORKFLOW_COLUMNS) for row in found]
        columns = QUALITY_COLUMNS + CARE_WORKFLOW_COLUMNS
        if format == "csv":
            return _csv(columns, rows, f"careline-service-quality-{first}-{last}.csv")
        names = {s.id: s.name for s in current.sites}
        return {"first": first, "last": last, "columns": list(columns), "site_names": names, "rows": rows}

    return router


Month = Annotated[str, Query(pattern=r"^(19|20)[0-9]{2}-(0[1-9]|1[0-2])$", description="YYYY-MM")]


def _months(first: str | None, last: str | None, now: datetime) -> tuple[str, str]:
    """The months asked for: by default the current one and the two before it (UTC)."""
    this_month = f"{now:%Y-%m}"
    last = last or this_month
    first = first or months_before(last, 2)
    span = len(month_labels(first, last))
    if span == 0 or span > MAX_MONTHS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"first must not be after last, at most {MAX_MONTHS} months in all",
        )
    return first, last


def _testable(current: CarelineConfig, site: str) -> frozenset[str]:
    """The site's alarm devices in service that JGJ/T 484 wants tested every week."""
    return frozenset(d.id for d in current.devices if d.site == site and d.active and d.type in TESTED_TYPES)


def _report_filter(
    account: Account, start: datetime | None, end: datetime | None, site: str | None
) -> ReportFilter:
    """The reports' period (the last 30 days unless given, at most LONGEST) and the caller's sites."""
    begin, finish = period(start, end, longest=LONGEST, default=timedelta(days=30))
    return ReportFilter(begin, finish, _sites(account, site))


def _audit_cells(rows: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for row in rows:
        yield {**row, "details": json.dumps(row["details"], ensure_ascii=False, sort_keys=True)}
