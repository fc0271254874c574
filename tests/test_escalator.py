"""The escalator on an injected clock: tiers, rotas, acknowledgements, safety valves.

Channels here are recording test doubles so the walk can be checked step by step; the real channels
(the twilio library against a local stand-in of Twilio's API, real SMTP, real webhooks) are tested in
test_channels_*.py and end to end in test_escalation_e2e.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from stores import store_url

from devices.model import DeviceEvent, DeviceType, EventKind
from gateway.clock import FakeClock
from gateway.config import CarelineConfig
from gateway.directory import Directory
from gateway.escalation.escalator import Escalator
from gateway.escalation.model import ChannelKind, Delivery, Notification
from gateway.escalation.store import EscalationStore
from gateway.incidents.db import make_engine
from gateway.incidents.migrate import upgrade
from gateway.incidents.schema import AuditEntry, Incident, Outcome
from gateway.incidents.service import IncidentService
from gateway.incidents.store import AlarmBatch, IncidentStore, RuledDecision
from rules.model import AlarmDecision, Severity

# 2026-01-05 was a Monday; 03:00 in Shanghai is 19:00 UTC the day before.
NIGHT = datetime(2026, 1, 4, 19, 0, tzinfo=UTC)


class RecordingChannel:
    def __init__(self, kind: ChannelKind, answer: Delivery | None = None, hang: bool = False) -> None:
        self.kind = kind
        self.sent: list[Notification] = []
        self.answer = answer or Delivery(ok=True, provider_id="X1")
        self.hang = hang

    async def send(self, notification: Notification) -> Delivery:
        self.sent.append(notification)
        if self.hang:
            await asyncio.sleep(3600)
        return self.answer

    def to(self) -> list[str]:
        return [n.recipient.responder_id for n in self.sent]


def config(**escalation: Any) -> CarelineConfig:
    return CarelineConfig.model_validate(
        {
            "sites": [
                {
                    "id": "home",
                    "name": "Sunrise",
                    "rooms": [{"id": "A1", "wing": "A"}, {"id": "B1", "wing": "B"}],
                }
            ],
            "residents": [
                {"id": "wang", "name": "王秀英", "site": "home", "room": "A1"},
                {"id": "li", "name": "李建国", "site": "home", "room": "B1"},
            ],
            "responders": [
                {
                    "id": "carer-a",
                    "name": "Carer A",
                    "phone": "+8613800000001",
                    "roles": ["carer"],
                    "shifts": [{"start": "20:00", "end": "08:00", "wing": "A"}],
                },
                {
                    "id": "carer-b",
                    "name": "Carer B",
                    "phone": "+8613800000002",
                    "roles": ["carer"],
                    "shifts": [{"start": "20:00", "end": "08:00", "wing": "B"}],
                },
                {
                    "id": "day-carer",
                    "name": "Day Carer",
                    "phone": "+8613800000003",
                    "roles": ["carer"],
                    "shifts": [{"start": "08:00", "end": "20:00", "wing": "B"}],
                },
                {
                    "id": "boss",
                    "name": "Supervisor",
                    "phone": "+8613800000004",
                    "email": "boss@example.com",
                    "roles": ["supervisor"],
                    "language": "en",
                },
                {"id": "son", "name": "Son", "phone": "+8613800000005", "roles": ["family"]},
            ],
            "escalation": escalation,
        }
    )


THREE_TIERS = {
    "policies": [
        {
            "id": "critical",
            "match": {"severities": ["critical"]},
            "repeat": "last",
            "tiers": [
                {"targets": [{"role": "carer", "same_wing": True}], "channels": ["sms"], "wait_s": 60},
                {"targets": [{"role": "supervisor"}], "channels": ["sms", "voice"], "wait_s": 60},
                {"targets": [{"responder": "son"}], "channels": ["sms"], "wait_s": 120},
            ],
        }
    ],
    "min_interval_per_responder_s": 30,
}


class Rig:
    def __init__(
        self, tmp_path: Path, cfg: CarelineConfig, channels: dict[ChannelKind, RecordingChannel]
    ) -> None:
        self.clock = FakeClock(NIGHT)
        self.db = make_engine(store_url(tmp_path / "careline.db"))
        upgrade(self.db)
        self.store = IncidentStore(self.db, Directory(cfg), self.clock.now)
        self.service = IncidentService(self.store)
        self.service.start()
        self.escalations = EscalationStore(self.store, cfg)
        self.channels = channels
        self.escalator = Escalator(
            self.escalations, self.service, channels, {}, self.clock, attempts=1, failure_alarm_after=3
        )

    async def alarm(
        self,
        resident: str = "wang",
        room: str = "A1",
        severity: Severity = Severity.CRITICAL,
        rule: str = "sos",
    ) -> int:
        now = self.clock.now()
        event = DeviceEvent(
            f"pendant-{resident}",
            DeviceType.SOS_BUTTON,
            "home",
            room,
            resident,
            EventKind.SOS,
            None,
            now,
            now,
            f"careline:{resident}:{now.isoformat()}",
        )
        result = await self.service.apply(
            AlarmBatch(
                [
                    RuledDecision(
                        AlarmDecision(rule, severity, f"{rule}:{resident}", event), check_duplicate=False
                    )
                ]
            )
        )
        return result.changed[0].id

    async def step(self, seconds: float = 0) -> None:
        self.clock.advance(seconds)
        await self.escalator.run_due()
        await self.escalator.drain()

    def audit(self, action: str) -> list[AuditEntry]:
        with self.store.transaction() as session:
            return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))

    def close(self) -> None:
        self.service.close()
        self.db.dispose()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    channels = {kind: RecordingChannel(kind) for kind in ChannelKind}
    built = Rig(tmp_path, config(**THREE_TIERS), channels)
    yield built
    built.close()


async def test_a_three_tier_policy_walks_its_tiers_on_the_clock_until_acknowledged(rig: Rig) -> None:
    sms, voice = rig.channels[ChannelKind.SMS], rig.channels[ChannelKind.VOICE]
    incident = await rig.alarm()
    await rig.step()
    assert sms.to() == ["carer-a"]  # only the carer on duty in wing A, at once
    await rig.step(59)
    assert sms.to() == ["carer-a"]
    await rig.step(1)
    assert (sms.to(), voice.to()) == (["carer-a", "boss"], ["boss"])
    await rig.step(60)
    assert sms.to()[-1] == "son"
    await rig.step(120)  # repeat: last
    assert sms.to() == ["carer-a", "boss", "son", "son"]
    await rig.service.acknowledge(incident, "user:operator")
    await rig.step(600)
    assert len(sms.sent) == 4
    tiers = [entry.details["tier"] for entry in rig.audit("escalation.tier")]
    assert tiers == [1, 2, 3, 3]


async def test_messages_carry_the_alarm_and_a_token_to_acknowledge(rig: Rig) -> None:
    await rig.alarm()
    await rig.step()
    sent = rig.channels[ChannelKind.SMS].sent[0]
    assert (sent.alarm.rule, sent.alarm.resident_name, sent.alarm.room, sent.recipient.phone) == (
        "sos",
        "王秀英",
        "A1",
        "+8613800000001",
    )
    outcome = await rig.escalator.acknowledge_by_token(sent.ack_token, "sms")
    assert outcome == "acknowledged"
    incident = (await rig.service.read(rig.store.incidents, ("acknowledged",)))[0]
    assert incident.acknowledged_by == "responder:carer-a via sms"


async def test_nobody_on_duty_falls_through_to_the_next_tier_at_once_and_is_reported(rig: Rig) -> None:
    rig.clock.set(NIGHT + timedelta(hours=10))  # 13:00 local: the day carer works wing B only
    await rig.alarm()
    await rig.step()
    assert rig.channels[ChannelKind.SMS].to() == []
    assert [e.details["tier"] for e in rig.audit("escalation.no_responder")] == [1]
    await rig.step()  # fell through: tier 2 is due at once
    assert rig.channels[ChannelKind.SMS].to() == ["boss"]


async def test_a_voice_call_nobody_answers_moves_on_at_once(rig: Rig) -> None:
    await rig.alarm()
    await rig.step()
    await rig.step(60)
    call = rig.channels[ChannelKind.VOICE].sent[0]
    await rig.escalator.provider_status(call.notification_id, "no-answer")
    await rig.step(1)  # not 60 s: the tier is over
    assert rig.channels[ChannelKind.SMS].to()[-1] == "son"
    assert rig.audit("escalation.moved_on")


async def test_a_late_acknowledgement_after_resolution_is_recorded(rig: Rig) -> None:
    incident = await rig.alarm()
    await rig.step()
    token = rig.channels[ChannelKind.SMS].sent[0].ack_token
    await rig.service.resolve(incident, "user:operator", Outcome.FALSE_ALARM, "")
    assert await rig.escalator.acknowledge_by_token(token, "sms") == "late"
    assert [e.actor for e in rig.audit("incident.late_ack")] == ["responder:carer-a via sms"]
    assert await rig.escalator.acknowledge_by_token("forged-token", "sms") == "unknown"


async def test_one_incident_never_floods_a_responder(tmp_path: Path) -> None:
    fast = {
        "policies": [
            {
                "id": "p",
                "repeat": "last",
                "tiers": [{"targets": [{"responder": "boss"}], "channels": ["sms"], "wait_s": 5}],
            }
        ],
        "min_interval_per_responder_s": 30,
    }
    channels = {kind: RecordingChannel(kind) for kind in ChannelKind}
    rig = Rig(tmp_path, config(**fast), channels)
    await rig.alarm()
    for _ in range(12):  # a minute of 5-second repeats
        await rig.step(5)
    assert 2 <= len(channels[ChannelKind.SMS].sent) <= 3
    rig.close()


async def test_a_channel_that_keeps_failing_is_reported_as_a_technical_alarm(tmp_path: Path) -> None:
    failing = RecordingChannel(ChannelKind.SMS, Delivery(ok=False, retryable=False, detail="21211 invalid"))
    channels = {kind: RecordingChannel(kind) for kind in ChannelKind} | {ChannelKind.SMS: failing}
    rig = Rig(tmp_path, config(**THREE_TIERS), channels)
    for resident, room in (("wang", "A1"), ("li", "B1")):
        await rig.alarm(resident, room)
    await rig.step()
    await rig.step(60)
    with rig.store.transaction() as session:
        incidents = list(session.scalars(select(Incident)))
    rules = sorted(i.rule for i in incidents)
    assert "channel_failing" in rules
    # The technical alarm belongs to the site whose alarm could not be delivered.
    assert {i.site for i in incidents if i.rule == "channel_failing"} == {"home"}
    rig.close()


async def test_a_hanging_channel_does_not_delay_another_incidents_message(tmp_path: Path) -> None:
    hanging = RecordingChannel(ChannelKind.EMAIL, hang=True)
    channels = {kind: RecordingChannel(kind) for kind in ChannelKind} | {ChannelKind.EMAIL: hanging}
    policy = {
        "policies": [
            {
                "id": "p",
                "tiers": [{"targets": [{"responder": "boss"}], "channels": ["email", "sms"], "wait_s": 60}],
            }
        ]
    }
    rig = Rig(tmp_path, config(**policy), channels)
    await rig.alarm("wang", "A1")
    await rig.escalator.run_due()
    await asyncio.sleep(0.05)
    await rig.alarm("li", "B1")
    async with asyncio.timeout(2):
        await rig.escalator.run_due()
        while len(channels[ChannelKind.SMS].sent) < 2:  # noqa: ASYNC110 (polling a test double)
            await asyncio.sleep(0.01)
    assert {n.incident_id for n in channels[ChannelKind.SMS].sent} == {1, 2}
    for task in list(rig.escalator._sending):
        task.cancel()
    rig.close()


async def test_repeats_after_the_first_pass_use_the_quieter_renotify_interval(tmp_path: Path) -> None:
    quiet = {
        "policies": [
            {
                "id": "p",
                "repeat": "last",
                "renotify_s": 300,
                "tiers": [{"targets": [{"responder": "boss"}], "channels": ["sms"], "wait_s": 60}],
            }
        ],
        "min_interval_per_responder_s": 0,
    }
    channels = {kind: RecordingChannel(kind) for kind in ChannelKind}
    rig = Rig(tmp_path, config(**quiet), channels)
    await rig.alarm()
    await rig.step()
    await rig.step(60)  # first pass: the tier's own 60 s
    assert len(channels[ChannelKind.SMS].sent) == 2
    await rig.step(60)
    assert len(channels[ChannelKind.SMS].sent) == 2  # now 300 s between reminders
    await rig.step(240)
    assert len(channels[ChannelKind.SMS].sent) == 3
    rig.close()
