"""REST for the operators' console: take / release an incident, notes, people sent, the incident screen,
response scripts (managers edit them) and shift handovers.

Roles are enforced here: any signed-in user works incidents and signs handovers; only managers and
admins edit response scripts or release an incident someone else holds. A user with sites sees only
incidents of those sites: any other answers 404, as if it did not exist. Every change is announced
through the incident service, so every screen sees it over the WebSocket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import APIRouter, Body, HTTPException, Query, Request, status
from fastapi import Path as PathParameter
from pydantic import BaseModel, Field

from dashboard.auth import SESSION_COOKIE, Account, Role
from dashboard.deps import Manager, Operator
from dashboard.openapi import CONFLICT
from devices.model import EventKind
from gateway.catalogue import CATALOGUE, normalize_language
from gateway.incidents.console import (
    ConsoleInputError,
    ConsoleStore,
    DispatchView,
    HeldByAnotherError,
    NoteView,
    NotTheHolderError,
)
from gateway.incidents.handover import HandoverStore, HandoverView
from gateway.incidents.scripts import ScriptView
from gateway.incidents.store import IncidentConflictError, IncidentNotFoundError
from gateway.incidents.views import IncidentView
from gateway.telemetry.reads import SensorFilter, SensorRow, TelemetryQueryError
from rules.categories import KNOWN_RULES

if TYPE_CHECKING:
    from dashboard.api import DashboardContext

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_ID = 2**63 - 1
#: Recent readings on the incident screen: this far back, at most this many per measurement and overall.
READINGS_SPAN = timedelta(hours=24)
READINGS_PER_MEASUREMENT = 50
READINGS_MAX = 200
#: The incident screen does not wait longer than this for the sensor log.
READINGS_WAIT_S = 3.0
#: What each kind of device reports, as kept in the sensor log.
READINGS_BY_TYPE: dict[str, tuple[EventKind, ...]] = {
    "sos_button": (EventKind.SOS, EventKind.BATTERY, EventKind.HEARTBEAT, EventKind.LINK_QUALITY),
    "fall_sensor": (EventKind.FALL, EventKind.PRESENCE, EventKind.HEARTBEAT),
    "door_sensor": (EventKind.DOOR_OPEN, EventKind.DOOR_CLOSED, EventKind.BATTERY),
    "smoke_detector": (EventKind.SMOKE, EventKind.BATTERY),
    "presence_sensor": (EventKind.PRESENCE, EventKind.BATTERY),
    "motion_sensor": (EventKind.MOTION, EventKind.BATTERY),
    "vitals_monitor": (EventKind.HEART_RATE, EventKind.SPO2, EventKind.BODY_TEMPERATURE),
    "bed_sensor": (EventKind.BED_OCCUPIED, EventKind.HEART_RATE),
}
_OTHER_READINGS = (EventKind.BATTERY, EventKind.HEARTBEAT, EventKind.AVAILABILITY)

RowId = Annotated[int, PathParameter(ge=1, le=MAX_ID)]
Rule = Annotated[str, PathParameter(min_length=1, max_length=64)]


class TakeRequest(BaseModel):
    #: Take it over from the operator holding it (audited, naming them).
    force: bool = False


class NoteRequest(BaseModel):
    text: str = Field(min_length=1, max_length=2000)


class DispatchRequest(BaseModel):
    #: A responder of the directory, or None when `who` names someone else (a neighbour, the ambulance).
    responder: str | None = Field(None, min_length=1, max_length=64)
    who: str = Field("", max_length=200)
    note: str = Field("", max_length=2000)


ScriptStep = Annotated[str, Field(min_length=1, max_length=300)]
StepList = Annotated[list[ScriptStep], Field(min_length=1, max_length=20)]


class ScriptSteps(BaseModel):
    en: StepList
    zh_cn: StepList = Field(alias="zh-CN")


class ScriptRequest(BaseModel):
    steps: ScriptSteps


class HandoverRequest(BaseModel):
    notes: str = Field("", max_length=4000)


def console_router(ctx: DashboardContext) -> APIRouter:
    router = APIRouter(tags=["console"])
    console = ConsoleStore(ctx.service.store)
    handovers = HandoverStore(ctx.service.store)

    @router.post("/api/incidents/{incident_id}/take", responses=CONFLICT)
    async def take(
        incident_id: RowId, account: Operator, request: Annotated[TakeRequest | None, Body()] = None
    ) -> IncidentView:
        force = request.force if request is not None else False
        return await _answer(
            account, ctx.service.change(console.take, incident_id, account.username, force, account.scope)
        )

    @router.post("/api/incidents/{incident_id}/release", responses=CONFLICT)
    async def release(incident_id: RowId, account: Operator) -> IncidentView:
        managing = account.role in (Role.MANAGER, Role.ADMIN)
        return await _answer(
            account,
            ctx.service.change(console.release, incident_id, account.username, managing, account.scope),
        )

    @router.get("/api/incidents/{incident_id}/notes")
    async def notes(incident_id: RowId, account: Operator) -> list[NoteView]:
        return await _answer(account, ctx.service.read(console.notes, incident_id, account.scope))

    @router.post("/api/incidents/{incident_id}/notes", responses=CONFLICT)
    async def add_note(incident_id: RowId, note: NoteRequest, account: Operator) -> NoteView:
        added, view = await _answer(
            account,
            ctx.service.write(console.add_note, incident_id, account.username, note.text, account.scope),
        )
        ctx.service.announce([view])
        return added

    @router.post("/api/incidents/{incident_id}/dispatch", responses=CONFLICT)
    async def dispatch(incident_id: RowId, sent: DispatchRequest, account: Operator) -> DispatchView:
        recorded, view = await _answer(
            account,
            ctx.service.write(
                console.dispatch,
                incident_id,
                account.username,
                sent.responder,
                sent.who,
                sent.note,
                account.scope,
            ),
        )
        ctx.service.announce([view])
        return recorded

    @router.get("/api/incidents/{incident_id}/dispatches")
    async def dispatches(incident_id: RowId, account: Operator) -> list[DispatchView]:
        return await _answer(account, ctx.service.read(console.dispatches, incident_id, account.scope))

    @router.get("/api/incidents/{incident_id}/detail")
    async def detail(incident_id: RowId, account: Operator) -> dict[str, Any]:
        """Everything the incident screen shows, in one answer."""
        found = await _answer(account, ctx.service.read(console.detail, incident_id, account.scope))
        device = found["device"]
        device.update(_health(ctx, device["id"]))
        device["readings"] = await _recent_readings(ctx, device["id"], device["type"])
        found["escalation"] = (
            await ctx.service.read(ctx.escalations.notifications, incident_id) if ctx.escalations else []
        )
        return found

    # -- response scripts -----------------------------------------------------------------------------

    @router.get("/api/response-scripts")
    async def scripts(account: Operator) -> list[ScriptView]:
        """Every script managers have written (`site` null: every site); a user with sites sees those
        sites' and the every-site ones. Alarm types without one use the built-in default."""
        written = await ctx.service.read(console.scripts)
        scope = account.scope
        return [s for s in written if scope is None or s.site is None or s.site in scope]

    @router.get("/api/response-scripts/defaults")
    async def default_scripts(_: Operator) -> list[ScriptView]:
        """The built-in script of every alarm type."""
        return [ScriptView.default(rule) for rule in KNOWN_RULES]

    @router.put("/api/response-scripts/{rule}")
    async def put_script(
        rule: Rule,
        script: ScriptRequest,
        account: Manager,
        site: Annotated[str | None, Query(max_length=64)] = None,
    ) -> ScriptView:
        _site_in_scope(account, site)
        steps = {"en": script.steps.en, "zh-CN": script.steps.zh_cn}
        return await _answer(
            account, ctx.service.write(console.put_script, rule, site, steps, account.username)
        )

    @router.delete("/api/response-scripts/{rule}")
    async def delete_script(
        rule: Rule, account: Manager, site: Annotated[str | None, Query(max_length=64)] = None
    ) -> ScriptView:
        """Remove a script; the answer is the script that applies from now on (the all-sites one, or the
        built-in default)."""
        _site_in_scope(account, site)
        return await _answer(account, ctx.service.write(console.delete_script, rule, site, account.username))

    # -- shift handover -------------------------------------------------------------------------------

    @router.get("/api/handovers/draft")
    async def handover_draft(account: Operator, request: Request) -> dict[str, Any]:
        """What the calling user's handover would say if signed now."""
        started = await ctx.service.read(ctx.users.session_started, request.cookies.get(SESSION_COOKIE))
        return await ctx.service.read(handovers.draft, account.username, started, account.scope)

    @router.post("/api/handovers", status_code=status.HTTP_201_CREATED)
    async def sign_handover(handover: HandoverRequest, account: Operator, request: Request) -> HandoverView:
        started = await ctx.service.read(ctx.users.session_started, request.cookies.get(SESSION_COOKIE))
        summary = await ctx.service.read(handovers.draft, account.username, started, account.scope)
        return await ctx.service.write(
            handovers.sign, account.username, handover.notes, summary, account.scope
        )

    @router.get("/api/handovers")
    async def list_handovers(
        account: Operator, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> list[HandoverView]:
        return await ctx.service.read(handovers.handovers, limit, account.scope)

    @router.get("/api/handovers/latest")
    async def latest_handover(account: Operator) -> HandoverView | None:
        """The newest handover the caller may read; null before the first one. Not a 404: every console
        asks at sign-in, and "none yet" is an answer, not an error."""
        result: HandoverView | None = await ctx.service.read(handovers.latest, account.scope)
        return result

    @router.get("/api/handovers/{handover_id}")
    async def one_handover(handover_id: RowId, account: Operator) -> HandoverView:
        found = await ctx.service.read(handovers.handover, handover_id, account.scope)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, _text(account, "handover.notFound"))
        return found

    return router


