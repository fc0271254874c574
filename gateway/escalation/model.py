"""What the escalation pipeline hands to a channel, and what a channel answers."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable


class ChannelKind(enum.StrEnum):
    SMS = "sms"
    VOICE = "voice"
    EMAIL = "email"
    WEBHOOK = "webhook"


@dataclass(frozen=True, slots=True)
class Recipient:
    responder_id: str
    name: str
    language: Literal["en", "zh-CN"]
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class AlarmSummary:
    """Everything a message needs to say; channels render it in the recipient's language."""

    incident_id: int
    rule: str
    severity: str
    site_name: str
    room: str | None
    resident_name: str | None
    opened_at: datetime
    trigger_count: int = 1
    #: Local time zone of the site, for rendering times.
    timezone: str = "Asia/Shanghai"
    site_id: str = ""


@dataclass(frozen=True, slots=True)
class Notification:
    """One attempt to reach one recipient through one channel about one incident."""

    notification_id: int
    incident_id: int
    recipient: Recipient
    alarm: AlarmSummary
    #: Unguessable token that lets a reply (SMS, voice key press, e-mail link) acknowledge the incident.
    ack_token: str
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class Delivery:
    """A channel's answer. `retryable` tells the retry stage whether trying again may help."""

    ok: bool
    retryable: bool = False
    provider_id: str | None = None
    detail: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class Channel(Protocol):
    kind: ChannelKind

    async def send(self, notification: Notification) -> Delivery:
        """Send once. Never raises for delivery failures: they are reported in `Delivery`."""
        ...


@runtime_checkable
class SentLookup(Protocol):
    """A channel whose provider can say whether a notification already went out (Twilio SMS): asked
    before a notification left in doubt by a dead instance is sent again."""

    async def sent_since(self, notification: Notification, since: datetime) -> str | None: ...
