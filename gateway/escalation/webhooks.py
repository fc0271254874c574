"""Inbound webhooks: Twilio (SMS replies, call and message status, key presses) and acknowledge links.

Every Twilio request is checked against its `X-Twilio-Signature` (computed over the public URL Twilio
called); a forgery is refused with 403 and kept in the audit trail.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse

from common.settings import Language
from gateway.catalogue import LANGUAGES, text
from gateway.escalation.channels.messages import parse_sms_reply
from gateway.escalation.channels.twilio_channels import gather_response
from gateway.escalation.channels.twilio_webhooks import verify_twilio_signature
from gateway.escalation.engine import EscalationEngine
from gateway.escalation.store import EscalationStore
from gateway.incidents.service import IncidentService
from gateway.incidents.store import IncidentStore

TWIML = "application/xml"
_EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@dataclass
class WebhookContext:
    engine: EscalationEngine
    escalations: EscalationStore
    service: IncidentService
    public_url: str
    #: None when Twilio is not configured: its webhooks then refuse everything.
    twilio_auth_token: str | None
    #: Twilio `<Say>` voice per language, as configured for calls.
    voices: Mapping[str, str] = field(default_factory=dict)


def _record_forgery(store: IncidentStore, path: str, at: datetime) -> None:
    with store.transaction() as session:
        store.audit.append(session, at=at, actor="webhook", action="webhook.forged", details={"path": path})


async def _verified_form(request: Request, ctx: WebhookContext) -> dict[str, str]:
    form = {key: str(value) for key, value in (await request.form()).items()}
    url = (
        ctx.public_url.rstrip("/") + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    )
    signature = request.headers.get("X-Twilio-Signature", "")
    if ctx.twilio_auth_token is None or not verify_twilio_signature(
        ctx.twilio_auth_token, url, form, signature
    ):
        store = ctx.service.store
        await ctx.service.write(_record_forgery, store, request.url.path, store.now())
        raise HTTPException(status.HTTP_403_FORBIDDEN, "signature does not match")
    return form


def webhook_router(ctx: WebhookContext) -> APIRouter:
    router = APIRouter(tags=["escalation webhooks"])

    @router.post("/api/twilio/sms-inbound")
    async def sms_inbound(request: Request) -> Response:
        form = await _verified_form(request, ctx)
        token = await ctx.service.read(ctx.escalations.latest_token_for_phone, form.get("From", ""))
        if token is not None and parse_sms_reply(form.get("Body", "")):
            await ctx.engine.acknowledge_by_token(token, "sms")
        return Response(_EMPTY_TWIML, media_type=TWIML)

    @router.post("/api/twilio/sms-status")
    async def sms_status(request: Request, n: int) -> Response:
        form = await _verified_form(request, ctx)
        await ctx.engine.provider_status(n, form.get("MessageStatus", form.get("SmsStatus", "unknown")))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post("/api/twilio/call-status")
    async def call_status(request: Request, n: int) -> Response:
        form = await _verified_form(request, ctx)
        await ctx.engine.provider_status(n, form.get("CallStatus", "unknown"))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post("/api/twilio/gather")
    async def gather(request: Request, n: int, t: str) -> Response:
        form = await _verified_form(request, ctx)
        digits = form.get("Digits", "")
        owner = await ctx.service.read(ctx.escalations.token_owner, t)
        language: Language = ctx.escalations.language_of(owner.responder_id) if owner else "en"
        if digits == "1":
            await ctx.engine.acknowledge_by_token(t, "voice")
        return Response(gather_response(digits, language, voice=ctx.voices.get(language)), media_type=TWIML)

    @router.get("/api/escalation/ack/{token}", response_class=HTMLResponse)
    async def acknowledge_link(token: str) -> HTMLResponse:
        outcome = await ctx.engine.acknowledge_by_token(token, "link")
        code = status.HTTP_404_NOT_FOUND if outcome == "unknown" else status.HTTP_200_OK
        return HTMLResponse(_ack_link_page(outcome), status_code=code)

    return router


def _ack_link_page(outcome: str) -> str:
    # The link does not say who opened it, so the page answers in every language.
    msgid = f"ack_link.{outcome}"
    answers = "".join(f"<p lang={lang}>{html.escape(text(msgid, lang))}</p>" for lang in LANGUAGES)
    return f"<!doctype html><meta charset=utf-8><title>Careline</title>{answers}"