def _text(account: Account, msgid: str, **params: str | int) -> str:
    return CATALOGUE.text(msgid, normalize_language(account.wording), **params)


def _site_in_scope(account: Account, site: str | None) -> None:
    """A manager with sites writes scripts for those sites only; the all-sites scripts are for those
    who see every site."""
    scope = account.scope
    if scope is not None and (site is None or site not in scope):
        raise HTTPException(status.HTTP_403_FORBIDDEN, _text(account, "script.outsideScope"))


async def _answer(account: Account, pending: Awaitable[T]) -> T:
    """The store's refusals as HTTP answers, worded for the user."""
    try:
        return await pending
    except IncidentNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except HeldByAnotherError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, _text(account, "console.takenBy", user=exc.holder)
        ) from None
    except NotTheHolderError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except IncidentConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except ConsoleInputError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


def _health(ctx: DashboardContext, device_id: str) -> dict[str, Any]:
    """The device's health now, as the telemetry lane last heard it (None: not heard since start)."""
    state = ctx.devices.devices.get(device_id)
    if state is None:
        return {"online": None, "last_seen": None, "battery": None}
    return {"online": state.online, "last_seen": state.last_seen.isoformat(), "battery": state.battery}


async def _recent_readings(
    ctx: DashboardContext, device_id: str, device_type: str | None
) -> list[dict[str, Any]]:
    """The device's readings of the last 24 h from the sensor log, newest first and bounded; empty when
    no sensor log is configured or it cannot be read (the screen must open anyway)."""
    reader = ctx.sensor_log
    if reader is None:
        return []
    end = ctx.service.store.now()
    start = end - READINGS_SPAN
    measurements = READINGS_BY_TYPE.get(device_type or "", _OTHER_READINGS)
    queries = [
        reader.raw(kind, SensorFilter(device=device_id), start, end, limit=READINGS_PER_MEASUREMENT)
        for kind in measurements
    ]
    try:
        async with asyncio.timeout(READINGS_WAIT_S):
            answers = await asyncio.gather(*queries, return_exceptions=True)
    except TimeoutError:
        log.warning("sensor log too slow for the incident screen of device %s", device_id)
        return []
    rows: list[dict[str, Any]] = []
    for kind, answer in zip(measurements, answers, strict=True):
        if isinstance(answer, TelemetryQueryError | ValueError):
            log.warning("sensor log unreadable for %s %s: %s", device_id, kind, answer)
            continue
        if isinstance(answer, BaseException):
            raise answer
        rows += [_reading(kind, row) for row in answer]
    rows.sort(key=lambda row: row["time_ns"], reverse=True)
    return rows[:READINGS_MAX]


def _reading(kind: EventKind, row: SensorRow) -> dict[str, Any]:
    return {
        "measurement": kind.value,
        "time": row.time.isoformat(),
        "time_ns": row.time_ns,
        "value": row.value,
    }
