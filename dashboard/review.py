"""Managers' review of sensor logs: readings and events from InfluxDB (InfluxQL) of a resident, a room or
a device, the alarms raised in the same period, CSV export. Reads go to InfluxDB and the store's read
pool, never near the alarm lane. A manager with sites reads only theirs: the site is then required (or
taken as their only one), and another site's is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import Response
from pydantic import AfterValidator

from dashboard.auth import Account
from dashboard.deps import Manager
from dashboard.openapi import JSON_OR_CSV, refused
from gateway.incidents.views import IncidentView
from gateway.telemetry.reads import SensorFilter, SensorRow, TelemetryQueryError, to_csv

MAX_SPAN = timedelta(days=92)
#: Review periods lie in these years; anything else is a typo, and year 1 or 9999 would overflow the
#: arithmetic below (and InfluxDB's nanosecond timestamps).
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)


def _plausible(moment: datetime) -> datetime:
    """In UTC (a time without a zone is taken as UTC, as the API writes them) and within the years above."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("date out of range") from None
    if not EARLIEST <= moment < LATEST:
        raise ValueError(f"give a time between {EARLIEST.year} and {LATEST.year}")
    return moment


ReviewTime = Annotated[datetime, AfterValidator(_plausible)]


def period(
    start: datetime | None,
    end: datetime | None,
    *,
    longest: timedelta = MAX_SPAN,
    default: timedelta = timedelta(hours=24),
) -> tuple[datetime, datetime]:
    """[start, end) in UTC: `end` defaults to now, `start` to `default` before it; 422 unless start is
    before end and at most `longest` apart."""
    end = (end or datetime.now(UTC)).astimezone(UTC)
    start = (start or end - default).astimezone(UTC)
    if start >= end or end - start > longest:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"start must be before end, at most {longest.days} days apart",
        )
    return start, end


def _site_in_scope(account: Account, site: str | None) -> str | None:
    """The site to read: as given, or the user's only one; 403 for a site not theirs, 422 if they have
    several and gave none (their readings could otherwise mix with other sites')."""
    scope = account.scope
    if scope is None:
        return site
    if site is None:
        if len(scope) == 1:
            return next(iter(scope))
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "choose one of your sites")
    if site not in scope:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"site {site!r} is not one of yours")
    return site


def _row(row: SensorRow) -> dict[str, Any]:
    return {"time": row.time.isoformat(), "value": row.value, "tags": dict(row.tags)}


def sensor_log_router(ctx: Any) -> APIRouter:
    router = APIRouter(tags=["review"])

    @router.get(
        "/api/sensor-log",
        responses={
            **JSON_OR_CSV,
            404: refused("no telemetry store is configured"),
            502: refused("the telemetry store did not answer"),
        },
    )
    async def sensor_log(
        account: Manager,
        measurement: str,
        site: str | None = None,
        room: str | None = None,
        resident: str | None = None,
        device: str | None = None,
        start: ReviewTime | None = None,
        end: ReviewTime | None = None,
        every: str | None = Query(None, description="aggregate into windows, e.g. 1m, 15m, 1h"),
        fn: Literal["mean", "count", "min", "max"] = "mean",
        limit: int = Query(10_000, ge=1, le=100_000),
        format: Literal["json", "csv"] = "json",
    ) -> Any:
        if ctx.sensor_log is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no telemetry store is configured")
        begin, finish = period(start, end)
        site = _site_in_scope(account, site)
        filters = SensorFilter(site=site, room=room, resident=resident, device=device)
        try:
            rows = await (
                # Per device: a room's or a resident's devices are each a series of their own.
                ctx.sensor_log.aggregated(
                    measurement, filters, begin, finish, every=every, fn=fn, by=("device",)
                )
                if every
                else ctx.sensor_log.raw(measurement, filters, begin, finish, limit=limit)
            )
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        except TelemetryQueryError as exc:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from None
        if format == "csv":
            name = f"careline-{measurement}-{begin:%Y%m%d%H%M}-{finish:%Y%m%d%H%M}.csv"
            return Response(
                to_csv(rows),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )
        return {
            "measurement": measurement,
            "start": begin.isoformat(),
            "end": finish.isoformat(),
            "rows": [_row(r) for r in rows],
        }

    @router.get("/api/review/alarms")
    async def alarms(
        account: Manager,
        site: str | None = None,
        room: str | None = None,
        resident: str | None = None,
        device: str | None = None,
        start: ReviewTime | None = None,
        end: ReviewTime | None = None,
    ) -> list[IncidentView]:
        """Incidents opened in the period (newest first) of the resident, room or device reviewed."""
        begin, finish = period(start, end)
        site = _site_in_scope(account, site)
        store = ctx.service.store
        return list(
            await ctx.service.report(store.incidents_between, begin, finish, site, resident, device, room)
        )

    return router
