"""The operators' HTTP surface: REST with OpenAPI, a WebSocket of incident changes, /metrics, the page."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import FastAPI, HTTPException, Request, Response, WebSocket, WebSocketDisconnect, status
from fastapi import Path as PathParameter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from dashboard.auth import SESSION_COOKIE, Account, Role, UserStore
from dashboard.catalogue import catalogue_router
from dashboard.console_api import console_router
from dashboard.deps import Manager, Operator, SignedIn
from dashboard.device_board import device_board_router
from dashboard.directory_api import directory_router
from dashboard.hub import IncidentHub
from dashboard.office_api import office_router
from dashboard.openapi import CONFLICT, UNAVAILABLE, Responses, document_refusals, refused
from dashboard.review import sensor_log_router
from dashboard.security import BodyLimit, OriginPolicy, SecurityHeaders, csrf_token
from dashboard.throttle import LockStarted, LoginThrottle, ThrottledError
from devices.model import DEAD_LETTER_PREFIX_BYTES
from gateway.catalogue import CATALOGUE, normalize_language
from gateway.config import CarelineConfig
from gateway.directory.store import DirectoryStore
from gateway.escalation.store import EscalationStore
from gateway.incidents.schema import DeadLetter, Outcome
from gateway.incidents.service import IncidentService
from gateway.incidents.store import (
    ACTIVE,
    DispatchRequiredError,
    IncidentConflictError,
    IncidentNotFoundError,
    NotATestCallError,
)
from gateway.incidents.views import AuditChainView, AuditView, DeviceTestView, IncidentView
from gateway.metrics import Metrics
from gateway.telemetry.reads import SensorLogReader
from gateway.telemetry_lane import DeviceHealth
from rules.categories import category_rank

log = logging.getLogger(__name__)
T = TypeVar("T")
STATIC = Path(__file__).resolve().parent / "static"

StatusFilter = Literal["active", "open", "acknowledged", "resolved", "all"]
IncidentOrder = Literal["newest", "queue"]
_STATUSES: dict[str, tuple[str, ...]] = {
    "active": ACTIVE,
    "open": ("open",),
    "acknowledged": ("acknowledged",),
    "resolved": ("resolved",),
    "all": ("open", "acknowledged", "resolved"),
}
#: Row ids are 64-bit integers: anything larger is refused (422) before it reaches the database.
MAX_ID = 2**63 - 1
IncidentId = Annotated[int, PathParameter(ge=1, le=MAX_ID)]
#: The most incidents one list answers with (the console asks for this many: every active one).
MAX_LISTED = 5000
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/openapi.json")
#: The largest body a request may carry: a directory import (5 MiB) and its multipart framing.
MAX_BODY_BYTES = 6 * 1024 * 1024


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
    origins: OriginPolicy = field(default_factory=OriginPolicy)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    #: /docs and /openapi.json; off unless `http.api_docs` is set.
    api_docs: bool = False
    metrics_enabled: bool = True
    #: When set, /metrics needs `Authorization: Bearer <token>`.
    metrics_token: str | None = None
    #: Why this instance should not take traffic now (empty: ready), for `/api/readyz`.
    readiness: Callable[[], Awaitable[list[str]]] | None = None
    directory: DirectoryStore | None = None
    #: The configuration in force (sites, their time zones and wings; the reports' shifts).
    current_config: Callable[[], CarelineConfig] | None = None


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class Me(BaseModel):
    username: str
    role: Role
    language: str
    #: Send it back as the X-CSRF-Token header with every change (POST).
    csrf_token: str


class Resolution(BaseModel):
    outcome: Outcome
    note: str = Field("", max_length=2000)


class IncidentList(BaseModel):
    incidents: list[IncidentView]


class Stats(BaseModel):
    dead_letters: int
    open_incidents: int


class DeadLetterView(BaseModel):
    id: int
    received_at: str
    lane: str
    topic: str
    reason: str
    device_id: str | None
    #: The kept prefix (at most 4 KiB), decoded as UTF-8 with replacement characters.
    payload: str
    #: The size received, in bytes.
    payload_size: int
    payload_truncated: bool


class DeviceStateView(BaseModel):
    device_id: str
    last_seen: str
    battery: float | None
    online: bool
    link_quality: float | None
    battery_low: bool
    offline_since: str | None
    battery_low_since: str | None


def _dead_letter(row: DeadLetter) -> DeadLetterView:
    # Rows from before migration 0003 kept the whole payload and no size.
    size = len(row.payload) if row.payload_size is None else row.payload_size
    prefix = row.payload[:DEAD_LETTER_PREFIX_BYTES]
    return DeadLetterView(
        id=row.id,
        received_at=row.received_at.isoformat(),
        lane=row.lane,
        topic=row.topic,
        reason=row.reason,
        device_id=row.device_id,
        payload=prefix.decode("utf-8", errors="replace"),
        payload_size=size,
        payload_truncated=size > len(prefix),
    )


class Health(BaseModel):
    status: Literal["ok", "degraded"]


DEGRADED: Responses = {503: {"model": Health, "description": "degraded"}}


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    #: Nothing secret: which part is missing (store, broker, cluster), for whoever runs the balancer.
    reasons: list[str]


NOT_READY: Responses = {503: {"model": Readiness, "description": "not ready"}}


def _me(account: Account, session_token: str) -> Me:
    return Me(
        username=account.username,
        role=account.role,
        language=account.language,
        csrf_token=csrf_token(session_token),
    )


def create_app(ctx: DashboardContext) -> FastAPI:
    app = FastAPI(
        title="Careline",
        version="0.1.0",
        summary="Alarm queue and incident workflow for operators",
        docs_url="/docs" if ctx.api_docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if ctx.api_docs else None,
    )
    app.state.careline = ctx
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(SecurityHeaders, docs_paths=DOCS_PATHS)
    document_refusals(app)

    @app.post(
        "/api/login",
        tags=["session"],
        responses={
            401: refused("wrong user name or password"),
            403: refused("another origin may not sign anyone in"),
            429: refused("too many failed logins; try again after Retry-After seconds"),
        },
    )
    async def login(credentials: Credentials, request: Request, response: Response) -> Me:
        # Another page must not sign the operator's browser in (as someone else) either.
        refusal = ctx.origins.refusal(request)
        if refusal is not None:
            ctx.metrics.http_refused.labels("origin").inc()
            raise HTTPException(status.HTTP_403_FORBIDDEN, refusal)
        account = await _checked_credentials(ctx, credentials, _client_address(request))
        token = await ctx.service.write(ctx.users.open_session, account)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=ctx.secure_cookies,
            max_age=int(ctx.session_hours * 3600),
        )
        return _me(account, token)

    @app.post("/api/logout", status_code=status.HTTP_204_NO_CONTENT, tags=["session"])
    async def logout(_: SignedIn, request: Request, response: Response) -> None:
        await ctx.service.write(ctx.users.logout, request.cookies[SESSION_COOKIE])
        response.delete_cookie(SESSION_COOKIE)

    @app.get("/api/me", tags=["session"])
    async def me(account: SignedIn, request: Request) -> Me:
        return _me(account, request.cookies[SESSION_COOKIE])

    @app.get("/api/incidents", tags=["incidents"])
    async def incidents(
        account: Operator, status: StatusFilter = "active", limit: int = 500, order: IncidentOrder = "newest"
    ) -> IncidentList:
        """Newest first, or in the order the queue is answered (`order=queue`): life-safety first, then
        wandering, wellbeing, technical, each the longest waiting first."""
        wanted = min(max(limit, 1), MAX_LISTED)
        # In queue order the oldest matter most, so the cut comes after the sort, not in SQL's newest-first.
        fetched = MAX_LISTED if order == "queue" else wanted
        rows = await ctx.service.read(ctx.service.store.incidents, _STATUSES[status], fetched, account.scope)
        if order == "queue":
            rows.sort(key=lambda view: (category_rank(view.rule), view.opened_at))
        return IncidentList(incidents=rows[:wanted])

    @app.get("/api/incidents/{incident_id}", tags=["incidents"])
    async def incident(incident_id: IncidentId, account: Operator) -> IncidentView:
        return await _guard(ctx.service.read(ctx.service.store.incident, incident_id, account.scope))

    @app.get("/api/incidents/{incident_id}/audit", tags=["incidents"])
    async def incident_audit(incident_id: IncidentId, account: Operator) -> list[AuditView]:
        await _guard(ctx.service.read(ctx.service.store.incident, incident_id, account.scope))
        return await ctx.service.read(ctx.service.store.audit_trail, incident_id)

    @app.get("/api/incidents/{incident_id}/escalation", tags=["incidents"])
    async def incident_escalation(incident_id: IncidentId, account: Operator) -> list[dict[str, Any]]:
        """Who was contacted, when, through which channel, and what became of it."""
        await _guard(ctx.service.read(ctx.service.store.incident, incident_id, account.scope))
        if ctx.escalations is None:
            return []
        return await ctx.service.read(ctx.escalations.notifications, incident_id)

    @app.post("/api/incidents/{incident_id}/ack", tags=["incidents"], responses=CONFLICT)
    async def acknowledge(incident_id: IncidentId, account: Operator) -> IncidentView:
        return await _guard(ctx.service.acknowledge(incident_id, f"user:{account.username}", account.scope))

    @app.post("/api/incidents/{incident_id}/resolve", tags=["incidents"], responses=CONFLICT)
    async def resolve(incident_id: IncidentId, resolution: Resolution, account: Operator) -> IncidentView:
        """`no_response` is refused (409) until someone has been sent (`/dispatch`)."""
        actor = f"user:{account.username}"
        resolving = ctx.service.resolve(
            incident_id, actor, resolution.outcome, resolution.note, account.scope
        )
        return await _guard(resolving, account.wording)

    @app.get("/api/stats", tags=["monitoring"])
    async def stats(_: Operator) -> Stats:
        store = ctx.service.store
        dead = await ctx.service.read(store.dead_letter_count)
        active = await ctx.service.read(store.active_count)
        return Stats(dead_letters=dead, open_incidents=active)

    @app.get("/api/dead-letters", tags=["monitoring"])
    async def dead_letters(account: Operator, limit: int = 100) -> list[DeadLetterView]:
        """Newest first. `payload` is the kept prefix (at most 4 KiB) and `payload_size` the size received.
        A user of some sites sees only the letters of their sites' devices."""
        devices = None if account.scope is None else _devices_of(ctx, account.scope)
        rows = await ctx.service.read(ctx.service.store.dead_letters, min(max(limit, 1), 1000), devices)
        return [_dead_letter(r) for r in rows]

    @app.get("/api/device-tests", tags=["monitoring"])
    async def device_tests(account: Operator) -> list[DeviceTestView]:
        """Each tested device's last test and count, the longest untested first."""
        tests = await ctx.service.read(ctx.service.store.device_tests)
        return [t for t in tests if account.scope is None or t.site in account.scope]

    @app.get("/api/devices", tags=["monitoring"])
    async def devices(account: Operator) -> list[DeviceStateView]:
        """Health of the devices heard since the start; a user of some sites sees their sites' devices."""
        seen = list(ctx.devices.devices.values())
        if account.scope is not None:
            mine = _devices_of(ctx, account.scope)
            seen = [s for s in seen if s.device_id in mine]
        return [
            DeviceStateView(
                device_id=s.device_id,
                last_seen=s.last_seen.isoformat(),
                battery=s.battery,
                online=s.online,
                link_quality=s.link_quality,
                battery_low=s.battery_low,
                offline_since=s.offline_since.isoformat() if s.offline_since else None,
                battery_low_since=s.battery_low_since.isoformat() if s.battery_low_since else None,
            )
            for s in seen
        ]

    app.include_router(sensor_log_router(ctx))
    app.include_router(catalogue_router())
    app.include_router(directory_router())
    app.include_router(device_board_router())
    app.include_router(office_router(ctx))
    app.include_router(console_router(ctx))

    @app.get("/api/audit/verify", tags=["audit"])
    async def audit_verify(_: Manager) -> AuditChainView:
        """Recompute the audit trail's hash chain: intact, or the first entry that was changed or follows
        a removed one."""
        return await ctx.service.read(ctx.service.store.audit_chain)

    @app.get("/api/healthz", tags=["monitoring"], responses=DEGRADED)
    async def healthz(response: Response) -> Health:
        """For load balancers and the container's health check: "degraded" (503) while the alarm path
        cannot commit promptly or a lane has lost its broker. Details need a login."""
        health = _health(ctx, response)
        return Health(status="ok" if health["status"] == "ok" else "degraded")

    @app.get("/api/readyz", tags=["monitoring"], responses=NOT_READY)
    async def readyz(response: Response) -> Readiness:
        """For a load balancer in front of several instances: "ready" once this instance has its store
        and its broker's alarm lane (and, with a cluster, has joined it); 503 with the reasons until
        then, so no operator's screen is sent to an instance that cannot show or take alarms.
        `/api/healthz` is the liveness check: degraded, the process may need a restart."""
        reasons = await ctx.readiness() if ctx.readiness is not None else []
        if reasons:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Readiness(status="not ready" if reasons else "ready", reasons=reasons)

    @app.get("/api/health/details", tags=["monitoring"], responses=UNAVAILABLE)
    async def health_details(_: Operator, response: Response) -> dict[str, Any]:
        """Why the gateway is degraded, lane by lane (503 while it is)."""
        return _health(ctx, response)

    if ctx.metrics_enabled:

        @app.get("/metrics", include_in_schema=False)
        async def metrics(request: Request) -> Response:
            if ctx.metrics_token is not None and not _bearer_matches(request, ctx.metrics_token):
                ctx.metrics.http_refused.labels("metrics_token").inc()
                raise HTTPException(
                    status.HTTP_401_UNAUTHORIZED,
                    "metrics need the bearer token",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.websocket("/api/ws")
    async def incident_feed(websocket: WebSocket) -> None:
        # Browsers send any page's cookies with a WebSocket handshake; only the gateway's own pages
        # (and trusted origins) may open the feed.
        refusal = ctx.origins.refusal(websocket)
        if refusal is not None:
            ctx.metrics.http_refused.labels("websocket_origin").inc()
            await websocket.close(code=4403, reason=refusal[:120])
            return
        account = await ctx.service.read(ctx.users.account_for, websocket.cookies.get(SESSION_COOKIE))
        if account is None:
            await websocket.close(code=4401, reason="log in first")
            return
        if account.role == Role.CARER:
            await websocket.close(code=4403, reason="carers use the carer's page")
            return
        await websocket.accept()
        # A tester's page (`?view=tests`) follows test presses; it is not a console anyone answers
        # alarms on, so it does not count as the console being staffed (gateway/duty.py).
        console_of = None if websocket.query_params.get("view") == "tests" else account.username
        await _stream(websocket, ctx, account.scope, console_of)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _client_address(request: Request) -> str:
    # Behind a reverse proxy this is the proxy unless uvicorn trusts its X-Forwarded-For
    # (FORWARDED_ALLOW_IPS); see docs/configuration.md.
    return request.client.host if request.client else "unknown"


async def _checked_credentials(ctx: DashboardContext, credentials: Credentials, address: str) -> Account:
    """The account, or 401 for wrong credentials and 429 while the user name or address is locked."""
    username, throttle = credentials.username, ctx.throttle
    try:
        throttle.begin(username, address)
    except ThrottledError as exc:
        ctx.metrics.login_throttled.labels(exc.scope.value).inc()
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed logins for this {exc.scope.value}; try again in {exc.retry_after_header} s",
            headers={"Retry-After": exc.retry_after_header},
        ) from None
    try:
        account = await ctx.service.read(ctx.users.authenticate, username, credentials.password)
    except BaseException:
        throttle.abandoned(username, address)
        raise
    if account is not None:
        throttle.succeeded(username, address)
        return account
    ctx.metrics.login_failures.inc()
    for lock in throttle.failed(username, address):
        await _audit_lock(ctx, lock, address)
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")


