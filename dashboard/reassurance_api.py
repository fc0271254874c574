"""`/api/office/reassurance`: the managers' view of the daily reassurance calls: a day's calls per
resident and their outcomes, and per site and month the calls placed and answered (JSON or CSV).
Managers and admins only; a manager limited to some sites sees only theirs. Read on the read pool."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from dashboard.auth import Account
from dashboard.deps import Manager
from dashboard.openapi import Responses, json_or_csv, refused
from gateway.catalogue import normalize_language, text
from gateway.config import CarelineConfig
from gateway.incidents.service import IncidentService
from gateway.reports.export import to_csv
from gateway.reports.reassurance import ReassuranceMonth, reassurance_answered, reassurance_day

T = TypeVar("T")
Format = Literal["json", "csv"]
Day = Annotated[str | None, Query(max_length=10, description="site-local day, YYYY-MM-DD (default: today)")]
Month = Annotated[str | None, Query(max_length=7, description="YYYY-MM")]
Site = Annotated[str | None, Query(max_length=64)]
#: At most three years of months in one answer.
MAX_MONTHS = 36
DAY_COLUMNS = (
    "day",
    "site",
    "site_name",
    "resident",
    "resident_name",
    "channel",
    "attempts",
    "first_at",
    "last_status",
    "outcome",
    "answered_at",
    "incident_id",
)
_BAD_DAY: Responses = {400: refused("the day is not a date YYYY-MM-DD")}
_BAD_MONTHS: Responses = {400: refused("the months are not YYYY-MM, in order, at most 36")}
MONTH_COLUMNS = ("site", "site_name", "month", "placed", "answered", "well", "help", "no_answer")


class DayCall(BaseModel):
    resident: str
    resident_name: str
    site: str
    site_name: str
    channel: str
    attempts: int
    first_at: datetime
    last_status: str
    outcome: str | None
    answered_at: datetime | None
    incident_id: int | None


class DayCalls(BaseModel):
    day: str
    residents: list[DayCall]


class MonthRow(BaseModel):
    site: str
    site_name: str
    month: str
    placed: int
    answered: int
    well: int
    help: int
    no_answer: int


class MonthCalls(BaseModel):
    start: str
    end: str
    months: list[MonthRow]


def reassurance_router(
    service: IncidentService, config: Callable[[], CarelineConfig], now: Callable[[], datetime]
) -> APIRouter:
    router = APIRouter(tags=["office"])

    async def read(fn: Callable[[Session], T]) -> T:
        def run() -> T:
            with service.store.reading() as session:
                return fn(session)

        result: T = await service.report(run)
        return result

    def site_names() -> dict[str, str]:
        return {s.id: s.name for s in config().sites}

    def today() -> date:
        sites = config().sites
        return now().astimezone(sites[0].zone).date() if sites else now().date()

    @router.get("/api/office/reassurance", responses={**json_or_csv(DayCalls), **_BAD_DAY})
    async def day_calls(account: Manager, day: Day = None, site: Site = None, format: Format = "json") -> Any:
        """One day's reassurance calls, per resident: attempts, the last call's status, the outcome."""
        wanted = _day(day, account) if day else today()
        names = {r.id: r.name for r in config().residents}
        sites = site_names()
        found = await read(lambda s: reassurance_day(s, _sites(account, site), wanted))
        rows = [
            {
                **dataclasses.asdict(row),
                "resident_name": names.get(row.resident, row.resident),
                "site_name": sites.get(row.site, row.site),
            }
            for row in found
        ]
        if format == "csv":
            cells = [{**row, "day": wanted.isoformat()} for row in rows]
            return _csv(DAY_COLUMNS, cells, f"careline-reassurance-{wanted:%Y%m%d}.csv")
        return {"day": wanted.isoformat(), "residents": rows}

    @router.get("/api/office/reassurance/months", responses={**json_or_csv(MonthCalls), **_BAD_MONTHS})
    async def month_calls(
        account: Manager, start: Month = None, end: Month = None, site: Site = None, format: Format = "json"
    ) -> Any:
        """Per site and month: calls placed and answered, and the days that ended well, with a plea for
        help or unanswered (the last 12 months unless given)."""
        first, last = _months(start, end, today(), account)
        found: list[ReassuranceMonth] = await read(
            lambda s: reassurance_answered(s, _sites(account, site), first, last)
        )
        sites = site_names()
        rows = [{**dataclasses.asdict(row), "site_name": sites.get(row.site, row.site)} for row in found]
        if format == "csv":
            return _csv(MONTH_COLUMNS, rows, f"careline-reassurance-{first:%Y%m}-{last:%Y%m}.csv")
        return {"start": f"{first:%Y-%m}", "end": f"{last:%Y-%m}", "months": rows}

    return router


def _refused(msgid: str, account: Account) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, text(msgid, normalize_language(account.wording)))


def _day(value: str, account: Account) -> date:
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise _refused("reassurance.api.bad_day", account) from None


def _month(value: str) -> date:
    if len(value) != 7:
        raise ValueError(value)
    return date.fromisoformat(value + "-01")


def _months(start: str | None, end: str | None, today: date, account: Account) -> tuple[date, date]:
    """The first day of `start`'s month and the last day of `end`'s (both included)."""
    try:
        last = _month(end) if end else today.replace(day=1)
        first = _month(start) if start else _shift(last, -11)
    except ValueError:
        raise _refused("reassurance.api.bad_months", account) from None
    count = (last.year - first.year) * 12 + last.month - first.month + 1
    if not 1 <= count <= MAX_MONTHS:
        raise _refused("reassurance.api.bad_months", account)
    following = _shift(last, 1)
    return first, date.fromordinal(following.toordinal() - 1)


def _shift(month: date, by: int) -> date:
    index = month.year * 12 + month.month - 1 + by
    return date(index // 12, index % 12 + 1, 1)


def _sites(account: Account, site: str | None) -> frozenset[str] | None:
    scope = account.scope
    if site is None:
        return scope
    if scope is not None and site not in scope:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"site {site} is not one of your sites")
    return frozenset({site})


def _csv(columns: tuple[str, ...], rows: list[dict[str, Any]], name: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(to_csv(columns, rows), media_type="text/csv; charset=utf-8", headers=headers)
