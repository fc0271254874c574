"""Inbound webhooks: Twilio (SMS replies, call and message status, key presses) and acknowledge links.

Every Twilio request is checked against its `X-Twilio-Signature` (computed over the public URL Twilio
called); a forgery is refused with 403 and kept in the audit trail.

An acknowledge link (e-mail, webhook payload) only shows the alarm and a button on GET: mail scanners and
link previews fetch links, and must not accept a critical alarm for the responder. The button POSTs to
the same address; each link works once.
"""

from __future__ import annotations

import html
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi import Path as PathParameter
from fastapi.responses import HTMLResponse

from common.settings import Language
from gateway.catalogue import text
from gateway.escalation.channels.messages import (
    alarm_label,
    local_time_text,
    parse_sms_reply,
    place_text,
    severity_label,
)
from gateway.escalation.channels.twilio_channels import gather_response
from gateway.escalation.channels.twilio_webhooks import verify_twilio_signature
from gateway.escalation.escalator import Escalator
from gateway.escalation.store import AckLink, EscalationStore, LinkOutcome
from gateway.incidents.service import IncidentService
from gateway.incidents.store import IncidentStore
from gateway.metrics import Metrics

TWIML = "application/xml"
_EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
#: Tokens are made by `secrets.token_urlsafe(24)` and stored in 64 characters.
AckToken = Annotated[str, PathParameter(min_length=1, max_length=64)]
#: A notification's row id (64-bit): larger numbers are refused before they reach the database.
NotificationId = Annotated[int, Query(ge=1, le=2**63 - 1)]

_LINK_STATUS = {"acknowledged": 200, "late": 200, "used": 409, "unknown": 404}
_FORGED: dict[int | str, dict[str, Any]] = {
    403: {"description": "the request does not carry Twilio's signature"}
}
_LINK_REFUSED: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such link", "content": {"text/html": {}}},
    409: {"description": "the link was used already", "content": {"text/html": {}}},
}
#: Twilio's callbacks carry a few dozen short fields (an SMS body is at most 1,600 characters, under
#: 15 KB percent-encoded). The form is read before its signature can be checked, so it is bounded well
#: below Starlette's defaults (1,000 fields of 1 MiB each); beyond these the answer is 400.
MAX_FORM_FIELDS = 200
MAX_FORM_FIELD_BYTES = 64 * 1024


@dataclass
class ForgeryLog:
    """At most one audit entry per webhook path and `interval_s`, saying how many forgeries it stands for.

    Anyone can send unsigned requests: audited one by one, a flood would grow the append-only audit
    trail without bound and keep the store's single writer busy. Every one is still counted
    (`careline_webhooks_forged_total`) and refused. The paths are the router's own, so this stays small."""

    interval_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _recorded_at: dict[str, float] = field(default_factory=dict)
    _unrecorded: dict[str, int] = field(default_factory=dict)

    def forged(self, path: str) -> int:
        """Count one forgery on `path`; the number to audit now (0: wait for the next entry)."""
        self._unrecorded[path] = self._unrecorded.get(path, 0) + 1
        now = self.clock()
        last = self._recorded_at.get(path)
        if last is not None and now - last < self.interval_s:
            return 0
        self._recorded_at[path] = now
        return self._unrecorded.pop(path)


@dataclass
class WebhookContext:
    escalator: Escalator
    escalations: EscalationStore
    service: IncidentService
    public_url: str
    #: None when Twilio is not configured: its webhooks then refuse everything.
    twilio_auth_token: str | None
    metrics: Metrics
    #: Twilio `<Say>` voice per language, as configured for calls.
    voices: Mapping[str, str] = field(default_factory=dict)
    forgeries: ForgeryLog = field(default_factory=ForgeryLog)
    #: Asked first about each inbound SMS: the TwiML to answer a resident's reply to their daily
    #: reassurance SMS with (gateway/reassurance), or None when the SMS is not one (a responder's).
    inbound_sms: Callable[[Mapping[str, str]], Awaitable[str | None]] | None = None


def _record_forgery(store: IncidentStore, path: str, count: int, at: datetime) -> None:
    details = {"path": path, "forgeries": count}
    with store.transaction() as session:
        store.audit.append(session, at=at, actor="webhook", action="webhook.forged", details=details)


async def verified_form(request: Request, ctx: WebhookContext) -> dict[str, str]:
    received = await request.form(max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_FIELD_BYTES)
    form = {key: str(value) for key, value in received.items()}
    url = (
        ctx.public_url.rstrip("/") + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    )
    signature = request.headers.get("X-Twilio-Signature", "")
    if ctx.twilio_auth_token is None or not verify_twilio_signature(
        ctx.twilio_auth_token, url, form, signature
    ):
        path = request.scope["route"].path if "route" in request.scope else request.url.path
        ctx.metrics.webhooks_forged.labels(path).inc()
        count = ctx.forgeries.forged(path)
        if count:
            store = ctx.service.store
            await ctx.service.write(_record_forgery, store, path, count, store.now())
        raise HTTPException(status.HTTP_403_FORBIDDEN, "signature does not match")
    return form


