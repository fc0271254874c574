"""Body temperatures taken by carers, and the managers' list of feverish residents (docs/risks.md).

`POST /api/residents/{resident_id}/temperature`: any signed-in staff member, for a resident of their
sites. The reading is kept in the incident store (audited, counted for the site's fever cluster in the
same transaction) and handed to the telemetry process, which writes it to InfluxDB as a reading.
`GET /api/office/fever`: managers, the feverish residents of their sites within each site's window.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field

from dashboard.deps import Manager, Operator
from dashboard.openapi import NOT_FOUND
from devices.model import DeviceEvent, DeviceType, EventKind
from gateway.catalogue import CATALOGUE, normalize_language
from gateway.config import CarelineConfig, ResidentConfig, SiteConfig
from gateway.incidents.fever import FeverishResident, feverish_now
from gateway.incidents.store import AlarmBatch, RuledDecision
from rules.wellbeing.fever import temperature_taken

#: The device id a carer's entry carries in the sensor log.
MANUAL_DEVICE = "manual-entry"


class TemperatureEntry(BaseModel):
    #: Degrees Celsius, as read from the thermometer.
    celsius: float = Field(ge=30, le=45)


class TemperatureRecorded(BaseModel):
    resident: str
    site: str
    celsius: float
    fever: bool
    taken_at: datetime
    #: The site's fever-cluster incident this reading opened or joined, if any.
    cluster_incident: int | None


class FeverishResidentView(BaseModel):
    resident: str
    resident_name: str
    site: str
    site_name: str
    room: str | None
    highest_celsius: float
    last_celsius: float
    last_taken_at: datetime
    last_source: str
    readings: int


class FeverList(BaseModel):
    window_hours: float
    residents: list[FeverishResidentView]


def risks_router(readings: Callable[[Sequence[DeviceEvent]], None] | None = None) -> APIRouter:
    """`readings` takes the entered temperature to the sensor log (the telemetry process)."""
    router = APIRouter()

    @router.post("/api/residents/{resident_id}/temperature", responses=NOT_FOUND)
    async def record_temperature(
        request: Request, account: Operator, resident_id: str, entry: TemperatureEntry
    ) -> TemperatureRecorded:
        ctx = request.app.state.careline
        config: CarelineConfig = ctx.current_config()
        resident = _resident(config, resident_id, account.scope, account.wording)
        site = _site(config, resident.site)
        now = ctx.service.store.now()
        event = DeviceEvent(
            device_id=MANUAL_DEVICE,
            device_type=DeviceType.OTHER,
            site=resident.site,
            room=resident.room,
            resident=resident.id,
            kind=EventKind.BODY_TEMPERATURE,
            value=entry.celsius,
            ts=now,
            received_at=now,
            message_key=f"manual:{uuid.uuid4().hex}",
            extra={"manual": True, "recorded_by": account.username},
        )
        taken = temperature_taken(event, entry.celsius, site.wellbeing.fever, account.username)
        result = await ctx.service.apply(AlarmBatch([RuledDecision(taken, check_duplicate=False)]))
        if readings is not None:
            readings([event])
        cluster = next((view.id for view in result.changed), None)
        return TemperatureRecorded(
            resident=resident.id,
            site=resident.site,
            celsius=entry.celsius,
            fever=taken.fever,
            taken_at=now,
            cluster_incident=cluster,
        )

    @router.get("/api/office/fever")
    async def fever_list(request: Request, account: Manager) -> FeverList:
        ctx = request.app.state.careline
        config: CarelineConfig = ctx.current_config()
        # One window for the list: the longest any site counts over, so no site's cluster is cut short.
        hours = max((s.wellbeing.fever.window_hours for s in config.sites), default=24.0)
        found = await ctx.service.read(feverish_now, ctx.service.store, account.scope, timedelta(hours=hours))
        residents = {r.id: r for r in config.residents}
        sites = {s.id: s.name for s in config.sites}
        return FeverList(
            window_hours=hours,
            residents=[_view(line, residents.get(line.resident), sites) for line in found],
        )

    return router


def _view(
    line: FeverishResident, resident: ResidentConfig | None, sites: dict[str, str]
) -> FeverishResidentView:
    return FeverishResidentView(
        resident=line.resident,
        resident_name=resident.name if resident is not None else line.resident,
        site=line.site,
        site_name=sites.get(line.site, line.site),
        room=resident.room if resident is not None else None,
        highest_celsius=line.highest_celsius,
        last_celsius=line.last_celsius,
        last_taken_at=line.last_taken_at,
        last_source=line.last_source,
        readings=line.readings,
    )


def _resident(
    config: CarelineConfig, resident_id: str, scope: frozenset[str] | None, language: str
) -> ResidentConfig:
    found = next((r for r in config.residents if r.id == resident_id and r.active), None)
    if found is None or (scope is not None and found.site not in scope):
        # Not theirs reads as not there: a scoped user learns nothing of other sites' residents.
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            CATALOGUE.text("risks.api.no_resident", normalize_language(language), id=resident_id),
        )
    return found


def _site(config: CarelineConfig, site_id: str) -> SiteConfig:
    return next(s for s in config.sites if s.id == site_id)
