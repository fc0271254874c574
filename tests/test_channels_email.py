"""E-mail against a real SMTP server (aiosmtpd) on a free port, and against one that never answers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Literal

import pytest
from aiosmtpd import smtp as aiosmtp
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from services import free_port

from gateway.escalation.channels.email import SmtpEmail
from gateway.escalation.config import SmtpConfig
from gateway.escalation.model import AlarmSummary, Channel, Notification, Recipient

PUBLIC = "https://careline.example.org"
ACK_LINK = f"{PUBLIC}/api/escalation/ack/tok-abc"


def notification(
    language: Literal["en", "zh-CN"] = "en", *, email: str | None = "nurse@example.org"
) -> Notification:
    alarm = AlarmSummary(
        incident_id=42,
        rule="smoke",
        severity="critical",
        site_name="Sunny Court",
        room="203",
        resident_name="Wang Li",
        opened_at=datetime(2026, 1, 5, 14, 30, tzinfo=UTC),
    )
    recipient = Recipient("r1", "Zhang Wei", language, email=email)
    return Notification(7, 42, recipient, alarm, ack_token="tok-abc")


class Mailbox:
    """aiosmtpd handler: keeps what it receives; can refuse recipients with a given reply."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []
        self.rcpt_reply: str | None = None

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: aiosmtp.SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: aiosmtp.SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope, parsed))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Mailbox]]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, mailbox
    finally:
        controller.stop()


def email(port: int, *, password: str | None = None, **overrides: Any) -> SmtpEmail:
    # The local test server speaks plain SMTP; the shipped default is STARTTLS.
    overrides = {"starttls": False, **overrides}
    settings = SmtpConfig(host="127.0.0.1", port=port, from_address="careline@example.org", **overrides)
    return SmtpEmail(settings, public_url=PUBLIC, password=password)


def test_channel_satisfies_the_protocol() -> None:
    channel: Channel = email(25)
    assert channel.kind.value == "email"


@pytest.mark.parametrize(
    ("language", "subject", "press_the_button"),
    [
        (
            "en",
            "[Careline Critical] Smoke alarm – Wang Li, Sunny Court, room 203",
            'press the "Accept this alarm" button',
        ),
        ("zh-CN", "【Careline 危急】烟雾报警 – Wang Li，Sunny Court 203 房间", "再按页面上的“确认接警”按钮"),
    ],
)
async def test_message_arrives_with_subject_body_and_ack_link(
    smtp: tuple[Controller, Mailbox], language: Literal["en", "zh-CN"], subject: str, press_the_button: str
) -> None:
    controller, mailbox = smtp
    delivery = await email(controller.port).send(notification(language))

    assert delivery.ok, delivery
    [(envelope, message)] = mailbox.messages
    assert envelope.mail_from == "careline@example.org"
    assert envelope.rcpt_tos == ["nurse@example.org"]
    assert message["Subject"] == subject
    assert message["To"] == "nurse@example.org"
    assert message["Message-ID"] == delivery.provider_id
    assert message["X-Careline-Incident"] == "42"
    body = message.get_content()
    # Opening the link only shows a page (mail scanners open links); its button accepts the alarm.
    assert press_the_button in body
    assert ACK_LINK in body.splitlines()
    assert "2026-01-05 22:30" in body


async def test_login_with_username_and_password() -> None:
    seen: list[tuple[str, str]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        seen.append((data.login.decode(), data.password.decode()))
        # handled=False: let aiosmtpd answer 535 itself on failure (its default is to stay silent).
        return AuthResult(success=data.password == b"s3cret", handled=False)

    mailbox = Mailbox()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticator,
        # Plain-text AUTH is only acceptable because this test server is on 127.0.0.1.
        auth_require_tls=False,
    )
    controller.start()
    try:
        good = await email(controller.port, username="gw", password="s3cret", timeout_s=5).send(
            notification()
        )
        bad = await email(controller.port, username="gw", password="wrong", timeout_s=5).send(notification())
    finally:
        controller.stop()
    assert good.ok, good
    assert (bad.ok, bad.retryable, bad.extra) == (False, False, {"smtp_code": "535"})
    # smtplib tries each offered mechanism (PLAIN, then LOGIN) before giving up.
    assert seen[0] == ("gw", "s3cret")
    assert set(seen[1:]) == {("gw", "wrong")}
    assert len(mailbox.messages) == 1


async def test_permanent_refusal_is_not_retryable(smtp: tuple[Controller, Mailbox]) -> None:
    controller, mailbox = smtp
    mailbox.rcpt_reply = "550 5.1.1 No such user"
    delivery = await email(controller.port).send(notification())
    assert (delivery.ok, delivery.retryable) == (False, False)
    assert delivery.extra == {"smtp_code": "550"}
    assert "No such user" in delivery.detail


async def test_temporary_refusal_is_retryable(smtp: tuple[Controller, Mailbox]) -> None:
    controller, mailbox = smtp
    mailbox.rcpt_reply = "451 4.7.1 Greylisted, try again later"
    delivery = await email(controller.port).send(notification())
    assert (delivery.ok, delivery.retryable) == (False, True)


async def test_recipient_without_address_is_not_sent(smtp: tuple[Controller, Mailbox]) -> None:
    controller, mailbox = smtp
    delivery = await email(controller.port).send(notification(email=None))
    assert (delivery.ok, delivery.retryable) == (False, False)
    assert mailbox.messages == []


async def test_refused_connection_is_retryable() -> None:
    delivery = await email(free_port(), timeout_s=2).send(notification())
    assert (delivery.ok, delivery.retryable) == (False, True)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never says a word (no SMTP greeting): a hung mail server."""
    listener = socket.create_server(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        listener.close()


async def test_hanging_server_times_out_as_retryable(silent_server: int) -> None:
    started = time.monotonic()
    delivery = await email(silent_server, timeout_s=1).send(notification())
    elapsed = time.monotonic() - started
    assert (delivery.ok, delivery.retryable) == (False, True)
    assert "time" in delivery.detail.lower()
    assert elapsed < 1.5
