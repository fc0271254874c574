"""Hostile requests to the Twilio webhooks (issue 10): forms with any fields and values, signed as Twilio
signs them or not, and bodies that are no form at all, against a real gateway process (real Mosquitto,
real SQLite, the Twilio stand-in for the REST side). Every answer is 2xx or 4xx, never 5xx, and the
gateway stays healthy."""

from __future__ import annotations

import asyncio
import html
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from harness import Publisher, live_gateway
from hostile import BOUNDED
from hypothesis import given
from hypothesis import strategies as st
from services import Mosquitto
from test_crash_recovery import gateway_process
from test_escalation_e2e import CARER, escalating_config, sent_to, until
from twilio.request_validator import RequestValidator

from gateway.escalation.channels.messages import gather_reply_text
from gateway.escalation.webhooks import MAX_FORM_FIELD_BYTES, MAX_FORM_FIELDS
from simulators.twilio_standin import TwilioStandIn

_TWILIO_FIELDS = [
    "From",
    "To",
    "Body",
    "MessageSid",
    "AccountSid",
    "MessageStatus",
    "SmsStatus",
    "CallStatus",
]
_TWILIO_FIELDS += ["Digits", "CallSid", "ErrorCode"]


class Webhooks:
    def __init__(self, base: str, public_url: str, auth_token: str) -> None:
        self.base = base
        self.public_url = public_url.rstrip("/")
        self.validator = RequestValidator(auth_token)
        self.http = httpx.Client(base_url=base, timeout=10.0)

    def post_form(self, path: str, form: dict[str, str], *, signed: bool) -> httpx.Response:
        signature = self.validator.compute_signature(self.public_url + path, form) if signed else "forged"
        return self.http.post(path, data=form, headers={"X-Twilio-Signature": signature})

    def healthy(self) -> bool:
        return bool(self.http.get("/api/healthz").json()["status"] == "ok")


@pytest.fixture(scope="module")
def webhooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhooks]:
    tmp_path = tmp_path_factory.mktemp("webhooks")
    with Mosquitto() as broker, TwilioStandIn() as twilio:
        saved = {name: os.environ.get(name) for name in ("TEST_TWILIO_SID", "TEST_TWILIO_TOKEN")}
        os.environ["TEST_TWILIO_SID"], os.environ["TEST_TWILIO_TOKEN"] = twilio.account_sid, twilio.auth_token
        try:
            config: dict[str, Any] = escalating_config(broker.url, tmp_path, twilio, tier1=["sms"], wait_s=60)
            port = config["http"]["port"]
            path = tmp_path / "careline.yaml"
            path.write_text(yaml.safe_dump(config, allow_unicode=True))
            with gateway_process(path, port, tmp_path / "gateway.log") as process:
                hooks = Webhooks(
                    f"http://127.0.0.1:{port}", config["escalation"]["public_url"], twilio.auth_token
                )
                yield hooks
                hooks.http.close()
                log = (tmp_path / "gateway.log").read_text(errors="replace")
                assert process.poll() is None, log[-3000:]
                assert "Traceback" not in log, log[-5000:]
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


_N = st.one_of(st.integers(-5, 5), st.integers(), st.text(max_size=6)).map(str)
#: (path, query string exactly as sent: Twilio signs the URL it calls, query included).
_PATHS = st.one_of(
    st.just(("/api/twilio/sms-inbound", "")),
    _N.map(lambda n: ("/api/twilio/sms-status", urlencode({"n": n}))),
    _N.map(lambda n: ("/api/twilio/call-status", urlencode({"n": n}))),
    st.tuples(_N, st.text(max_size=70)).map(
        lambda nt: ("/api/twilio/gather", urlencode({"n": nt[0], "t": nt[1]}))
    ),
).map(lambda pq: pq[0] + (f"?{pq[1]}" if pq[1] else ""))
_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["1", " 1", "收到", "YES", CARER, "completed", "no-answer", "failed", "x" * 2000]),
)
_FORMS = st.dictionaries(
    st.one_of(st.sampled_from(_TWILIO_FIELDS), st.text(max_size=12)), _VALUES, max_size=8
)


