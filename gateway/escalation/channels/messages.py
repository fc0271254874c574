"""What a responder reads or hears about an alarm, in their language (English or Simplified Chinese).

Every text says who, where, what, when, and how to accept; channels only choose which rendering to send.
The words come from the message catalogue (gateway/catalogue/messages.yaml); this module only decides
which entries to use and how long an SMS may be.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.catalogue import Language, label, normalize_language, text
from gateway.escalation.model import AlarmSummary, Notification

__all__ = [
    "SMS_MAX_CHARS",
    "EmailText",
    "Language",
    "ack_url",
    "alarm_label",
    "email_text",
    "gather_reply_text",
    "goodbye_text",
    "local_time_text",
    "normalize_language",
    "parse_sms_reply",
    "place_text",
    "severity_label",
    "sms_text",
    "voice_script",
]

#: Upper bound for an SMS text. Chinese text goes out as UCS-2 (67 characters per concatenated part), so
#: 300 characters is at most five parts: cheap enough, and short enough to read at a glance.
SMS_MAX_CHARS = 300

# Replies that accept an alarm. Compared after NFKC folding (full-width "１" / "ＯＫ" become "1" / "OK")
# and case folding; anything else, including "ok?" or "no", is not an acceptance.
_ACCEPT_REPLIES = frozenset({"1", "ok", "收到", "好", "确认", "yes"})
# Trailing punctuation people add out of habit ("OK.", "收到！"); "?" is deliberately not stripped.
_REPLY_TRAILING = " \t\r\n.!。！~"

# Free-text fields are clipped so a long site or resident name cannot push the acknowledgement
# instruction out of an SMS.
_FIELD_MAX = 40


@dataclass(frozen=True, slots=True)
class EmailText:
    subject: str
    body: str


def alarm_label(rule: str, language: Language) -> str:
    """The alarm type in words; unknown rules are shown by their name so nothing is hidden."""
    return label("rule", rule, language)


def severity_label(severity: str, language: Language) -> str:
    return label("severity", severity, language)


def place_text(alarm: AlarmSummary, language: Language) -> str:
    """Site plus room, e.g. "Sunny Court, room 203" / "阳光苑 203 房间"."""
    if not alarm.room:
        return alarm.site_name
    return text("place.room", language, site=alarm.site_name, room=alarm.room)


def local_time_text(alarm: AlarmSummary) -> str:
    """When the incident opened, in the site's local time (responders think in wall-clock time)."""
    return _local_opened_at(alarm).strftime("%Y-%m-%d %H:%M")


def ack_url(public_base_url: str, ack_token: str) -> str:
    return f"{public_base_url.rstrip('/')}/api/escalation/ack/{ack_token}"


def sms_text(notification: Notification) -> str:
    """One SMS of at most `SMS_MAX_CHARS`; the acknowledgement instruction is always kept whole."""
    language = notification.recipient.language
    head = _sms_head(notification.alarm, language)
    tail = text("sms.accept", language)
    room = SMS_MAX_CHARS - len(tail) - 1
    if len(head) > room:
        head = head[: room - 1] + "…"
    return f"{head} {tail}"


def voice_script(notification: Notification) -> str:
    """The words spoken on a call, in short sentences: text-to-speech on a phone line is hard to follow."""
    alarm, language = notification.alarm, notification.recipient.language
    facts: dict[str, str | int] = {
        "alarm": alarm_label(alarm.rule, language),
        "place": place_text(alarm, language),
        "time": _local_opened_at(alarm).strftime("%H:%M"),
    }
    if alarm.resident_name:
        spoken = text("voice.alarm", language, resident=alarm.resident_name, **facts)
    else:
        spoken = text("voice.alarm.no_resident", language, **facts)
    return f"{spoken} {text('voice.accept', language)}"


def goodbye_text(language: Language) -> str:
    return text("voice.goodbye", language)


def gather_reply_text(accepted: bool, language: Language) -> str:
    return text("voice.accepted" if accepted else "voice.not_accepted", language)


def email_text(notification: Notification, public_base_url: str) -> EmailText:
    alarm, language = notification.alarm, notification.recipient.language
    return EmailText(
        subject=_email_subject(alarm, language),
        body=_email_body(notification, ack_url(public_base_url, notification.ack_token)),
    )


def parse_sms_reply(reply: str) -> bool:
    """True when an SMS reply accepts the alarm: "1", "OK", "收到", "好", "确认", "yes" (also full-width)."""
    folded = unicodedata.normalize("NFKC", reply).strip(_REPLY_TRAILING).casefold()
    return folded in _ACCEPT_REPLIES


def _clip(value: str) -> str:
    return value if len(value) <= _FIELD_MAX else value[: _FIELD_MAX - 1] + "…"


def _local_opened_at(alarm: AlarmSummary) -> datetime:
    # A naive timestamp is taken as UTC (the incident store keeps UTC); an unknown zone name falls back to
    # UTC rather than failing, because a wrongly labelled time beats no alarm at all.
    opened = alarm.opened_at if alarm.opened_at.tzinfo else alarm.opened_at.replace(tzinfo=UTC)
    try:
        zone = ZoneInfo(alarm.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return opened.astimezone(UTC)
    return opened.astimezone(zone)


def _sms_head(alarm: AlarmSummary, language: Language) -> str:
    facts: dict[str, str | int] = {
        "alarm": _clip(alarm_label(alarm.rule, language)),
        "place": _clip(place_text(alarm, language)),
        "time": local_time_text(alarm),
        "incident": alarm.incident_id,
    }
    if alarm.resident_name:
        return text("sms.alarm", language, resident=_clip(alarm.resident_name), **facts)
    return text("sms.alarm.no_resident", language, **facts)


def _email_subject(alarm: AlarmSummary, language: Language) -> str:
    facts: dict[str, str | int] = {
        "severity": severity_label(alarm.severity, language),
        "alarm": alarm_label(alarm.rule, language),
        "place": place_text(alarm, language),
    }
    if alarm.resident_name:
        return text("email.subject", language, resident=alarm.resident_name, **facts)
    return text("email.subject.no_resident", language, **facts)


def _email_body(notification: Notification, link: str) -> str:
    alarm, language = notification.alarm, notification.recipient.language
    resident = (
        text("email.resident", language, resident=alarm.resident_name)
        if alarm.resident_name
        else text("email.no_resident", language)
    )
    lines = [
        text("email.greeting", language, name=notification.recipient.name),
        "",
        text("email.alarm", language, alarm=alarm_label(alarm.rule, language)),
        text("email.severity", language, severity=severity_label(alarm.severity, language)),
        resident,
        text("email.place", language, place=place_text(alarm, language)),
        text("email.time", language, time=local_time_text(alarm), timezone=alarm.timezone),
        text("email.triggers", language, count=alarm.trigger_count),
        text("email.incident", language, incident=alarm.incident_id),
        "",
        text("email.accept", language, link=link),
    ]
    return "\n".join(lines) + "\n"
