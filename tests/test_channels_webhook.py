"""The signed webhook channel against a real local HTTP receiver (FastAPI under uvicorn in a thread)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI, Request, Response
from services import free_port

from gateway.escalation.channels.webhook import (
    SignedWebhook,
    sign_webhook_body,
    verify_webhook_signature,
)
from gateway.escalation.config import WebhookConfig
from gateway.escalation.model import AlarmSummary, Channel, Notification, Recipient
from simulators.twilio_standin import UvicornThread

SECRET = "shared-secret-for-tests"
PUBLIC = "https://careline.example.org"


def notification() -> Notification:
    alarm = AlarmSummary(
        incident_id=42,
        rule="door_night",
        severity="high",
        site_name="阳光苑",
        room="203",
        resident_name="王丽",
        opened_at=datetime(2026, 1, 5, 14, 30, tzinfo=UTC),
    )
    recipient = Recipient("desk", "Night desk", "zh-CN")
    return Notification(7, 42, recipient, alarm, ack_token="tok-abc", attempt=2)


@dataclass
class Receiver:
    """Records what arrives, checks the HMAC itself, and answers with `status` (or hangs)."""

    status: int = 200
    hang: bool = False
    received: list[tuple[bytes, dict[str, str], bool]] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            valid = verify_webhook_signature(SECRET, body, request.headers.get("X-Careline-Signature"))
            self.received.append((body, dict(request.headers), valid))
            if self.hang:
                await asyncio.to_thread(self.released.wait, 30)
            return Response(status_code=self.status if valid else 401)

        return app


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()
    server = UvicornThread(state.app())
    server.start()
    try:
        yield state, f"{server.base_url}/hook"
    finally:
        state.released.set()
        server.stop()


def channel(url: str, *, timeout_s: float = 10.0, secret: str = SECRET) -> SignedWebhook:
    return SignedWebhook(
        WebhookConfig(url=url, secret_env="HOOK_SECRET", timeout_s=timeout_s),
        secret=secret,
        public_url=PUBLIC,
    )


def test_channel_satisfies_the_protocol() -> None:
    webhook: Channel = channel("http://127.0.0.1:9/hook")
    assert webhook.kind.value == "webhook"


async def test_post_is_signed_and_carries_the_incident_and_ack_url(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    before = int(time.time())
    delivery = await channel(url).send(notification())

    assert delivery.ok, delivery
    assert delivery.extra == {"http_status": "200"}
    [(body, headers, valid)] = state.received
    assert valid
    assert headers["x-careline-signature"] == sign_webhook_body(SECRET, body)
    assert headers["x-careline-signature"].startswith("sha256=")
    assert before <= int(headers["x-careline-timestamp"]) <= int(time.time())
    assert headers["x-careline-notification"] == "7.2"
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert payload["ack_url"] == f"{PUBLIC}/api/escalation/ack/tok-abc"
    assert payload["incident"]["id"] == 42
    assert payload["incident"]["label"] == "夜间出门"
    assert payload["incident"]["resident"] == "王丽"
    assert payload["recipient"] == {"id": "desk", "name": "Night desk", "language": "zh-CN"}
    assert "回复 1 或 收到 确认接警" in payload["text"]


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (408, True), (400, False), (404, False)]
)
async def test_error_statuses(receiver: tuple[Receiver, str], status: int, retryable: bool) -> None:
    state, url = receiver
    state.status = status
    delivery = await channel(url).send(notification())
    assert (delivery.ok, delivery.retryable) == (False, retryable)
    assert delivery.extra == {"http_status": str(status)}


async def test_wrong_secret_is_refused_by_the_receiver_and_not_retryable(
    receiver: tuple[Receiver, str],
) -> None:
    state, url = receiver
    delivery = await channel(url, secret="not-the-secret").send(notification())
    assert (delivery.ok, delivery.retryable) == (False, False)
    assert not state.received[0][2]


async def test_hanging_receiver_times_out_as_retryable(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    state.hang = True
    started = time.monotonic()
    delivery = await channel(url, timeout_s=1.0).send(notification())
    assert (delivery.ok, delivery.retryable) == (False, True)
    assert "timeout" in delivery.detail
    assert time.monotonic() - started < 1.5


async def test_unreachable_receiver_is_retryable() -> None:
    delivery = await channel(f"http://127.0.0.1:{free_port()}/hook", timeout_s=2).send(notification())
    assert (delivery.ok, delivery.retryable) == (False, True)


def test_verify_rejects_tampering_and_malformed_headers() -> None:
    body = b'{"incident":{"id":42}}'
    header = sign_webhook_body(SECRET, body)
    assert verify_webhook_signature(SECRET, body, header)
    assert verify_webhook_signature(SECRET.encode(), body, header)
    assert not verify_webhook_signature(SECRET, body.replace(b"42", b"43"), header)
    assert not verify_webhook_signature("other", body, header)
    assert not verify_webhook_signature(SECRET, body, header.removeprefix("sha256="))
    assert not verify_webhook_signature(SECRET, body, header[:-1] + ("0" if header[-1] != "0" else "1"))
    assert not verify_webhook_signature(SECRET, body, None)
    assert not verify_webhook_signature(SECRET, body, "sha256=ünïcode")
    assert not verify_webhook_signature("", body, sign_webhook_body("", body))


def test_a_webhook_refuses_an_empty_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        channel("http://x", secret="")


async def test_a_burst_of_sends_does_not_stall_the_event_loop(receiver: tuple[Receiver, str]) -> None:
    """Each send used to build its own TLS context (reading the CA bundle: 50-100 ms of CPU on the event
    loop, even for http://), so the burst of notifications due after a restart held up everything else on
    the loop, the alarm lane included, for seconds (found by benchmarks/soak.py)."""
    state, url = receiver
    webhook = channel(url)
    assert (await webhook.send(notification())).ok  # the first send may build what the others share
    period_s, stalls = 0.005, []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(period_s)
            now = time.perf_counter()
            stalls.append(now - last - period_s)
            last = now

    ticking = asyncio.create_task(ticker())
    deliveries = await asyncio.gather(*(webhook.send(notification()) for _ in range(20)))
    done.set()
    await ticking
    assert all(d.ok for d in deliveries)
    assert len(state.received) == 21
    # Without the shared context: 20 stalls of 40-100 ms, about a second in all.
    stalled_s = sum(s for s in stalls if s > 0.02)
    assert stalled_s < 0.3, sorted(stalls)[-5:]
