"""A dead instance's notifications in doubt, taken over by another, against the Twilio stand-in
(simulators/twilio_standin.py, a local stand-in of Twilio's REST API driven by the real `twilio` client).

gw-a planned two SMS and handed both to Twilio's client; one reached Twilio, then gw-a died before
recording either, and no status callback came. gw-b, adopting gw-a, asks Twilio before sending: the one
that went out is recorded as sent, the other is sent once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from stores import store_url
from test_cluster_store import CONFIG, START, instance, press

from gateway.clock import FakeClock
from gateway.escalation.channels.twilio_channels import TwilioAccount, TwilioSms
from gateway.escalation.config import TwilioConfig
from gateway.escalation.escalator import Escalator
from gateway.escalation.model import ChannelKind, Notification
from gateway.escalation.store import EscalationStore
from gateway.incidents.db import make_engine
from gateway.incidents.migrate import upgrade
from gateway.incidents.schema import AuditEntry
from gateway.incidents.service import IncidentService
from gateway.incidents.store import AlarmBatch, RuledDecision
from simulators.twilio_standin import TwilioStandIn


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(store_url(tmp_path / "careline.db"))
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def twilio() -> Iterator[TwilioStandIn]:
    with TwilioStandIn() as stand_in:  # no status callbacks: only asking Twilio can tell
        yield stand_in


@pytest.fixture
async def survivor(engine: Engine) -> AsyncIterator[IncidentService]:
    service = IncidentService(instance(engine, "gw-b"))
    service.start()
    yield service
    service.close()


def sms_channel(twilio: TwilioStandIn) -> TwilioSms:
    settings = TwilioConfig(from_number="+15005550006", api_base_url=twilio.base_url, timeout_s=5)
    return TwilioSms(
        settings, TwilioAccount(twilio.account_sid, twilio.auth_token), public_url="http://127.0.0.1:9"
    )


async def test_an_sms_in_doubt_that_reached_twilio_is_not_sent_again_and_one_that_did_not_is_sent_once(
    engine: Engine, twilio: TwilioStandIn, survivor: IncidentService
) -> None:
    dead = instance(engine, "gw-a")
    dead.apply(AlarmBatch([RuledDecision(press(n), False) for n in (1, 2)]))
    planned = EscalationStore(dead, CONFIG).claim_due(START + timedelta(seconds=1))
    assert [p.in_doubt for p in planned] == [False, False]
    sms = sms_channel(twilio)
    went = planned[0]
    delivery = await sms.send(
        Notification(went.notification_id, went.incident_id, went.recipient, went.alarm, went.ack_token)
    )
    assert delivery.ok  # ... and gw-a died before recording it

    clock = FakeClock(START + timedelta(seconds=30))
    escalator = Escalator(
        EscalationStore(survivor.store, CONFIG),
        survivor,
        {ChannelKind.SMS: sms},
        {},
        clock,
        in_doubt_wait_s=0.05,
    )
    assert await escalator.take_over(["gw-a"]) == 2
    await escalator.drain()

    bodies = Counter(request.get("Body") for request in twilio.requests)
    assert sorted(bodies.values()) == [1, 1]
    with survivor.store.reading() as session:
        audit = [(e.action, e.details.get("notification")) for e in session.scalars(select(AuditEntry))]
    assert ("notification.in_doubt_found", went.notification_id) in audit
    assert ("notification.sent", planned[1].notification_id) in audit
    assert ("notification.sent", went.notification_id) not in audit


async def test_a_burst_of_channel_answers_shares_a_few_commits(
    engine: Engine, twilio: TwilioStandIn, survivor: IncidentService
) -> None:
    """After a burst of alarms hundreds of sends end within moments: their outcomes are written in a
    few transactions, not one each, so the writer is free for the next steps and alarms."""
    from sqlalchemy import event

    survivor.store.apply(AlarmBatch([RuledDecision(press(n), False) for n in range(40)]))
    commits = []
    event.listen(engine, "commit", lambda _connection: commits.append(1))
    escalator = Escalator(
        EscalationStore(survivor.store, CONFIG),
        survivor,
        {ChannelKind.SMS: sms_channel(twilio)},
        {},
        FakeClock(START),
    )
    planned = await escalator.run_due()
    await escalator.drain()
    assert len(planned) == 40
    assert len([r for r in twilio.requests if r.resource == "Messages"]) == 40
    with survivor.store.reading() as session:
        sent = [e for e in session.scalars(select(AuditEntry)) if e.action == "notification.sent"]
    assert len(sent) == 40
    # One commit for the step, then the outcomes: far fewer than one each.
    assert len(commits) < 20, len(commits)
