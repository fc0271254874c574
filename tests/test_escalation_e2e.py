"""Escalation end to end: real Mosquitto, real gateway, the real `twilio` library talking to a LOCAL
STAND-IN of Twilio's REST API (simulators/twilio_standin.py; Twilio's cloud is unreachable here), webhooks
signed by `twilio.request_validator` exactly as Twilio signs them, and a real SMTP peer."""

from __future__ import annotations

import asyncio
import html
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiosmtpd.controller import Controller
from harness import Publisher, live_gateway, new_config
from services import Mosquitto, free_port
from stores import store_rows
from test_channels_email import Mailbox
from test_crash_recovery import gateway_process

from gateway.catalogue import LANGUAGES, text
from gateway.escalation.webhooks import ForgeryLog
from simulators.twilio_standin import RecordedRequest, TwilioStandIn

CARER, BOSS = "+8613800000001", "+8613800000004"


@pytest.fixture
def twilio(monkeypatch: pytest.MonkeyPatch) -> Iterator[TwilioStandIn]:
    with TwilioStandIn() as stand_in:
        monkeypatch.setenv("TEST_TWILIO_SID", stand_in.account_sid)
        monkeypatch.setenv("TEST_TWILIO_TOKEN", stand_in.auth_token)
        yield stand_in


def escalating_config(
    broker_url: str,
    tmp_path: Path,
    twilio: TwilioStandIn,
    *,
    tier1: list[str],
    wait_s: int,
    smtp_port: int | None = None,
) -> dict[str, Any]:
    config = new_config(broker_url, tmp_path)
    http_port = config["http"]["port"]
    config["responders"] = [
        {"id": "carer", "name": "Carer Li", "phone": CARER, "email": "carer@example.com", "roles": ["carer"]},
        {"id": "boss", "name": "Supervisor", "phone": BOSS, "roles": ["supervisor"], "language": "en"},
    ]
    config["escalation"] = {
        "public_url": f"http://127.0.0.1:{http_port}",
        "twilio": {
            "account_sid_env": "TEST_TWILIO_SID",
            "auth_token_env": "TEST_TWILIO_TOKEN",
            "from_number": "+15005550006",
            "api_base_url": twilio.base_url,
            "timeout_s": 5,
            "voices": {"zh-CN": "Polly.Zhiyu"},
        },
        "policies": [
            {
                "id": "test",
                "repeat": "stop",
                "tiers": [
                    {"targets": [{"role": "carer"}], "channels": tier1, "wait_s": wait_s},
                    {"targets": [{"role": "supervisor"}], "channels": ["sms"], "wait_s": 60},
                ],
            }
        ],
    }
    if smtp_port is not None:
        config["escalation"]["smtp"] = {
            "host": "127.0.0.1",
            "port": smtp_port,
            "starttls": False,
            "from_address": "careline@example.com",
            "timeout_s": 30,
        }
    return config


