"""The page's dictionary, served from the one message catalogue the SMS, calls and e-mails use too."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Request, Response, status

from gateway.catalogue import CATALOGUE, LANGUAGES, Language

# Public: the sign-in form needs its words before anyone has signed in, and no text is a secret.
# Cached, but revalidated each time (a 304 is a few bytes), so an upgraded gateway never pairs a new
# page with an old dictionary.
_CACHE_CONTROL = "public, no-cache"


def catalogue_router() -> APIRouter:
    router = APIRouter(tags=["catalogue"])
    etags = {lang: f'"{hashlib.sha256(CATALOGUE.json(lang)).hexdigest()[:32]}"' for lang in LANGUAGES}

    @router.get(
        "/api/catalogue/{language}",
        response_class=Response,
        responses={200: {"content": {"application/json": {}}, "description": "message id → text"}},
    )
    async def catalogue(language: Language, request: Request) -> Response:
        """Every user-facing text in one language, as `{message id: text}`."""
        headers = {"ETag": etags[language], "Cache-Control": _CACHE_CONTROL}
        held = {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}
        if etags[language] in held:
            return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
        return Response(CATALOGUE.json(language), media_type="application/json", headers=headers)

    return router
