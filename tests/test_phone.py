"""The simulated responders' phones (simulators/phone.py) served by the Twilio stand-in: what the real
channels send arrives per number, and answers go back to the gateway's webhooks signed as Twilio signs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from services import free_port

from gateway.escalation.channels.twilio_channels import (
    TwilioAccount,
    TwilioSms,
    TwilioVoice,
    gather_response,
)
from gateway.escalation.channels.twilio_webhooks import verify_twilio_signature
from gateway.escalation.config import TwilioConfig
from gateway.escalation.model import AlarmSummary, Notification, Recipient
from simulators.phone import spoken_text
from simulators.twilio_standin import TwilioStandIn, UvicornThread

CARER = "+8613800000002"


@dataclass
class Gateway:
    """A receiver in place of the gateway's webhooks: it checks each signature as the gateway does."""

    auth_token: str = ""
    base_url: str = ""
    received: list[tuple[str, dict[str, str], bool]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/api/twilio/sms-inbound")
        @app.post("/api/twilio/gather")
        @app.post("/api/twilio/call-status")
        async def webhook(request: Request) -> Response:
            form = {k: str(v) for k, v in (await request.form()).items()}
            url = self.base_url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
            signed = verify_twilio_signature(
                self.auth_token, url, form, request.headers.get("X-Twilio-Signature")
            )
            self.received.append((url, form, signed))
            if not signed:
                return Response(status_code=403)
            if request.url.path.endswith("gather"):
                return Response(
                    gather_response(form.get("Digits", ""), "zh-CN"), media_type="application/xml"
                )
            return Response("<Response/>", media_type="application/xml")

        return app


@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, TwilioStandIn]]:
    receiver = Gateway()
    with UvicornThread(receiver.app()) as server:
        receiver.base_url = server.base_url
        stand_in = TwilioStandIn(gateway_url=server.base_url, phone_book={CARER: "李娜"})
        receiver.auth_token = stand_in.auth_token
        with stand_in:
            yield receiver, stand_in


def _notification() -> Notification:
    alarm = AlarmSummary(
        incident_id=9,
        rule="sos",
        severity="critical",
        site_name="朝阳护理院",
        room="101",
        resident_name="张桂英",
        opened_at=datetime(2026, 1, 5, 2, 30, tzinfo=UTC),
    )
    return Notification(
        3, 9, Recipient("carer-li-na", "李娜", "zh-CN", phone=CARER), alarm, ack_token="tok-9"
    )


def _send_both(stand_in: TwilioStandIn, public_url: str) -> None:
    settings = TwilioConfig(from_number="+15005550006", api_base_url=stand_in.base_url)
    account = TwilioAccount(stand_in.account_sid, stand_in.auth_token)

    async def send() -> None:
        for channel in (TwilioSms, TwilioVoice):
            delivery = await channel(settings, account, public_url=public_url).send(_notification())
            assert delivery.ok, delivery.detail

    asyncio.run(send())


def test_sms_and_calls_arrive_on_the_responders_phone_and_answers_are_signed(
    gateway: tuple[Gateway, TwilioStandIn],
) -> None:
    receiver, stand_in = gateway
    _send_both(stand_in, receiver.base_url)
    phones = httpx.get(f"{stand_in.base_url}/phone/api/inbox").json()["phones"]
    carer = next(p for p in phones if p["number"] == CARER)
    assert carer["name"] == "李娜"
    call, sms = carer["entries"]  # newest first
    assert sms["kind"] == "sms"
    assert "张桂英" in sms["text"]
    assert call["kind"] == "call"
    assert call["can_press"]
    assert "接警请按 1" in call["text"]
    assert call["text"].count("张桂英") == 1, "the script read twice is shown once"

    reply = httpx.post(f"{stand_in.base_url}/phone/api/sms/{sms['id']}/reply", json={"body": "收到"})
    assert reply.json()["http_status"] == 200
    url, form, signed = receiver.received[-1]
    assert signed
    assert url == f"{receiver.base_url}/api/twilio/sms-inbound"
    assert (form["From"], form["To"], form["Body"]) == (CARER, "+15005550006", "收到")

    pressed = httpx.post(f"{stand_in.base_url}/phone/api/calls/{call['id']}/press", json={"digit": "1"})
    assert pressed.json()["answer"] == spoken_text(gather_response("1", "zh-CN"))
    url, form, signed = next(r for r in receiver.received if "/gather" in r[0])
    assert signed
    assert url == f"{receiver.base_url}/api/twilio/gather?n=3&t=tok-9"
    assert form["Digits"] == "1"
    again = httpx.get(f"{stand_in.base_url}/phone/api/inbox").json()["phones"]
    entries = next(p for p in again if p["number"] == CARER)["entries"]
    assert [len(e["exchanges"]) for e in entries] == [1, 1]