async def until(predicate: Any, what: str, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def sent_to(twilio: TwilioStandIn, number: str, resource: str = "Messages") -> list[RecordedRequest]:
    return [r for r in twilio.requests if r.resource == resource and r.get("To") == number]


async def test_an_sms_reply_acknowledges_the_incident_and_stops_the_rest(
    mosquitto: Mosquitto, tmp_path: Path, twilio: TwilioStandIn
) -> None:
    config = escalating_config(mosquitto.url, tmp_path, twilio, tier1=["sms"], wait_s=5)
    async with live_gateway(config) as live:
        Publisher(mosquitto.port).sos("night", "night-pendant-wang")
        await until(lambda: sent_to(twilio, CARER), "the carer's SMS")
        sms = sent_to(twilio, CARER)[0]
        assert "王秀英" in (sms.get("Body") or "")
        assert (sms.get("StatusCallback") or "").startswith(config["escalation"]["public_url"])
        reply = await asyncio.to_thread(
            twilio.drive_callback,
            f"{live.base_url.rstrip('/')}/api/twilio/sms-inbound",
            {"From": CARER, "Body": "收到", "MessageSid": "SM" + "1" * 32},
        )
        assert reply.status_code == 200
        incident = (await live.incidents())[0]
        assert (incident["status"], incident["acknowledged_by"]) == (
            "acknowledged",
            "responder:carer via sms",
        )
        escalation = (await live.http.get(f"/api/incidents/{incident['id']}/escalation")).json()
        # The console shows whom it reached by name.
        assert [(n["responder"], n["responder_name"]) for n in escalation] == [("carer", "Carer Li")]
        await asyncio.sleep(6)  # past tier 1's wait: tier 2 must not fire
        assert sent_to(twilio, BOSS) == []


async def test_pressing_1_on_the_call_acknowledges_the_incident(
    mosquitto: Mosquitto, tmp_path: Path, twilio: TwilioStandIn
) -> None:
    config = escalating_config(mosquitto.url, tmp_path, twilio, tier1=["voice"], wait_s=60)
    async with live_gateway(config) as live:
        Publisher(mosquitto.port).sos("night", "night-pendant-wang")
        await until(lambda: sent_to(twilio, CARER, "Calls"), "the carer's call")
        twiml = sent_to(twilio, CARER, "Calls")[0].get("Twiml") or ""
        assert 'numDigits="1"' in twiml
        assert 'language="zh-CN"' in twiml
        assert 'voice="Polly.Zhiyu"' in twiml
        action = html.unescape(re.search(r'action="([^"]+)"', twiml).group(1))  # type: ignore[union-attr]
        answer = await asyncio.to_thread(
            twilio.drive_callback, action, {"Digits": "1", "CallSid": "CA" + "2" * 32}
        )
        assert answer.status_code == 200
        assert "<Say" in answer.text
        assert 'voice="Polly.Zhiyu"' in answer.text
        incident = (await live.incidents())[0]
        assert (incident["status"], incident["acknowledged_by"]) == (
            "acknowledged",
            "responder:carer via voice",
        )


async def test_an_unknown_acknowledge_link_answers_in_the_browsers_language(
    mosquitto: Mosquitto, tmp_path: Path, twilio: TwilioStandIn
) -> None:
    config = escalating_config(mosquitto.url, tmp_path, twilio, tier1=["voice"], wait_s=60)
    async with live_gateway(config) as live:
        for language in LANGUAGES:
            asked = {"Accept-Language": f"{language};q=0.9"}
            page = await live.http.get("/api/escalation/ack/no-such-token", headers=asked)
            pressed = await live.http.post("/api/escalation/ack/no-such-token", headers=asked)
            assert (page.status_code, pressed.status_code) == (404, 404)
            assert html.escape(text("ack_link.unknown", language)) in page.text
            assert html.escape(text("ack_link.unknown", language)) in pressed.text


async def test_a_call_nobody_answers_moves_on_to_the_next_tier_at_once(
    mosquitto: Mosquitto, tmp_path: Path, twilio: TwilioStandIn
) -> None:
    config = escalating_config(mosquitto.url, tmp_path, twilio, tier1=["voice"], wait_s=300)
    async with live_gateway(config):
        Publisher(mosquitto.port).sos("night", "night-pendant-wang")
        await until(lambda: sent_to(twilio, CARER, "Calls"), "the carer's call")
        status_url = sent_to(twilio, CARER, "Calls")[0].get("StatusCallback") or ""
        await asyncio.to_thread(
            twilio.drive_callback, status_url, {"CallStatus": "no-answer", "CallSid": "CA" + "3" * 32}
        )
        await until(lambda: sent_to(twilio, BOSS), "the supervisor's SMS", limit_s=5)  # not 300 s


async def test_a_forged_webhook_is_refused_and_audited(
    mosquitto: Mosquitto, tmp_path: Path, twilio: TwilioStandIn
) -> None:
    config = escalating_config(mosquitto.url, tmp_path, twilio, tier1=["sms"], wait_s=60)
    async with live_gateway(config) as live:
        Publisher(mosquitto.port).sos("night", "night-pendant-wang")
        await until(lambda: sent_to(twilio, CARER), "the carer's SMS")
        url = f"{live.base_url.rstrip('/')}/api/twilio/sms-inbound"
        forged = await asyncio.to_thread(
            twilio.drive_callback, url, {"From": CARER, "Body": "1"}, signature="bm90IGEgcmVhbCBzaWduYXR1cmU="
        )
        assert forged.status_code == 403
        assert (await live.incidents())[0]["status"] == "open"
        for _ in range(20):
            again = await asyncio.to_thread(
                twilio.drive_callback,
                url,
                {"From": CARER, "Body": "1"},
                signature="bm90IGEgcmVhbCBzaWduYXR1cmU=",
            )
            assert again.status_code == 403
        forged_entries = [e for e in live.gateway.store.audit_trail() if e.action == "webhook.forged"]
        assert [e.details for e in forged_entries] == [{"path": "/api/twilio/sms-inbound", "forgeries": 1}]
        assert live.gateway.metrics.webhooks_forged.labels("/api/twilio/sms-inbound")._value.get() == 21


@pytest.fixture
def mail_relay() -> Iterator[tuple[int, Mailbox]]:
    """A real SMTP server (aiosmtpd) keeping what the gateway sends."""
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, mailbox
    finally:
        controller.stop()


async def test_an_email_link_only_shows_the_alarm_and_its_button_acknowledges_once(
    mosquitto: Mosquitto, tmp_path: Path, twilio: TwilioStandIn, mail_relay: tuple[int, Mailbox]
) -> None:
    port, mailbox = mail_relay
    config = escalating_config(mosquitto.url, tmp_path, twilio, tier1=["email"], wait_s=60, smtp_port=port)
    async with live_gateway(config) as live, httpx.AsyncClient() as browser:
        Publisher(mosquitto.port).sos("night", "night-pendant-wang")
        await until(lambda: mailbox.messages, "the carer's e-mail")
        body = mailbox.messages[0][1].get_content()
        assert "“确认接警”按钮" in body  # the carer reads Chinese: the mail says to press the button
        link = next(line for line in body.splitlines() if "/api/escalation/ack/" in line)

        # What a mail scanner or a link preview does: fetch the link. Nothing is acknowledged.
        for _ in range(3):
            page = await browser.get(link, headers={"Accept-Language": "en"})
            assert page.status_code == 200
            assert page.headers["cache-control"] == "no-store"
            assert '<html lang="zh-CN">' in page.text  # the responder's language, not the browser's
            assert "王秀英" in page.text
            assert "紧急呼叫" in page.text
            assert '<form method="post"><button type="submit">确认接警</button></form>' in page.text
        assert (await live.incidents())[0]["status"] == "open"

        pressed = await browser.post(link)
        assert pressed.status_code == 200
        assert "已确认接警" in pressed.text
        incident = (await live.incidents())[0]
        assert incident["status"] == "acknowledged"
        assert incident["acknowledged_by"] == "responder:carer via link"

        again = await browser.post(link)
        assert again.status_code == 409
        assert "此链接已使用过" in again.text
        assert "<form" not in (await browser.get(link)).text  # a used link offers no button

        unknown = f"{live.base_url.rstrip('/')}/api/escalation/ack/no-such-token"
        english = await browser.get(unknown, headers={"Accept-Language": "fr;q=1, en-GB;q=0.8, zh;q=0.5"})
        assert english.status_code == 404
        assert text("ack_link.unknown", "en") in english.text
        chinese = await browser.post(unknown, headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
        assert chinese.status_code == 404
        assert "链接无效或已过期。" in chinese.text
        refused = live.gateway.metrics.ack_links_refused
        assert (refused.labels("used")._value.get(), refused.labels("unknown")._value.get()) == (1, 1)


def _notification_statuses(url: str) -> list[str]:
    return [row[0] for row in store_rows(url, "SELECT status FROM notifications ORDER BY id")]


class HangingSmtp:
    """Accepts connections and never says a word, like a wedged mail relay."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.port = self.server.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


async def test_a_hanging_smtp_server_does_not_delay_another_incidents_sms(
    mosquitto: Mosquitto, tmp_path: Path, twilio: TwilioStandIn
) -> None:
    smtp = HangingSmtp()
    config = escalating_config(
        mosquitto.url, tmp_path, twilio, tier1=["email", "sms"], wait_s=60, smtp_port=smtp.port
    )
    try:
        async with live_gateway(config):
            device = Publisher(mosquitto.port)
            device.sos("night", "night-pendant-wang")
            await until(lambda: smtp.held and sent_to(twilio, CARER), "the first e-mail to hang")
            started = time.monotonic()
            device.sos("day", "day-pendant-wang")
            await until(lambda: len(sent_to(twilio, CARER)) == 2, "the second incident's SMS", limit_s=3)
            assert time.monotonic() - started < 2.0
    finally:
        smtp.close()


@pytest.mark.slow
async def test_a_gateway_killed_mid_escalation_resumes_it_on_restart(
    mosquitto: Mosquitto, tmp_path: Path, twilio: TwilioStandIn
) -> None:
    config = escalating_config(mosquitto.url, tmp_path, twilio, tier1=["sms"], wait_s=5)
    config_path = tmp_path / "careline.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True))
    port, log = config["http"]["port"], tmp_path / "gateway.log"
    assert os.environ["TEST_TWILIO_TOKEN"] == twilio.auth_token  # the subprocess inherits the secrets
    with gateway_process(config_path, port, log) as first:
        Publisher(mosquitto.port).sos("night", "night-pendant-wang")
        await until(lambda: sent_to(twilio, CARER), "tier 1's SMS")
        # Kill once the send is on record: a send cut off before that is sent again (at least once).
        await until(lambda: _notification_statuses(config["storage"]["url"]) == ["sent"], "tier 1 on record")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    await asyncio.sleep(6)  # tier 2 falls due while the gateway is dead
    assert sent_to(twilio, BOSS) == []
    with gateway_process(config_path, port, log):
        await until(lambda: sent_to(twilio, BOSS), "tier 2, overdue, fired at once after restart", limit_s=5)
    assert len(sent_to(twilio, CARER)) == 1  # tier 1 was sent before the kill and is not repeated


def test_a_flood_of_forgeries_is_audited_once_a_minute_per_path_with_its_count() -> None:
    now = [0.0]
    log = ForgeryLog(interval_s=60.0, clock=lambda: now[0])

    assert log.forged("/api/twilio/sms-inbound") == 1  # the first is recorded at once
    assert [log.forged("/api/twilio/sms-inbound") for _ in range(500)] == [0] * 500
    assert log.forged("/api/twilio/gather") == 1  # each path on its own
    now[0] = 61.0
    assert log.forged("/api/twilio/sms-inbound") == 501  # the next entry stands for all since
