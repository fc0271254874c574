"""The operators' HTTP surface: REST with OpenAPI, a WebSocket of incident changes, /metrics, the page."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from fastapi import FastAPI, HTTPException, Request, Response, WebSocket, WebSocketDisconnect, status
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from dashboard.auth import SESSION_COOKIE, Account, Role, UserStore
from dashboard.catalogue import catalogue_router
from dashboard.deps import Operator
from dashboard.directory_api import directory_router
from dashboard.hub import IncidentHub
from dashboard.review import sensor_log_router
from gateway.directory.store import DirectoryStore
from gateway.escalation.store import EscalationStore
from gateway.incidents.schema import Outcome
from gateway.incidents.service import IncidentService
from gateway.incidents.store import ACTIVE, IncidentConflictError, IncidentNotFoundError
from gateway.incidents.views import AuditView, DeviceTestView, IncidentView
from gateway.metrics import Metrics
from gateway.telemetry.reads import SensorLogReader
from gateway.telemetry_lane import DeviceHealth

log = logging.getLogger(__name__)
T = TypeVar("T")
STATIC = Path(__file__).resolve().parent / "static"

StatusFilter = Literal["active", "open", "acknowledged", "resolved", "all"]
_STATUSES: dict[str, tuple[str, ...]] = {
    "active": ACTIVE,
    "open": ("open",),
    "acknowledged": ("acknowledged",),
    "resolved": ("resolved",),
    "all": ("open", "acknowledged", "resolved"),
}


@dataclass
class DashboardContext:
    service: IncidentService
    users: UserStore
    hub: IncidentHub
    metrics: Metrics
    devices: DeviceHealth
    health: Callable[[], dict[str, Any]]
    secure_cookies: bool = False
    session_hours: float = 12.0
    escalations: EscalationStore | None = None
    sensor_log: SensorLogReader | None = None
    directory: DirectoryStore | None = None


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class Me(BaseModel):
    username: str
    role: Role
    language: str


class Resolution(BaseModel):
    outcome: Outcome
    note: str = Field("", max_length=2000)


class IncidentList(BaseModel):
    incidents: list[IncidentView]


class Stats(BaseModel):
    dead_letters: int
    open_incidents: int


def _me(account: Account) -> Me:
    return Me(username=account.username, role=account.role, language=account.language)


def create_app(ctx: DashboardContext) -> FastAPI:
    app = FastAPI(
        title="Careline", version="0.1.0", summary="Alarm queue and incident workflow for operators"
    )
    app.state.careline = ctx

    @app.post("/api/login", tags=["session"])
    async def login(credentials: Credentials, response: Response) -> Me:
        found = await ctx.service.read(ctx.users.login, credentials.username, credentials.password)
        if found is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
        account, token = found
        response.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=ctx.secure_cookies,
            max_age=int(ctx.session_hours * 3600),
        )
        return _me(account)

    @app.post("/api/logout", status_code=status.HTTP_204_NO_CONTENT, tags=["session"])
    async def logout(request: Request, response: Response) -> None:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await ctx.service.read(ctx.users.logout, token)
        response.delete_cookie(SESSION_COOKIE)

    @app.get("/api/me", tags=["session"])
    async def me(account: Operator) -> Me:
        return _me(account)

    @app.get("/api/incidents", tags=["incidents"])
    async def incidents(_: Operator, status: StatusFilter = "active", limit: int = 500) -> IncidentList:
        rows = await ctx.service.read(
            ctx.service.store.incidents, _STATUSES[status], min(max(limit, 1), 5000)
        )
        return IncidentList(incidents=rows)

    @app.get("/api/incidents/{incident_id}", tags=["incidents"])
    async def incident(incident_id: int, _: Operator) -> IncidentView:
        return await _guard(ctx.service.read(ctx.service.store.incident, incident_id))

    @app.get("/api/incidents/{incident_id}/audit", tags=["incidents"])
    async def incident_audit(incident_id: int, _: Operator) -> list[AuditView]:
        return await ctx.service.read(ctx.service.store.audit_trail, incident_id)

    @app.get("/api/incidents/{incident_id}/escalation", tags=["incidents"])
    async def incident_escalation(incident_id: int, _: Operator) -> list[dict[str, Any]]:
        """Who was contacted, when, through which channel, and what became of it."""
        if ctx.escalations is None:
            return []
        return await ctx.service.read(ctx.escalations.notifications, incident_id)

    @app.post("/api/incidents/{incident_id}/ack", tags=["incidents"])
    async def acknowledge(incident_id: int, account: Operator) -> IncidentView:
        return await _guard(ctx.service.acknowledge(incident_id, f"user:{account.username}"))

    @app.post("/api/incidents/{incident_id}/resolve", tags=["incidents"])
    async def resolve(incident_id: int, resolution: Resolution, account: Operator) -> IncidentView:
        return await _guard(
            ctx.service.resolve(incident_id, f"user:{account.username}", resolution.outcome, resolution.note)
        )

    @app.get("/api/stats", tags=["monitoring"])
    async def stats(_: Operator) -> Stats:
        store = ctx.service.store
        dead = await ctx.service.read(store.dead_letter_count)
        active = await ctx.service.read(store.active_count)
        return Stats(dead_letters=dead, open_incidents=active)

    @app.get("/api/dead-letters", tags=["monitoring"])
    async def dead_letters(_: Operator, limit: int = 100) -> list[dict[str, Any]]:
        rows = await ctx.service.read(ctx.service.store.dead_letters, min(max(limit, 1), 1000))
        return [
            {
                "id": r.id,
                "received_at": r.received_at.isoformat(),
                "lane": r.lane,
                "topic": r.topic,
                "reason": r.reason,
                "device_id": r.device_id,
                "payload": r.payload[:2000].decode("utf-8", errors="replace"),
            }
            for r in rows
        ]

    @app.get("/api/device-tests", tags=["monitoring"])
    async def device_tests(_: Operator) -> list[DeviceTestView]:
        """Each tested device's last test and count, the longest untested first."""
        return await ctx.service.read(ctx.service.store.device_tests)

    @app.get("/api/devices", tags=["monitoring"])
    async def devices(_: Operator) -> list[dict[str, Any]]:
        return [
            {
                "device_id": s.device_id,
                "last_seen": s.last_seen.isoformat(),
                "battery": s.battery,
                "online": s.online,
            }
            for s in ctx.devices.devices.values()
        ]

    app.include_router(sensor_log_router(ctx))
    app.include_router(catalogue_router())
    app.include_router(directory_router())

    @app.get("/api/healthz", tags=["monitoring"])
    async def healthz(response: Response) -> dict[str, Any]:
        health = ctx.health()
        if health.get("status") != "ok":
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return health

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.websocket("/api/ws")
    async def incident_feed(websocket: WebSocket) -> None:
        account = await ctx.service.read(ctx.users.account_for, websocket.cookies.get(SESSION_COOKIE))
        if account is None:
            await websocket.close(code=4401, reason="log in first")
            return
        await websocket.accept()
        await _stream(websocket, ctx)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/review", include_in_schema=False)
    async def review_page() -> FileResponse:
        return FileResponse(STATIC / "review.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


async def _stream(websocket: WebSocket, ctx: DashboardContext) -> None:
    queue = ctx.hub.connect()
    ctx.metrics.websocket_clients.set(len(ctx.hub))
    watcher = asyncio.create_task(_until_client_leaves(websocket, queue))
    try:
        await websocket.send_json({"type": "hello"})
        while (frame := await queue.get()) is not None:
            await websocket.send_json(frame)
        if not watcher.done():
            await websocket.close(code=4408, reason="too slow; reconnect to resync")
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        watcher.cancel()
        ctx.hub.disconnect(queue)
        ctx.metrics.websocket_clients.set(len(ctx.hub))


async def _until_client_leaves(websocket: WebSocket, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
    """Operators only listen; this reads their side so a closed screen ends the stream at once."""
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    except (WebSocketDisconnect, RuntimeError):
        pass
    while queue.full():
        queue.get_nowait()
    queue.put_nowait(None)


async def _guard(pending: Awaitable[T]) -> T:
    try:
        result = await pending
    except IncidentNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except IncidentConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return result