@BOUNDED
@given(path=_PATHS, form=_FORMS, signed=st.booleans())
def test_any_form_to_a_twilio_webhook_is_answered_without_a_server_error(
    webhooks: Webhooks, path: str, form: dict[str, str], signed: bool
) -> None:
    answer = webhooks.post_form(path, form, signed=signed)
    assert answer.status_code < 500, (path, form, answer.text[:300])
    if signed:
        # Signed as Twilio signs: the handler itself answered (or the query was refused before it).
        assert answer.status_code in (200, 204, 422), (path, form, answer.text[:300])
    else:
        assert answer.status_code in (403, 422), answer.status_code


_CONTENT_TYPES = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "multipart/form-data; boundary=x",
        "multipart/form-data; boundary=" + "b" * 300,
        "application/json",
        "text/plain; charset=gbk",
    ]
)


@BOUNDED
@given(path=_PATHS, body=st.binary(max_size=300), content_type=_CONTENT_TYPES)
def test_a_body_that_is_no_form_is_answered_without_a_server_error(
    webhooks: Webhooks, path: str, body: bytes, content_type: str
) -> None:
    answer = webhooks.http.post(
        path,
        content=body,
        headers={"Content-Type": content_type, "X-Twilio-Signature": "forged"},
    )
    assert answer.status_code < 500, (path, content_type, body, answer.text[:300])


def test_the_gateway_is_healthy_after_the_hostile_requests(webhooks: Webhooks) -> None:
    assert webhooks.healthy()


@pytest.mark.parametrize(
    ("form", "refused"),
    [
        ({f"F{n}": "v" for n in range(MAX_FORM_FIELDS + 1)}, "Too many fields"),
        ({"Body": "x" * (MAX_FORM_FIELD_BYTES + 1)}, "Field exceeded maximum size"),
        ({"Body": "收" * 1600, **{f"F{n}": "v" * 100 for n in range(MAX_FORM_FIELDS - 1)}}, None),
    ],
    ids=["too-many-fields", "field-too-large", "largest-real-sms"],
)
def test_a_webhook_form_beyond_twilios_sizes_is_refused_with_400(
    webhooks: Webhooks, form: dict[str, str], refused: str | None
) -> None:
    answer = webhooks.post_form("/api/twilio/sms-inbound", form, signed=True)
    if refused is None:
        assert answer.status_code == 200, answer.text[:300]
    else:
        assert (answer.status_code, refused in answer.text) == (400, True), answer.text[:300]


@pytest.fixture
def twilio(monkeypatch: pytest.MonkeyPatch) -> Iterator[TwilioStandIn]:
    with TwilioStandIn() as stand_in:
        monkeypatch.setenv("TEST_TWILIO_SID", stand_in.account_sid)
        monkeypatch.setenv("TEST_TWILIO_TOKEN", stand_in.auth_token)
        yield stand_in


@pytest.mark.asyncio
async def test_a_key_press_is_acknowledged_exactly_when_the_caller_is_told_it_was(
    mosquitto: Mosquitto, tmp_path: Path, twilio: TwilioStandIn
) -> None:
    # Regression: " 1" was answered "accepted" (the TwiML strips it) but acknowledged nothing.
    config = escalating_config(mosquitto.url, tmp_path, twilio, tier1=["voice"], wait_s=60)
    async with live_gateway(config) as live:
        Publisher(mosquitto.port).sos("night", "night-pendant-wang")
        await until(lambda: sent_to(twilio, CARER, "Calls"), "the carer's call")
        twiml = sent_to(twilio, CARER, "Calls")[0].get("Twiml") or ""
        action = html.unescape(re.search(r'action="([^"]+)"', twiml).group(1))  # type: ignore[union-attr]
        # Presses that are not "1" first (each must leave the alarm open), then " 1".
        for digits, accepted in [("2", False), ("11", False), ("1#", False), ("１", False), (" 1", True)]:
            answer = await asyncio.to_thread(twilio.drive_callback, action, {"Digits": digits})
            assert answer.status_code == 200
            told_accepted = html.escape(gather_reply_text(True, "zh-CN")) in answer.text
            assert told_accepted is accepted, (digits, answer.text)
            incident = (await live.incidents())[0]
            assert (incident["status"] == "acknowledged") is accepted, (digits, incident["status"])