def test_a_call_reports_answered_and_completed_or_no_answer_as_twilio_does(
    gateway: tuple[Gateway, TwilioStandIn],
) -> None:
    receiver, stand_in = gateway
    settings = TwilioConfig(from_number="+15005550006", api_base_url=stand_in.base_url)
    voice = TwilioVoice(
        settings, TwilioAccount(stand_in.account_sid, stand_in.auth_token), public_url=receiver.base_url
    )

    async def two_calls() -> list[str]:
        return [(await voice.send(_notification())).provider_id or "" for _ in range(2)]

    answered_sid, unanswered_sid = asyncio.run(two_calls())
    base = f"{stand_in.base_url}/phone/api"
    unanswered, answered = httpx.get(f"{base}/inbox").json()["phones"][0]["entries"]  # newest first
    assert (answered["status"], answered["can_let_ring"]) == ("ringing", True)

    assert httpx.post(f"{base}/calls/{answered['id']}/press", json={"digit": "1"}).json()["hung_up"]
    reports = [(url.split("?")[0].rsplit("/", 1)[1], form, signed) for url, form, signed in receiver.received]
    assert [(hook, form["CallStatus"], signed) for hook, form, signed in reports] == [
        ("call-status", "in-progress", True),
        ("gather", "in-progress", True),
        ("call-status", "completed", True),
    ]
    # The SID the call was created with, the account, and the duration on the final report.
    assert {form["CallSid"] for _, form, _ in reports} == {answered_sid}
    assert reports[0][1]["AccountSid"] == stand_in.account_sid
    assert reports[2][1]["CallDuration"].isdigit()
    assert httpx.post(f"{base}/calls/{answered['id']}/press", json={"digit": "1"}).status_code == 409

    receiver.received.clear()
    assert httpx.post(f"{base}/calls/{unanswered['id']}/no-answer").status_code == 200
    [(_, form, signed)] = receiver.received
    assert (form["CallSid"], form["CallStatus"], form["CallDuration"], signed) == (
        unanswered_sid,
        "no-answer",
        "0",
        True,
    )
    assert httpx.post(f"{base}/calls/{unanswered['id']}/press", json={"digit": "1"}).status_code == 409
    assert httpx.post(f"{base}/calls/{unanswered['id']}/no-answer").status_code == 409


def test_bad_answers_are_refused_clearly(gateway: tuple[Gateway, TwilioStandIn]) -> None:
    receiver, stand_in = gateway
    _send_both(stand_in, receiver.base_url)
    base = f"{stand_in.base_url}/phone/api"
    entries = httpx.get(f"{base}/inbox").json()["phones"][0]["entries"]
    call, sms = entries
    assert httpx.post(f"{base}/calls/{call['id']}/press", json={"digit": "12"}).status_code == 422
    assert httpx.post(f"{base}/sms/{sms['id']}/reply", json={"body": ""}).status_code == 422
    assert httpx.post(f"{base}/sms/{call['id']}/reply", json={"body": "1"}).status_code == 404
    assert httpx.post(f"{base}/calls/999/press", json={"digit": "1"}).status_code == 404
    assert httpx.get(f"{stand_in.base_url}/phone/static/../phone.py").status_code == 404
    assert receiver.received == [], "nothing reached the gateway"


def test_an_unreachable_gateway_is_said_so() -> None:
    with TwilioStandIn(gateway_url=f"http://127.0.0.1:{free_port()}") as stand_in:
        _send_both(stand_in, "http://127.0.0.1:1")
        base = f"{stand_in.base_url}/phone/api"
        sms = next(e for e in httpx.get(f"{base}/inbox").json()["phones"][0]["entries"] if e["kind"] == "sms")
        answer = httpx.post(f"{base}/sms/{sms['id']}/reply", json={"body": "1"}).json()
        assert answer["http_status"] is None


def test_the_page_and_its_texts_are_served_in_both_languages(gateway: tuple[Gateway, TwilioStandIn]) -> None:
    _, stand_in = gateway
    page = httpx.get(f"{stand_in.base_url}/phone")
    assert page.status_code == 200
    assert "/phone/static/phone.js" in page.text
    assert "<script>" not in page.text, "no inline script"
    for language, title in (("zh-CN", "值班人员手机（模拟）"), ("en", "Responders' phones (simulated)")):
        texts = httpx.get(f"{stand_in.base_url}/phone/api/texts/{language}").json()
        assert texts["phone.title"] == title
        assert all(key.startswith("phone.") for key in texts)
    assert httpx.get(f"{stand_in.base_url}/phone/api/texts/fr").status_code == 422
    assert httpx.get(f"{stand_in.base_url}/phone/static/phone.js").status_code == 200
