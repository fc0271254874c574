"""Twilio's callbacks for the daily calls: the key pressed, the call's and the SMS's status. Signed
like every Twilio webhook (`X-Twilio-Signature` over the public URL and the form), checked by the
escalation's `verified_form`: a forgery is refused with 403 and counted. Replies to the daily SMS come
through the one inbound-SMS webhook (`/api/twilio/sms-inbound`), which asks `inbound_sms` first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from gateway.escalation.webhooks import TWIML, WebhookContext, verified_form
from gateway.reassurance.scheduler import ReassuranceScheduler

#: An attempt's row id (64-bit).
AttemptId = Annotated[int, Query(ge=1, le=2**63 - 1)]
_FORGED: dict[int | str, dict[str, Any]] = {
    403: {"description": "the request does not carry Twilio's signature"}
}


def reassurance_webhooks(ctx: WebhookContext, scheduler: ReassuranceScheduler) -> APIRouter:
    router = APIRouter(prefix="/api/twilio/reassurance", tags=["escalation webhooks"])

    @router.post("/gather", responses=_FORGED)
    async def gather(request: Request, a: AttemptId) -> Response:
        form = await verified_form(request, ctx)
        return Response(await scheduler.gather(a, form.get("Digits", "")), media_type=TWIML)

    @router.post("/call-status", responses=_FORGED)
    async def call_status(request: Request, a: AttemptId) -> Response:
        form = await verified_form(request, ctx)
        await scheduler.progress(a, form.get("CallStatus", "unknown"))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post("/sms-status", responses=_FORGED)
    async def sms_status(request: Request, a: AttemptId) -> Response:
        form = await verified_form(request, ctx)
        await scheduler.progress(a, form.get("MessageStatus", form.get("SmsStatus", "unknown")))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
