"""Which signed-in users may load which page. Every page is a static file (vanilla JS on the REST API,
texts from the catalogue); the server decides who gets it: someone not signed in is sent to the sign-in
page (and brought back after), someone whose role may not use it is refused (403) with a page saying so.
The API refuses them anyway; refusing the page means nobody sees a screen they could not use."""

from __future__ import annotations

from collections.abc import Collection
from html import escape
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from dashboard.auth import Role
from dashboard.deps import current_account
from gateway.catalogue import CATALOGUE, normalize_language

STATIC = Path(__file__).resolve().parent / "static"
#: Everyone at the alarm-receiving centre; a carer's page is their own (`/carer`).
EVERYONE: frozenset[Role] = frozenset({Role.OPERATOR, Role.MANAGER, Role.ADMIN})
MANAGERS: frozenset[Role] = frozenset({Role.MANAGER, Role.ADMIN})


def add_page(router: APIRouter, path: str, file: str, roles: Collection[Role] = EVERYONE) -> None:
    """Serve `static/<file>` at `path` to signed-in users whose role is in `roles`."""

    async def page(request: Request) -> Response:
        try:
            account = await current_account(request)
        except HTTPException:
            return RedirectResponse(f"/?next={quote(path)}", status.HTTP_303_SEE_OTHER)
        if account.role not in roles:
            return refused_page(account.language)
        return FileResponse(STATIC / file)

    router.add_api_route(path, page, methods=["GET"], include_in_schema=False)


def refused_page(account_language: str) -> HTMLResponse:
    language = normalize_language(account_language)
    text = escape(CATALOGUE.text("page.refused", language))
    back = escape(CATALOGUE.text("admin.backToQueue", language))
    body = (
        f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
        f'<title>Careline</title><link rel="stylesheet" href="/static/app.css"></head>'
        f'<body><main><p id="refused">{text}</p><a href="/">{back}</a></main></body></html>'
    )
    return HTMLResponse(body, status.HTTP_403_FORBIDDEN)


def pages_router() -> APIRouter:
    """Every page but the alarm queue (`/`, which is also the sign-in page) and who may open it."""
    router = APIRouter(include_in_schema=False)
    add_page(router, "/admin", "admin.html", MANAGERS)
    add_page(router, "/review", "review.html", MANAGERS)
    add_page(router, "/office/devices", "devices.html", MANAGERS)
    add_page(router, "/office/history", "office-history.html", MANAGERS)
    add_page(router, "/office/audit", "office-audit.html", MANAGERS)
    add_page(router, "/office/reports", "office-reports.html", MANAGERS)
    add_page(router, "/office/quality", "office-quality.html", MANAGERS)
    add_page(router, "/handover", "handover.html")
    add_page(router, "/test-button", "test-button.html")
    add_page(router, "/office/scripts", "scripts.html", MANAGERS)
    add_page(router, "/office/reassurance", "office-reassurance.html", MANAGERS)
    add_page(router, "/office/fever", "fever.html", MANAGERS)
    add_page(router, "/carer", "carer.html", {Role.CARER})
    add_page(router, "/office/visits", "office-visits.html", MANAGERS)
    router.add_api_route("/incident/{incident_id}", _incident_screen, methods=["GET"])
    return router


async def _incident_screen(incident_id: int, request: Request) -> Response:
    """A link to one incident (from the history, the sensor log, a handover): the console opens it on
    the queue page, so the alarm queue and its sound stay with the operator."""
    try:
        account = await current_account(request)
    except HTTPException:
        return RedirectResponse(f"/?next={quote(f'/incident/{incident_id}')}", status.HTTP_303_SEE_OTHER)
    if account.role not in EVERYONE:
        return refused_page(account.language)
    return RedirectResponse(f"/#/incident/{incident_id}", status.HTTP_303_SEE_OTHER)
