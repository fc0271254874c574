"""Planned home visits over HTTP: the carer's page (`/api/carer/…`, carers only, their own visits) and
the managers' view of visits done against planned (`/api/office/visits`, managers, site-scoped, CSV).

A carer's account is linked to the directory by its user name: it is the carer's responder id
(docs/visits.md). Changes run on the store's writer thread (audited); reads on the read pool.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.responses import Response
from pydantic import BaseModel, Field

from dashboard.auth import Account
from dashboard.deps import Carer, Manager
from dashboard.openapi import JSON_OR_CSV
from dashboard.review import ReviewTime, period
from gateway.catalogue import CATALOGUE, normalize_language
from gateway.clock import Clock
from gateway.config import CarelineConfig, ResidentConfig, ResponderConfig
from gateway.incidents.service import IncidentService
from gateway.reports.export import to_csv
from gateway.reports.visits import VISIT_COLUMNS, visits_per_carer, visits_per_site
from gateway.visits import CHECKLIST, CHECKLIST_ANSWERS, VisitError, VisitStore, VisitView

VisitId = Annotated[int, Path(ge=1, le=2**62)]
Answer = Literal["yes", "no", "concern"]
Item = Literal["eats_drinks", "takes_medicine", "home_safe_warm", "mood", "mobility"]
_REFUSALS = {
    "not_found": status.HTTP_404_NOT_FOUND,
    "not_yours": status.HTTP_404_NOT_FOUND,
    "too_early": status.HTTP_409_CONFLICT,
    "not_started": status.HTTP_409_CONFLICT,
    "finished": status.HTTP_409_CONFLICT,
    "bad_checklist": status.HTTP_422_UNPROCESSABLE_CONTENT,
}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "not now: too early, or not under way"}}


class VisitRecord(BaseModel):
    """What the carer records: the checklist's answers given so far, and notes."""

    checklist: dict[Item, Answer] = Field(default_factory=dict)
    notes: Annotated[str, Field(max_length=4000)] | None = None


def _text(account: Account, msgid: str, **params: str | int) -> str:
    return CATALOGUE.text(msgid, normalize_language(account.wording), **params)


def _resident_card(resident: ResidentConfig | None) -> dict[str, Any]:
    if resident is None:
        return {}
    # What the carer needs at the door; the key-safe code stays with the coordinator (docs/visits.md).
    return {
        "name": resident.name,
        "address": resident.address,
        "access_notes": resident.access_notes,
        "conditions": list(resident.conditions),
        "risks": list(resident.risks),
        "notes": resident.notes,
        "languages": list(resident.languages),
        "photo_url": resident.photo_url,
        "contacts": [
            {"name": c.name, "relation": c.relation, "phones": list(c.phones)} for c in resident.contacts
        ],
    }


