"""What responders read and hear: per-language texts, limits, and the SMS reply parser."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_catalogue import rule_names

from gateway.escalation.channels.messages import (
    SMS_MAX_CHARS,
    ack_url,
    alarm_label,
    email_text,
    local_time_text,
    normalize_language,
    parse_sms_reply,
    sms_text,
    voice_script,
)
from gateway.escalation.model import AlarmSummary, Notification, Recipient

PUBLIC = "https://careline.example.org"


def notification(
    language: Literal["en", "zh-CN"] = "en",
    *,
    rule: str = "fall",
    site: str = "Sunny Court",
    room: str | None = "203",
    resident: str | None = "Wang Li",
    opened_at: datetime = datetime(2026, 1, 5, 14, 30, tzinfo=UTC),
    timezone: str = "Asia/Shanghai",
) -> Notification:
    alarm = AlarmSummary(
        incident_id=42,
        rule=rule,
        severity="critical",
        site_name=site,
        room=room,
        resident_name=resident,
        opened_at=opened_at,
        timezone=timezone,
    )
    recipient = Recipient("r1", "Zhang Wei", language, phone="+8613800000001", email="zw@example.org")
    return Notification(7, 42, recipient, alarm, ack_token="tok-abc")


def test_english_sms_says_who_where_what_when_and_how_to_accept() -> None:
    text = sms_text(notification("en"))
    assert "Fall detected" in text
    assert "Wang Li" in text
    assert "Sunny Court, room 203" in text
    assert "2026-01-05 22:30" in text  # 14:30 UTC is 22:30 in Shanghai
    assert text.endswith("Reply 1 or OK to accept.")


def test_chinese_sms_is_in_chinese() -> None:
    text = sms_text(notification("zh-CN", rule="sos", resident="王丽", site="阳光苑"))
    assert "紧急呼叫" in text
    assert "王丽" in text
    assert "阳光苑 203 房间" in text
    assert "22:30" in text
    assert text.endswith("回复 1 或 收到 确认接警。")


@pytest.mark.parametrize(
    ("rule", "en", "zh"),
    [
        ("sos", "SOS call", "紧急呼叫"),
        ("fall", "Fall detected", "跌倒"),
        ("door_night", "Door opened at night", "夜间出门"),
        ("door_left_open", "Door left open", "门未关"),
        ("smoke", "Smoke alarm", "烟雾报警"),
        ("inactivity", "No activity for a long time", "长时间无活动"),
        ("missed_check_in", "Missed check-in", "未按时报平安"),
        ("bed_exit", "Out of bed at night", "夜间离床"),
        ("vitals", "Abnormal vital signs", "生命体征异常"),
        ("device_health", "Device fault", "设备故障"),
        ("activity_baseline", "Less active than usual", "活动量低于平时"),
        ("channel_failing", "Notification channel failing", "通知渠道故障"),
        ("water_leak", "water_leak", "water_leak"),
    ],
)
def test_alarm_labels(rule: str, en: str, zh: str) -> None:
    assert alarm_label(rule, "en") == en
    assert alarm_label(rule, "zh-CN") == zh


@pytest.mark.parametrize("rule", sorted(rule_names()))
@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_no_responder_is_told_a_raw_rule_id(rule: str, language: Literal["en", "zh-CN"]) -> None:
    label = alarm_label(rule, language)
    assert label != rule
    message = notification(language, rule=rule)
    assert label in sms_text(message)
    assert label in voice_script(message)
    assert label in email_text(message, PUBLIC).subject


def test_local_time_uses_the_site_zone_and_survives_bad_input() -> None:
    assert local_time_text(notification(timezone="Europe/London").alarm) == "2026-01-05 14:30"
    naive = notification(opened_at=datetime(2026, 1, 5, 14, 30)).alarm  # taken as UTC
    assert local_time_text(naive) == "2026-01-05 22:30"
    assert local_time_text(notification(timezone="Not/AZone").alarm) == "2026-01-05 14:30"


def test_messages_without_room_or_resident() -> None:
    site_alarm = notification("en", room=None, resident=None)
    text = sms_text(site_alarm)
    assert "Place: Sunny Court." in text
    assert "Resident" not in text
    spoken = voice_script(site_alarm)
    assert spoken.startswith("This is Careline. Alarm: Fall detected, at Sunny Court, at 22:30.")
    email = email_text(site_alarm, PUBLIC)
    assert email.subject == "[Careline Critical] Fall detected, Sunny Court"
    assert "\nResident: -\n" in email.body
    zh = notification("zh-CN", room=None, resident=None)
    assert "住户" not in sms_text(zh) + voice_script(zh) + email_text(zh, PUBLIC).subject
    assert "\n住户：—\n" in email_text(zh, PUBLIC).body


@given(
    site=st.text(max_size=400),
    room=st.none() | st.text(max_size=400),
    resident=st.none() | st.text(max_size=400),
    rule=st.text(min_size=1, max_size=400),
    language=st.sampled_from(["en", "zh-CN"]),
)
def test_sms_never_exceeds_the_limit_and_keeps_the_instruction(
    site: str, room: str | None, resident: str | None, rule: str, language: Literal["en", "zh-CN"]
) -> None:
    text = sms_text(notification(language, rule=rule, site=site, room=room, resident=resident))
    assert len(text) <= SMS_MAX_CHARS
    assert text.endswith("Reply 1 or OK to accept." if language == "en" else "回复 1 或 收到 确认接警。")


def test_voice_scripts_end_with_the_key_instruction() -> None:
    en = voice_script(notification("en"))
    assert "Fall detected" in en
    assert "Wang Li" in en
    assert en.endswith("Press 1 to accept.")
    zh = voice_script(notification("zh-CN", resident="王丽"))
    assert "跌倒" in zh
    assert "王丽" in zh
    assert zh.endswith("接警请按 1。")


def test_email_has_subject_body_and_ack_link() -> None:
    text = email_text(notification("en"), PUBLIC + "/")
    link = "https://careline.example.org/api/escalation/ack/tok-abc"
    assert text.subject == "[Careline Critical] Fall detected – Wang Li, Sunny Court, room 203"
    assert link in text.body.splitlines()
    assert 'press the "Accept this alarm" button' in text.body
    assert "Time: 2026-01-05 22:30 (Asia/Shanghai)" in text.body
    zh = email_text(notification("zh-CN"), PUBLIC)
    assert zh.subject.startswith("【Careline 危急】跌倒")
    assert "“确认接警”按钮" in zh.body
    assert link in zh.body.splitlines()
    assert ack_url(PUBLIC, "tok-abc") == link


@pytest.mark.parametrize(
    "reply", ["1", " 1 ", "ok", "OK", "Ok.", "收到", "收到！", "好", "确认", "yes", "YES", "１", "ＯＫ"]
)
def test_accepting_replies(reply: str) -> None:
    assert parse_sms_reply(reply)


@pytest.mark.parametrize("reply", ["", "0", "2", "11", "no", "ok?", "not ok", "不", "稍后", "yess"])
def test_other_replies_do_not_accept(reply: str) -> None:
    assert not parse_sms_reply(reply)


@pytest.mark.parametrize(
    ("tag", "expected"), [("zh-CN", "zh-CN"), ("zh_cn", "zh-CN"), ("zh", "zh-CN"), ("en", "en"), ("fr", "en")]
)
def test_normalize_language(tag: str, expected: str) -> None:
    assert normalize_language(tag) == expected
