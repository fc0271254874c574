"""What a responder reads or hears about an alarm, in their language (English or Simplified Chinese).

Every text says who, where, what, when, and how to accept; channels only choose which rendering to send.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.escalation.model import AlarmSummary, Notification

Language = Literal["en", "zh-CN"]

#: Upper bound for an SMS text. Chinese text goes out as UCS-2 (67 characters per concatenated part), so
#: 300 characters is at most five parts: cheap enough, and short enough to read at a glance.
SMS_MAX_CHARS = 300

_RULE_LABELS: dict[str, dict[Language, str]] = {
    "sos": {"en": "SOS emergency call", "zh-CN": "紧急呼叫"},
    "fall": {"en": "Fall detected", "zh-CN": "跌倒"},
    "door_night": {"en": "Door opened at night", "zh-CN": "夜间出门"},
    "door_left_open": {"en": "Door left open", "zh-CN": "门未关"},
    "smoke": {"en": "Smoke alarm", "zh-CN": "烟雾报警"},
}

_SEVERITY_LABELS: dict[str, dict[Language, str]] = {
    "critical": {"en": "CRITICAL", "zh-CN": "紧急"},
    "high": {"en": "HIGH", "zh-CN": "高"},
    "medium": {"en": "MEDIUM", "zh-CN": "中"},
    "low": {"en": "LOW", "zh-CN": "低"},
}

_SMS_ACK: dict[Language, str] = {"en": "Reply 1 or OK to accept.", "zh-CN": "回复 1 或 收到 确认接警。"}
_VOICE_ACK: dict[Language, str] = {"en": "Press 1 to accept.", "zh-CN": "接警请按 1。"}

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


def normalize_language(value: str) -> Language:
    """A stored language tag as one we render: any Chinese tag ("zh", "zh-cn", "zh_CN") is zh-CN."""
    return "zh-CN" if value.strip().lower().replace("_", "-").startswith("zh") else "en"


def alarm_label(rule: str, language: Language) -> str:
    """The alarm type in words; unknown rules are shown by their name so nothing is hidden."""
    labels = _RULE_LABELS.get(rule.strip().lower())
    return labels[language] if labels else rule


def severity_label(severity: str, language: Language) -> str:
    labels = _SEVERITY_LABELS.get(severity.strip().lower())
    return labels[language] if labels else severity


def place_text(alarm: AlarmSummary, language: Language) -> str:
    """Site plus room, e.g. "Sunny Court, room 203" / "阳光苑 203 房间"."""
    if not alarm.room:
        return alarm.site_name
    if language == "zh-CN":
        return f"{alarm.site_name} {alarm.room} 房间"
    return f"{alarm.site_name}, room {alarm.room}"


def local_time_text(alarm: AlarmSummary) -> str:
    """When the incident opened, in the site's local time (responders think in wall-clock time)."""
    return _local_opened_at(alarm).strftime("%Y-%m-%d %H:%M")


def ack_url(public_base_url: str, ack_token: str) -> str:
    return f"{public_base_url.rstrip('/')}/api/escalation/ack/{ack_token}"


def sms_text(notification: Notification) -> str:
    """One SMS of at most `SMS_MAX_CHARS`; the acknowledgement instruction is always kept whole."""
    language = notification.recipient.language
    head = _sms_head(notification.alarm, language)
    tail = _SMS_ACK[language]
    room = SMS_MAX_CHARS - len(tail) - 1
    if len(head) > room:
        head = head[: room - 1] + "…"
    return f"{head} {tail}"


def voice_script(notification: Notification) -> str:
    """The words spoken on a call, in short sentences: text-to-speech on a phone line is hard to follow."""
    alarm, language = notification.alarm, notification.recipient.language
    label = alarm_label(alarm.rule, language)
    place = place_text(alarm, language)
    when = _local_opened_at(alarm).strftime("%H:%M")
    who = alarm.resident_name
    if language == "zh-CN":
        resident = f"住户{who}，" if who else ""
        return (
            f"这里是 Careline 紧急通知。{resident}地点{place}，{label}，时间 {when}。{_VOICE_ACK[language]}"
        )
    resident = f" for {who}" if who else ""
    return f"This is Careline. Alarm: {label}{resident}, at {place}, at {when}. {_VOICE_ACK[language]}"