async def _audit_lock(ctx: DashboardContext, lock: LockStarted, address: str) -> None:
    ctx.metrics.login_locks.labels(lock.scope.value).inc()
    details = {"scope": lock.scope.value, "key": lock.key, "failures": lock.failures, "address": address}
    try:
        await ctx.service.write(ctx.service.store.record, "dashboard", "login.locked", details)
    except Exception:
        # The refusal stands even if the store cannot take the note; the log keeps it instead.
        log.exception("could not audit a login lock: %s", details)


def _bearer_matches(request: Request, token: str) -> bool:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


def _health(ctx: DashboardContext, response: Response) -> dict[str, Any]:
    health = ctx.health()
    if health.get("status") != "ok":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return health


def _devices_of(ctx: DashboardContext, sites: frozenset[str]) -> frozenset[str]:
    """Ids of the directory's devices at `sites` (retired ones too: their history is still theirs)."""
    config = ctx.current_config() if ctx.current_config else None
    return frozenset(d.id for d in config.devices if d.site in sites) if config else frozenset()


async def _stream(
    websocket: WebSocket, ctx: DashboardContext, scope: frozenset[str] | None, console_of: str | None
) -> None:
    queue = ctx.hub.connect(scope, console_of=console_of)
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


async def _guard(pending: Awaitable[T], language: str = "en") -> T:
    try:
        result = await pending
    except DispatchRequiredError:
        detail = CATALOGUE.text("console.noResponseNeedsDispatch", normalize_language(language))
        raise HTTPException(status.HTTP_409_CONFLICT, detail) from None
    except NotATestCallError:
        detail = CATALOGUE.text("console.testCallOnlySos", normalize_language(language))
        raise HTTPException(status.HTTP_409_CONFLICT, detail) from None
    except IncidentNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except IncidentConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return result
