"""Twilio SMS and voice with the real `twilio` client against the local stand-in of Twilio's REST API.

Twilio's cloud is unreachable here; `twilio_standin.TwilioStandIn` plays its part in both directions.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
from fastapi import FastAPI, HTTPException, Request, Response
from services import free_port
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from gateway.escalation.channels.messages import sms_text, voice_script
from gateway.escalation.channels.twilio_channels import (
    TwilioAccount,
    TwilioSms,
    TwilioVoice,
    gather_response,
)
from gateway.escalation.channels.twilio_webhooks import (
    WebhookFormError,
    call_status_means_no_contact,
    parse_call_status,
    parse_gather,
    parse_inbound_sms,
    parse_message_status,
    verify_twilio_signature,
)
from gateway.escalation.config import TwilioConfig
from gateway.escalation.model import AlarmSummary, Channel, Delivery, Notification, Recipient
from simulators.twilio_standin import TwilioStandIn, UvicornThread

FROM = "+15005550006"
PUBLIC = "https://careline.example.org"


def notification(language: Literal["en", "zh-CN"], *, phone: str | None = "+8613800000001") -> Notification:
    alarm = AlarmSummary(
        incident_id=42,
        rule="fall",
        severity="critical",
        site_name="阳光苑" if language == "zh-CN" else "Sunny Court",
        room="203",
        resident_name="王丽" if language == "zh-CN" else "Wang Li",
        opened_at=datetime(2026, 1, 5, 14, 30, tzinfo=UTC),
    )
    recipient = Recipient("r1", "Zhang Wei", language, phone=phone)
    return Notification(7, 42, recipient, alarm, ack_token="tok-abc")


@pytest.fixture
def standin() -> Iterator[TwilioStandIn]:
    with TwilioStandIn() as server:
        yield server


def settings(api_base_url: str, **overrides: Any) -> TwilioConfig:
    return TwilioConfig(from_number=FROM, api_base_url=api_base_url, **overrides)


def sms(standin: TwilioStandIn, *, timeout_s: float = 10.0, token: str = "") -> TwilioSms:
    account = TwilioAccount(standin.account_sid, token or standin.auth_token)
    return TwilioSms(settings(standin.base_url, timeout_s=timeout_s), account, public_url=PUBLIC)


def voice(standin: TwilioStandIn, *, public: str = PUBLIC, **overrides: Any) -> TwilioVoice:
    account = TwilioAccount(standin.account_sid, standin.auth_token)
    return TwilioVoice(settings(standin.base_url, **overrides), account, public_url=public)


def test_channels_satisfy_the_protocol(standin: TwilioStandIn) -> None:
    channels: list[Channel] = [sms(standin), voice(standin)]
    assert [c.kind.value for c in channels] == ["sms", "voice"]


# -- SMS --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["zh-CN", "en"])
async def test_sms_request_carries_to_from_body_and_status_callback(
    standin: TwilioStandIn, language: Literal["en", "zh-CN"]
) -> None:
    note = notification(language)
    delivery = await sms(standin).send(note)

    assert delivery.ok, delivery
    assert delivery.provider_id is not None
    assert delivery.provider_id.startswith("SM")
    assert delivery.detail == "queued"
    [request] = standin.requests
    assert request.resource == "Messages"
    assert request.authorized
    assert request.get("To") == "+8613800000001"
    assert request.get("From") == FROM
    assert request.get("Body") == sms_text(note)
    assert request.get("StatusCallback") == f"{PUBLIC}/api/twilio/sms-status?n=7"
    expected = "回复 1 或 收到 确认接警" if language == "zh-CN" else "Reply 1 or OK to accept"
    assert expected in (request.get("Body") or "")


async def test_sms_without_phone_is_not_sent(standin: TwilioStandIn) -> None:
    delivery = await sms(standin).send(notification("en", phone=None))
    assert delivery == Delivery(ok=False, retryable=False, detail="recipient has no phone number")
    assert standin.requests == []


async def test_server_error_is_retryable(standin: TwilioStandIn) -> None:
    standin.fail_next(status=500)
    delivery = await sms(standin).send(notification("en"))
    assert not delivery.ok
    assert delivery.retryable
    assert delivery.extra["http_status"] == "500"


async def test_too_many_requests_is_retryable(standin: TwilioStandIn) -> None:
    standin.fail_next(status=429, code=20429, message="Too Many Requests")
    delivery = await voice(standin).send(notification("en"))
    assert (delivery.ok, delivery.retryable) == (False, True)


async def test_invalid_number_is_not_retryable(standin: TwilioStandIn) -> None:
    standin.fail_next(status=400, code=21211, message="The 'To' number +86 is not a valid phone number.")
    delivery = await sms(standin).send(notification("en"))
    assert not delivery.ok
    assert not delivery.retryable
    assert delivery.extra["twilio_code"] == "21211"
    assert "21211" in delivery.detail


async def test_wrong_credentials_are_not_retryable(standin: TwilioStandIn) -> None:
    delivery = await sms(standin, token="not-the-token").send(notification("en"))
    assert (delivery.ok, delivery.retryable) == (False, False)
    assert delivery.extra == {"http_status": "401", "twilio_code": "20003"}
    assert not standin.requests[0].authorized


async def test_hanging_twilio_times_out_as_retryable_within_the_timeout(standin: TwilioStandIn) -> None:
    standin.hang_next(seconds=30)
    started = time.monotonic()
    delivery = await sms(standin, timeout_s=1.0).send(notification("en"))
    elapsed = time.monotonic() - started
    assert (delivery.ok, delivery.retryable) == (False, True)
    assert "timeout" in delivery.detail.lower()
    assert elapsed < 1.5


async def test_unreachable_twilio_is_retryable() -> None:
    unreachable = settings(f"http://127.0.0.1:{free_port()}")
    channel = TwilioSms(unreachable, TwilioAccount("AC" + "0" * 32, "token"), public_url=PUBLIC)
    delivery = await channel.send(notification("en"))
    assert (delivery.ok, delivery.retryable) == (False, True)


# -- voice ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "say_language"), [("zh-CN", "zh-CN"), ("en", "en-US")])
async def test_call_twiml_gathers_one_digit_and_speaks_the_script_in_the_recipients_language(
    standin: TwilioStandIn, language: Literal["en", "zh-CN"], say_language: str
) -> None:
    note = notification(language)
    delivery = await voice(standin).send(note)

    assert delivery.ok, delivery
    assert (delivery.provider_id or "").startswith("CA")
    [request] = standin.requests
    assert request.resource == "Calls"
    assert (request.get("To"), request.get("From")) == ("+8613800000001", FROM)
    assert request.get("StatusCallback") == f"{PUBLIC}/api/twilio/call-status?n=7"
    assert request.getlist("StatusCallbackEvent") == ["initiated", "ringing", "answered", "completed"]
    assert request.get("Timeout") == "30"

    root = ET.fromstring(request.get("Twiml") or "")
    gathers = root.findall("Gather")
    assert len(gathers) == 2  # the script is spoken twice
    for gather in gathers:
        assert gather.get("numDigits") == "1"
        assert gather.get("method") == "POST"
        assert gather.get("action") == f"{PUBLIC}/api/twilio/gather?n=7&t=tok-abc"
        say = gather.find("Say")
        assert say is not None
        assert say.get("language") == say_language
        assert say.text == voice_script(note)
    goodbye = root.find("Say")
    assert goodbye is not None
    assert goodbye.get("language") == say_language
    assert root.find("Hangup") is not None
    key_instruction = "接警请按 1" if language == "zh-CN" else "Press 1 to accept"
    assert key_instruction in voice_script(note)


async def test_configured_voice_is_used(standin: TwilioStandIn) -> None:
    await voice(standin, voices={"zh-CN": "Google.cmn-CN-Standard-A"}).send(notification("zh-CN"))
    root = ET.fromstring(standin.requests[0].get("Twiml") or "")
    assert {say.get("voice") for say in root.iter("Say")} == {"Google.cmn-CN-Standard-A"}


@pytest.mark.parametrize(
    ("digits", "language", "expected"),
    [
        ("1", "en", "you have accepted"),
        ("2", "en", "not accepted"),
        ("", "en", "not accepted"),
        ("1", "zh-CN", "已确认接警"),
        ("9", "zh-CN", "未确认接警"),
    ],
)
def test_gather_response(digits: str, language: str, expected: str) -> None:
    root = ET.fromstring(gather_response(digits, language))
    say = root.find("Say")
    assert say is not None
    assert expected in (say.text or "")
    assert say.get("language") == ("zh-CN" if language == "zh-CN" else "en-US")
    assert root.find("Hangup") is not None


# -- webhooks: signatures and forms -----------------------------------------------------------------


def test_signature_accepts_a_real_one_and_rejects_forgeries() -> None:
    token = "12345"
    url = f"{PUBLIC}/api/twilio/call-status?n=7"
    params = {"CallSid": "CA" + "1" * 32, "CallStatus": "completed", "To": "+8613800000001"}
    signature = RequestValidator(token).compute_signature(url, params)

    assert verify_twilio_signature(token, url, params, signature)
    assert not verify_twilio_signature(token, url, {**params, "CallStatus": "no-answer"}, signature)
    assert not verify_twilio_signature(token, url.replace("n=7", "n=8"), params, signature)
    assert not verify_twilio_signature("other-token", url, params, signature)
    assert not verify_twilio_signature(token, url, params, "AAAA" + signature[4:])
    assert not verify_twilio_signature(token, url, params, None)
    assert not verify_twilio_signature("", url, params, RequestValidator("").compute_signature(url, params))


def test_signature_matches_twilios_documented_example() -> None:
    # The worked example in Twilio's webhook-security documentation (auth token "12345"): an expected
    # value this code did not produce, so it catches a self-consistent but wrong implementation.
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    caller = "+14158675310"
    params = {"CallSid": "CA1234567890ABCDE", "Caller": caller, "Digits": "1234", "From": caller}
    params["To"] = "+18005551212"
    assert verify_twilio_signature("12345", url, params, "GvWf1cFY/Q7PnoempGyD5oXAezc=")
    assert not verify_twilio_signature(
        "12345", url, {**params, "Digits": "1235"}, "GvWf1cFY/Q7PnoempGyD5oXAezc="
    )


def test_form_parsers() -> None:
    sms = parse_inbound_sms({"MessageSid": "SM1", "From": "+86138", "To": FROM, "Body": " 收到 "})
    assert (sms.message_sid, sms.from_number, sms.body) == ("SM1", "+86138", " 收到 ")
    status = parse_message_status({"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "30003"})
    assert (status.status, status.error_code, status.failed) == ("undelivered", "30003", True)
    assert not parse_message_status({"SmsSid": "SM1", "SmsStatus": "delivered"}).failed
    call = parse_call_status({"CallSid": "CA1", "CallStatus": "no-answer", "CallDuration": "0"})
    assert (call.status, call.no_contact, call.final, call.duration_s) == ("no-answer", True, True, 0)
    assert not parse_call_status({"CallSid": "CA1", "CallStatus": "ringing"}).final
    assert parse_gather({"CallSid": "CA1", "Digits": "1"}).digits == "1"
    assert parse_gather({"CallSid": "CA1"}).digits == ""
    with pytest.raises(WebhookFormError, match="CallStatus"):
        parse_call_status({"CallSid": "CA1"})


@pytest.mark.parametrize(
    ("status", "no_contact"),
    [
        ("no-answer", True),
        ("busy", True),
        ("failed", True),
        ("canceled", True),
        ("completed", False),
        ("in-progress", False),
        ("ringing", False),
        ("queued", False),
    ],
)
def test_call_status_means_no_contact(status: str, no_contact: bool) -> None:
    assert call_status_means_no_contact(status) is no_contact


# -- the round trip: call out, Twilio calls our webhooks back ---------------------------------------


class Receiver:
    """A minimal stand-in for our webhook routes: verify, parse, record, answer like the gateway."""

    def __init__(self, auth_token: str) -> None:
        self.auth_token = auth_token
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.app = FastAPI()
        self.app.post("/api/twilio/call-status")(self.call_status)
        self.app.post("/api/twilio/gather")(self.gather)

    async def _verified(self, request: Request) -> dict[str, str]:
        # Parsed by hand: Starlette's `request.form()` needs python-multipart, which is not installed.
        form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
        if not verify_twilio_signature(
            self.auth_token, str(request.url), form, request.headers.get("X-Twilio-Signature")
        ):
            raise HTTPException(403, "bad signature")
        self.seen.append((request.url.path, {**dict(request.query_params), **form}))
        return form

    async def call_status(self, request: Request) -> Response:
        parse_call_status(await self._verified(request))
        return Response(status_code=204)

    async def gather(self, request: Request) -> Response:
        gathered = parse_gather(await self._verified(request))
        return Response(gather_response(gathered.digits, "zh-CN"), media_type="application/xml")


async def test_callbacks_signed_by_the_standin_pass_verification_and_forgeries_do_not(
    standin: TwilioStandIn,
) -> None:
    receiver = Receiver(standin.auth_token)
    with UvicornThread(receiver.app) as server:
        delivery = await voice(standin, public=server.base_url).send(notification("zh-CN"))
        assert delivery.ok
        call_sid = delivery.provider_id or ""
        request = standin.requests[0]
        status_url = request.get("StatusCallback") or ""
        action = ET.fromstring(request.get("Twiml") or "").findall("Gather")[0].get("action") or ""

        answered = standin.drive_callback(status_url, {"CallSid": call_sid, "CallStatus": "in-progress"})
        pressed = standin.drive_callback(action, {"CallSid": call_sid, "Digits": "1"})
        forged = standin.drive_callback(
            action, {"CallSid": call_sid, "Digits": "1"}, signature="forged/signature="
        )
        tampered_sig = RequestValidator(standin.auth_token).compute_signature(action, {"Digits": "2"})
        tampered = standin.drive_callback(
            action, {"CallSid": call_sid, "Digits": "1"}, signature=tampered_sig
        )

    assert answered.status_code == 204
    assert pressed.status_code == 200
    assert "已确认接警" in pressed.text
    assert forged.status_code == 403
    assert tampered.status_code == 403
    assert [path for path, _ in receiver.seen] == ["/api/twilio/call-status", "/api/twilio/gather"]
    gather_params = receiver.seen[1][1]
    assert (gather_params["n"], gather_params["t"], gather_params["Digits"]) == ("7", "tok-abc", "1")
    assert parse_qs(urlsplit(status_url).query) == {"n": ["7"]}