def visits_router(
    visits: VisitStore, service: IncidentService, current_config: Callable[[], CarelineConfig], clock: Clock
) -> APIRouter:
    router = APIRouter()

    def carer_of(account: Account) -> ResponderConfig:
        for responder in current_config().responders:
            if responder.id == account.username:
                return responder
        raise HTTPException(status.HTTP_403_FORBIDDEN, _text(account, "visits.error.no_carer"))

    def shown(visit: VisitView) -> dict[str, Any]:
        config = current_config()
        resident = next((r for r in config.residents if r.id == visit.resident), None)
        site = next((s for s in config.sites if s.id == visit.site), None)
        return {
            **visit.as_json(),
            "resident_card": _resident_card(resident),
            "site_name": site.name if site else visit.site,
            "site_access_notes": site.access_notes if site else None,
            # The page shows the plan's times on the site's clock, not the phone's.
            "site_timezone": site.timezone if site else "UTC",
        }

    def refused(account: Account, exc: VisitError) -> HTTPException:
        return HTTPException(_REFUSALS[exc.code], _text(account, f"visits.error.{exc.code}"))

    @router.get("/api/carer/visits", tags=["visits"])
    async def carer_visits(account: Carer, days: Annotated[int, Query(ge=1, le=14)] = 7) -> dict[str, Any]:
        """The signed-in carer's visits from the start of their site's today for `days` days, and any
        still under way; with each elder's address, access notes and conditions."""
        carer = carer_of(account)
        now = clock.now()
        config = current_config()
        zone = config.site(carer.sites[0]).zone if carer.sites else None
        local = now.astimezone(zone) if zone else now
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        found = await service.read(visits.of_carer, carer.id, start, start + timedelta(days=days))
        return {
            "carer": {"id": carer.id, "name": carer.name},
            "now": now.isoformat(),
            "checklist": list(CHECKLIST),
            "answers": list(CHECKLIST_ANSWERS),
            "visits": [shown(visit) for visit in found],
        }

    @router.post("/api/carer/visits/{visit_id}/check-in", tags=["visits"], responses=CONFLICT)
    async def check_in(visit_id: VisitId, account: Carer) -> dict[str, Any]:
        carer = carer_of(account)
        try:
            arrival = await service.write(visits.check_in, visit_id, carer.id, "page", clock.now())
        except VisitError as exc:
            raise refused(account, exc) from None
        if arrival.incident is not None:
            service.announce([arrival.incident])
        return shown(arrival.visit)

    @router.post("/api/carer/visits/{visit_id}/check-out", tags=["visits"], responses=CONFLICT)
    async def check_out(visit_id: VisitId, record: VisitRecord, account: Carer) -> dict[str, Any]:
        carer = carer_of(account)
        try:
            visit = await service.write(
                visits.check_out,
                visit_id,
                carer.id,
                "page",
                clock.now(),
                {str(k): str(v) for k, v in record.checklist.items()},
                record.notes,
            )
        except VisitError as exc:
            raise refused(account, exc) from None
        return shown(visit)

    @router.put("/api/carer/visits/{visit_id}/record", tags=["visits"], responses=CONFLICT)
    async def record_visit(visit_id: VisitId, record: VisitRecord, account: Carer) -> dict[str, Any]:
        """The checklist and notes while there (or put right after): the visit's status stays."""
        carer = carer_of(account)
        try:
            visit = await service.write(
                visits.record,
                visit_id,
                carer.id,
                {str(k): str(v) for k, v in record.checklist.items()},
                record.notes,
            )
        except VisitError as exc:
            raise refused(account, exc) from None
        return shown(visit)

    @router.get("/api/office/visits", tags=["office"], responses=JSON_OR_CSV)
    async def office_visits(
        account: Manager,
        start: ReviewTime | None = None,
        end: ReviewTime | None = None,
        site: Annotated[str | None, Query(max_length=64)] = None,
        format: Literal["json", "csv"] = "json",
    ) -> Any:
        """Visits done against planned per carer and per site over the period (the last 28 days unless
        given), late and missed counted; `format=csv` gives the per-carer and per-site rows."""
        begin, finish = period(start, end, longest=timedelta(days=400), default=timedelta(days=28))
        sites = _sites(account, site)
        per_carer = await service.report(_counted, visits, visits_per_carer, sites, begin, finish)
        per_site = await service.report(_counted, visits, visits_per_site, sites, begin, finish)
        names = {r.id: r.name for r in current_config().responders}
        carers = [{**row, "name": names.get(row["key"], row["key"])} for row in per_carer]
        if format == "csv":
            rows = [{**row, "key": f"carer:{row['key']}"} for row in carers]
            rows += [{**row, "key": f"site:{row['key']}"} for row in per_site]
            name = f"careline-visits-{begin:%Y%m%d}-{finish:%Y%m%d}.csv"
            headers = {"Content-Disposition": f'attachment; filename="{name}"'}
            return Response(
                to_csv(VISIT_COLUMNS, rows), media_type="text/csv; charset=utf-8", headers=headers
            )
        return {"start": begin.isoformat(), "end": finish.isoformat(), "carers": carers, "sites": per_site}

    return router


def _sites(account: Account, site: str | None) -> frozenset[str] | None:
    scope = account.scope
    if site is None:
        return scope
    if scope is not None and site not in scope:
        raise HTTPException(status.HTTP_403_FORBIDDEN, _text(account, "visits.error.not_your_site"))
    return frozenset({site})


def _counted(
    visits: VisitStore,
    count: Callable[..., list[Any]],
    sites: frozenset[str] | None,
    start: datetime,
    end: datetime,
) -> list[dict[str, Any]]:
    with visits.reading() as session:
        return [row.as_row() for row in count(session, sites, start, end)]