def webhook_router(ctx: WebhookContext) -> APIRouter:
    router = APIRouter(tags=["escalation webhooks"])

    @router.post("/api/twilio/sms-inbound", responses=_FORGED)
    async def sms_inbound(request: Request) -> Response:
        form = await verified_form(request, ctx)
        answered = await ctx.inbound_sms(form) if ctx.inbound_sms is not None else None
        if answered is not None:
            return Response(answered, media_type=TWIML)
        token = await ctx.service.read(ctx.escalations.latest_token_for_phone, form.get("From", ""))
        if token is not None and parse_sms_reply(form.get("Body", "")):
            await ctx.escalator.acknowledge_by_token(token, "sms")
        return Response(_EMPTY_TWIML, media_type=TWIML)

    @router.post("/api/twilio/sms-status", responses=_FORGED)
    async def sms_status(request: Request, n: NotificationId) -> Response:
        form = await verified_form(request, ctx)
        await ctx.escalator.provider_status(n, form.get("MessageStatus", form.get("SmsStatus", "unknown")))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post("/api/twilio/call-status", responses=_FORGED)
    async def call_status(request: Request, n: NotificationId) -> Response:
        form = await verified_form(request, ctx)
        await ctx.escalator.provider_status(n, form.get("CallStatus", "unknown"))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post("/api/twilio/gather", responses=_FORGED)
    async def gather(
        request: Request, n: NotificationId, t: Annotated[str, Query(max_length=64)]
    ) -> Response:
        form = await verified_form(request, ctx)
        digits = form.get("Digits", "")
        owner = await ctx.service.read(ctx.escalations.token_owner, t)
        language: Language = ctx.escalations.language_of(owner.responder_id) if owner else "en"
        # The same test `gather_response` words its answer by: the caller is told "accepted" only
        # when it is recorded.
        if digits.strip() == "1":
            await ctx.escalator.acknowledge_by_token(t, "voice")
        return Response(gather_response(digits, language, voice=ctx.voices.get(language)), media_type=TWIML)

    @router.get("/api/escalation/ack/{token}", response_class=HTMLResponse, responses=_LINK_REFUSED)
    async def acknowledge_link_page(token: AckToken, request: Request) -> HTMLResponse:
        """The alarm and a button; looking at it acknowledges nothing."""
        link = await ctx.service.read(ctx.escalations.ack_link, token)
        language = _page_language(request, ctx, link)
        if link is None:
            return _page(language, f"<p>{_say('ack_link.unknown', language)}</p>", status.HTTP_404_NOT_FOUND)
        return _page(language, _link_body(link, language))

    @router.post("/api/escalation/ack/{token}", response_class=HTMLResponse, responses=_LINK_REFUSED)
    async def acknowledge_link(token: AckToken, request: Request) -> HTMLResponse:
        outcome = await ctx.escalator.acknowledge_by_link(token)
        if outcome in ("used", "unknown"):
            ctx.metrics.ack_links_refused.labels(outcome).inc()
        link = await ctx.service.read(ctx.escalations.ack_link, token)
        language = _page_language(request, ctx, link)
        return _page(language, _outcome_body(outcome, link, language), _LINK_STATUS[outcome])

    return router


def _page_language(request: Request, ctx: WebhookContext, link: AckLink | None) -> Language:
    """The responder's own language; for a webhook or an unknown link, the browser's."""
    configured = ctx.escalations.configured_language(link.owner.responder_id) if link else None
    return configured or accepted_language(request.headers.get("accept-language", "")) or "en"


def accepted_language(header: str) -> Language | None:
    """The Accept-Language entry we speak with the highest weight (zh-* is zh-CN), or None."""
    best: tuple[float, Language] | None = None
    for part in header.split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        name, _, value = params.strip().partition("=")
        try:
            weight = float(value) if name.strip() == "q" else 1.0
        except ValueError:
            continue
        language = _spoken(tag)
        if language is not None and weight > 0 and (best is None or weight > best[0]):
            best = (weight, language)
    return best[1] if best else None


def _spoken(tag: str) -> Language | None:
    code = tag.strip().lower()
    if code.startswith("zh"):
        return "zh-CN"
    return "en" if code.startswith("en") else None


def _link_body(link: AckLink, language: Language) -> str:
    button = (
        f'<form method="post"><button type="submit">{_say("ack_link.button", language)}</button></form>'
        if link.used_at is None
        else f"<p>{_say('ack_link.used', language)}</p>"
    )
    return f"<p>{_say('ack_link.intro', language)}</p>{_summary(link, language)}{button}"


def _say(msgid: str, language: Language) -> str:
    return html.escape(text(msgid, language))


def _outcome_body(outcome: LinkOutcome, link: AckLink | None, language: Language) -> str:
    message = f'<p class="outcome">{_say(f"ack_link.{outcome}", language)}</p>'
    return message + (_summary(link, language) if link else "")


def _summary(link: AckLink, language: Language) -> str:
    alarm = link.alarm
    rows = [
        ("alarm", alarm_label(alarm.rule, language)),
        ("severity", severity_label(alarm.severity, language)),
        ("resident", alarm.resident_name or "—"),
        ("place", place_text(alarm, language)),
        ("time", f"{local_time_text(alarm)} ({alarm.timezone})"),
        ("incident", f"#{alarm.incident_id}"),
        ("status", text(f"ack_link.status.{link.status}", language)),
    ]
    items = "".join(
        f"<dt>{_say(f'ack_link.{key}', language)}</dt><dd>{html.escape(value)}</dd>" for key, value in rows
    )
    return f"<dl>{items}</dl>"


def _page(language: Language, body: str, status_code: int = status.HTTP_200_OK) -> HTMLResponse:
    title = _say("ack_link.title", language)
    page = (
        f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{title}</title><link rel="stylesheet" href="/static/ack.css"></head>'
        f"<body><main><h1>{title}</h1>{body}</main></body></html>"
    )
    # The page names a resident and carries a one-time token: never kept by a cache.
    return HTMLResponse(page, status_code, headers={"Cache-Control": "no-store"})
