"""Checking and reading the requests Twilio sends to us: inbound SMS, status callbacks, key presses.

Twilio signs every webhook with the account's auth token (header `X-Twilio-Signature`) over the exact URL it
requested plus the sorted POST parameters. Behind a proxy, verify against the public URL configured at
Twilio, not the internal one the gateway sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

SIGNATURE_HEADER: Final = "X-Twilio-Signature"

#: MessageStatus values that mean the SMS will not reach the phone.
MESSAGE_FAILED_STATUSES: Final = frozenset({"undelivered", "failed", "canceled"})
#: CallStatus values after which nobody was reached.
CALL_NO_CONTACT_STATUSES: Final = frozenset({"no-answer", "busy", "failed", "canceled"})
#: CallStatus values after which the call is over (no further callbacks for it).
CALL_FINAL_STATUSES: Final = frozenset({"completed", *CALL_NO_CONTACT_STATUSES})


class WebhookFormError(ValueError):
    """The form lacks a field Twilio always sends: not a Twilio request, or a different webhook."""


@dataclass(frozen=True, slots=True)
class InboundSms:
    message_sid: str
    from_number: str
    to_number: str
    body: str


@dataclass(frozen=True, slots=True)
class MessageStatusUpdate:
    message_sid: str
    #: queued, sending, sent, delivered, undelivered, failed, ...
    status: str
    to_number: str | None = None
    error_code: str | None = None

    @property
    def failed(self) -> bool:
        return message_status_failed(self.status)


@dataclass(frozen=True, slots=True)
class CallStatusUpdate:
    call_sid: str
    #: queued, initiated, ringing, in-progress, completed, busy, no-answer, canceled, failed
    status: str
    to_number: str | None = None
    duration_s: int | None = None
    #: "human" / "machine_*" when answering-machine detection is on; otherwise absent.
    answered_by: str | None = None

    @property
    def no_contact(self) -> bool:
        return call_status_means_no_contact(self.status)

    @property
    def final(self) -> bool:
        return self.status.strip().lower() in CALL_FINAL_STATUSES


@dataclass(frozen=True, slots=True)
class GatherInput:
    call_sid: str
    #: The keys pressed; empty when the caller pressed nothing before the timeout.
    digits: str


def verify_twilio_signature(
    auth_token: str, url: str, params: Mapping[str, str], signature: str | None
) -> bool:
    """True only for a request signed with `auth_token` over exactly this URL and these POST params.

    `params` may be a plain dict or a multi-dict with `getlist` (Starlette's FormData), which keeps
    repeated keys as Twilio signs them.
    """
    # An empty token would make anyone's signature "valid"; a missing header is simply unsigned.
    if not auth_token or not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))


def parse_inbound_sms(form: Mapping[str, str]) -> InboundSms:
    return InboundSms(
        message_sid=_required(form, "MessageSid"),
        from_number=_required(form, "From"),
        to_number=form.get("To", ""),
        body=form.get("Body", ""),
    )


def parse_message_status(form: Mapping[str, str]) -> MessageStatusUpdate:
    # Twilio sends both MessageStatus and SmsStatus; MessageStatus is the current name.
    status = form.get("MessageStatus") or _required(form, "SmsStatus")
    return MessageStatusUpdate(
        message_sid=form.get("MessageSid") or _required(form, "SmsSid"),
        status=status.strip().lower(),
        to_number=form.get("To"),
        error_code=form.get("ErrorCode") or None,
    )


def parse_call_status(form: Mapping[str, str]) -> CallStatusUpdate:
    duration = form.get("CallDuration") or form.get("Duration")
    return CallStatusUpdate(
        call_sid=_required(form, "CallSid"),
        status=_required(form, "CallStatus").strip().lower(),
        to_number=form.get("To"),
        duration_s=int(duration) if duration and duration.isdigit() else None,
        answered_by=form.get("AnsweredBy") or None,
    )


def parse_gather(form: Mapping[str, str]) -> GatherInput:
    return GatherInput(call_sid=_required(form, "CallSid"), digits=form.get("Digits", "").strip())


def message_status_failed(status: str) -> bool:
    return status.strip().lower() in MESSAGE_FAILED_STATUSES


def call_status_means_no_contact(status: str) -> bool:
    """True when the call reached nobody: no-answer, busy, failed, canceled.

    "completed" is not an acceptance either (a voicemail can answer); only key 1 at the gather webhook is.
    """
    return status.strip().lower() in CALL_NO_CONTACT_STATUSES


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise WebhookFormError(f"missing form field {name!r}")
    return value