def goodbye_text(language: Language) -> str:
    if language == "zh-CN":
        return "未收到确认，我们将继续联系其他接警人员。再见。"
    return "No answer received. We will keep contacting other responders. Goodbye."


def gather_reply_text(accepted: bool, language: Language) -> str:
    if language == "zh-CN":
        return "已确认接警，谢谢。请立即前往。" if accepted else "未确认接警，我们将联系其他接警人员。再见。"
    if accepted:
        return "Thank you, you have accepted the alarm. Please go now."
    return "The alarm was not accepted. We will contact other responders. Goodbye."


def email_text(notification: Notification, public_base_url: str) -> EmailText:
    alarm, language = notification.alarm, notification.recipient.language
    return EmailText(
        subject=_email_subject(alarm, language),
        body=_email_body(notification, ack_url(public_base_url, notification.ack_token)),
    )


def parse_sms_reply(text: str) -> bool:
    """True when an SMS reply accepts the alarm: "1", "OK", "收到", "好", "确认", "yes" (also full-width)."""
    folded = unicodedata.normalize("NFKC", text).strip(_REPLY_TRAILING).casefold()
    return folded in _ACCEPT_REPLIES


def _clip(text: str) -> str:
    return text if len(text) <= _FIELD_MAX else text[: _FIELD_MAX - 1] + "…"


def _local_opened_at(alarm: AlarmSummary) -> datetime:
    # A naive timestamp is taken as UTC (the incident store keeps UTC); an unknown zone name falls back to
    # UTC rather than failing, because a wrongly labelled time beats no alarm at all.
    opened = alarm.opened_at if alarm.opened_at.tzinfo else alarm.opened_at.replace(tzinfo=UTC)
    try:
        zone = ZoneInfo(alarm.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return opened.astimezone(UTC)
    return opened.astimezone(zone)


def _sms_head(alarm: AlarmSummary, language: Language) -> str:
    label = _clip(alarm_label(alarm.rule, language))
    place = _clip(place_text(alarm, language))
    when = local_time_text(alarm)
    who = _clip(alarm.resident_name) if alarm.resident_name else None
    if language == "zh-CN":
        resident = f"住户：{who}，" if who else ""
        return (
            f"【Careline 告警】{label}。{resident}地点：{place}，时间：{when}（事件 #{alarm.incident_id}）。"
        )
    resident = f" Resident: {who}." if who else ""
    return f"Careline ALARM: {label}.{resident} Place: {place}. Time: {when} (incident #{alarm.incident_id})."


def _email_subject(alarm: AlarmSummary, language: Language) -> str:
    label = alarm_label(alarm.rule, language)
    severity = severity_label(alarm.severity, language)
    who = f" – {alarm.resident_name}" if alarm.resident_name else ""
    if language == "zh-CN":
        return f"【Careline {severity}】{label}{who}，{place_text(alarm, language)}"
    return f"[Careline {severity}] {label}{who}, {place_text(alarm, language)}"


def _email_body(notification: Notification, link: str) -> str:
    alarm, language = notification.alarm, notification.recipient.language
    label = alarm_label(alarm.rule, language)
    resident = alarm.resident_name or ("—" if language == "zh-CN" else "-")
    when = f"{local_time_text(alarm)} ({alarm.timezone})"
    if language == "zh-CN":
        lines = [
            f"{notification.recipient.name}，您好：",
            "",
            f"告警类型：{label}",
            f"级别：{severity_label(alarm.severity, language)}",
            f"住户：{resident}",
            f"地点：{place_text(alarm, language)}",
            f"时间：{when}",
            f"触发次数：{alarm.trigger_count}",
            f"事件编号：#{alarm.incident_id}",
            "",
            "确认接警：请打开下面的链接，再按页面上的“确认接警”按钮（只打开链接不算确认）。",
            link,
        ]
    else:
        lines = [
            f"Hello {notification.recipient.name},",
            "",
            f"Alarm: {label}",
            f"Severity: {severity_label(alarm.severity, language)}",
            f"Resident: {resident}",
            f"Place: {place_text(alarm, language)}",
            f"Time: {when}",
            f"Triggers: {alarm.trigger_count}",
            f"Incident: #{alarm.incident_id}",
            "",
            'To accept this alarm, open this link and press the "Accept this alarm" button on the page',
            "(opening the link alone does not accept it):",
            link,
        ]
    return "\n".join(lines) + "\n"
