"""The administration page (`/admin`): residents, devices, sites, responders, users, imports and the
pairing of new Zigbee devices, for managers and admins.

The page is static (dashboard/static/admin.html and admin.js, vanilla JS modules calling the directory's
REST API, texts from the catalogue); the server decides who may load it: someone not signed in is sent
to the sign-in page, an operator is refused (403). The API refuses their changes anyway; refusing the
page means an operator never sees a form they could not submit.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from dashboard.auth import Role
from dashboard.deps import current_account
from gateway.catalogue import CATALOGUE, normalize_language

_STATIC = Path(__file__).resolve().parent / "static"


def admin_pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/admin")
    async def admin_page(request: Request) -> Response:
        try:
            account = await current_account(request)
        except HTTPException:
            return RedirectResponse("/", status.HTTP_303_SEE_OTHER)
        if account.role == Role.OPERATOR:
            language = normalize_language(account.language)
            text = escape(CATALOGUE.text("admin.refused", language))
            back = escape(CATALOGUE.text("admin.backToQueue", language))
            body = (
                f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
                f'<title>Careline</title><link rel="stylesheet" href="/static/app.css"></head>'
                f'<body><main><p id="refused">{text}</p><a href="/">{back}</a></main></body></html>'
            )
            return HTMLResponse(body, status.HTTP_403_FORBIDDEN)
        return FileResponse(_STATIC / "admin.html")

    return router
