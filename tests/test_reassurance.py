"""The daily reassurance call: the plan of a day (pure), then end to end, time-compressed with a fake
clock, against real Mosquitto and SQLite, the real `twilio` library talking to the LOCAL Twilio
stand-in, whose simulated phones answer (or not) through the gateway's signed webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from harness import LiveGateway, live_gateway, new_config
from pydantic import ValidationError
from services import Mosquitto, free_port
from stores import store_execute
from test_office_api import signed_in

from dashboard.auth import Role
from gateway.clock import FakeClock
from gateway.config import CarelineConfig, ReassuranceConfig
from gateway.escalation.wiring import build_channels
from gateway.reassurance.plan import (
    AttemptState,
    Decide,
    Place,
    Subscriber,
    answer_of_digits,
    answer_of_reply,
    next_step,
)
from gateway.reassurance.records import AttemptView
from gateway.reassurance.scheduler import ReassuranceScheduler, scheduler_for
from simulators.phone import ResponderPhones
from simulators.twilio_standin import RecordedRequest, TwilioStandIn

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: 08:59 in Shanghai: a minute before the residents' calls.
BEFORE_NINE = datetime(2026, 1, 5, 0, 59, tzinfo=UTC)
NINE = BEFORE_NINE + timedelta(minutes=1)
DAY = "2026-01-05"
CARER, COORDINATOR = "+8613800000031", "+8613800000033"
SHEN, EDWARD, KONG, WU, HU, LIN = (f"+86571000033{n:02d}" for n in (3, 4, 5, 7, 8, 9))


# -- the plan of a day (pure) -------------------------------------------------------------------------


def _subscriber(retries: int = 2, wait_min: int = 10) -> Subscriber:
    settings = ReassuranceConfig(
        consent=True, phone=SHEN, at="09:00", retries=retries, retry_wait_min=wait_min
    )
    return Subscriber("shen", "沈玉芳", "xihu", "zh-CN", SHANGHAI, settings)


def _attempt(n: int, at: datetime, status: str = "queued") -> AttemptState:
    return AttemptState(n, at, status, None, None)


def test_a_day_calls_at_its_time_retries_after_the_wait_and_gives_up_only_after_the_last() -> None:
    sub = _subscriber()
    first = sub.first_call_at(date(2026, 1, 5))
    assert first == datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
    assert next_step(sub, [], first - timedelta(seconds=1), first) is None
    assert next_step(sub, [], first, first) == Place(1, first)
    # A gateway that was down all morning does not ring an elder in the evening.
    assert next_step(sub, [], first + timedelta(hours=3), first) is None
    one = [_attempt(1, first, "no-answer")]
    assert next_step(sub, one, first + timedelta(minutes=9), first) is None
    assert next_step(sub, one, first + timedelta(minutes=10), first) == Place(
        2, first + timedelta(minutes=10)
    )
    two = [*one, _attempt(2, first + timedelta(minutes=10), "busy")]
    assert next_step(sub, two, first + timedelta(minutes=19), first) is None
    three = [*two, _attempt(3, first + timedelta(minutes=20), "ringing")]
    assert next_step(sub, three, first + timedelta(minutes=29), first) is None
    assert next_step(sub, three, first + timedelta(minutes=30), first) == Decide("no_answer")
    # The last call ending unanswered decides at once.
    ended = [*two, _attempt(3, first + timedelta(minutes=20), "no-answer")]
    assert next_step(sub, ended, first + timedelta(minutes=21), first) == Decide("no_answer")
    answered = [*two, AttemptState(3, first + timedelta(minutes=20), "answered", "well", None)]
    assert next_step(sub, answered, first + timedelta(minutes=21), first) == Decide("well")
    decided = [*two, AttemptState(3, first + timedelta(minutes=20), "completed", "well", "well")]
    assert next_step(sub, decided, first + timedelta(hours=1), first) is None


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [("1", "well"), ("１", "well"), ("好的！", "well"), ("OK", "well"), ("2", "needs_help"),
     ("Help please", "needs_help"), ("我不舒服", "needs_help"), ("1 but send help", "needs_help"),
     ("what?", None), ("", None)],
)  # fmt: skip
def test_an_sms_reply_is_read_as_well_or_help_and_help_wins(reply: str, outcome: str | None) -> None:
    assert answer_of_reply(reply) == outcome


def test_only_keys_1_and_2_answer_the_call() -> None:
    assert [answer_of_digits(d) for d in ("1", "2", "3", "", "*")] == ["well", "needs_help", None, None, None]


def test_the_settings_are_checked_like_responders_phones() -> None:
    settings = ReassuranceConfig(consent=True, phone="+86 571 0000 3302", at="09:00")
    assert (settings.phone, settings.channel, settings.retries, settings.retry_wait_min) == (
        "+8657100003302",
        "voice",
        2,
        15,
    )
    for wrong in ({"phone": "0571 0000 3302"}, {"retries": 6}, {"retry_wait_min": 0}, {"channel": "fax"}):
        with pytest.raises(ValidationError):
            ReassuranceConfig.model_validate({"phone": "+8657100003302", "at": "09:00", **wrong})


async def test_without_twilio_nobody_is_called_and_no_incident_opens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = CarelineConfig.model_validate(
        {
            "sites": [{"id": "xihu", "name": "Xihu", "timezone": "Asia/Shanghai"}],
            "residents": [
                {
                    "id": "shen",
                    "name": "沈玉芳",
                    "site": "xihu",
                    "reassurance": {"consent": True, "phone": SHEN, "at": "09:00"},
                }
            ],
        }
    )
    committed: list[Any] = []

    async def commit(decisions: Any) -> None:
        committed.extend(decisions)

    clock = FakeClock(NINE)
    # No store either: a scheduler that tried to place or decide anything would fail here.
    scheduler = ReassuranceScheduler(
        cast(Any, None),
        cast(Any, None),
        commit,
        clock,
        lambda: config,
        voice=None,
        sms=None,
        public_url="http://gw",
    )
    for _ in range(4):
        await scheduler.tick()
        clock.advance(20 * 60)
    assert committed == []
    assert caplog.text.count("no Twilio voice channel configured; shen is not called") == 1


# -- end to end --------------------------------------------------------------------------------------


def _config(broker_url: str, tmp_path: Path, twilio: TwilioStandIn, http_port: int) -> dict[str, Any]:
    config = new_config(broker_url, tmp_path)
    config["http"]["port"] = http_port
    gateway_url = f"http://127.0.0.1:{http_port}"
    config["sites"] += [
        {"id": "xihu", "name": "Xihu Street", "kind": "district", "timezone": "Asia/Shanghai"},
        {"id": "hill", "name": "Hill Street", "kind": "district", "timezone": "Asia/Shanghai"},
    ]
    daily = {"consent": True, "at": "09:00", "retries": 2, "retry_wait_min": 10}
    config["residents"] += [
        {"id": "shen", "name": "沈玉芳", "site": "xihu", "reassurance": {**daily, "phone": SHEN}},
        {
            "id": "edward",
            "name": "Edward Hu",
            "site": "xihu",
            "languages": ["en"],
            "reassurance": {**daily, "phone": EDWARD},
        },
        {
            "id": "kong",
            "name": "孔德海",
            "site": "xihu",
            "reassurance": {**daily, "phone": KONG, "channel": "sms"},
        },
        {"id": "wu", "name": "吴桂兰", "site": "xihu", "reassurance": {**daily, "phone": WU}},
        {"id": "lin", "name": "林秀珍", "site": "xihu", "reassurance": {**daily, "phone": LIN}},
        # Set up but not consented to: never called.
        {
            "id": "qian",
            "name": "钱淑兰",
            "site": "xihu",
            "reassurance": {"phone": "+8657100003306", "at": "09:00"},
        },
        # Another site, whose retries wait longer than these tests' day lasts.
        {
            "id": "hu",
            "name": "胡明",
            "site": "hill",
            "reassurance": {**daily, "phone": HU, "retry_wait_min": 240},
        },
    ]
    config["responders"] = [
        {"id": "fang", "name": "方丽", "phone": CARER, "roles": ["carer"], "sites": ["xihu"]},
        {"id": "xu", "name": "徐红", "phone": COORDINATOR, "roles": ["coordinator"], "sites": ["xihu"]},
    ]
    config["escalation"] = {
        "public_url": gateway_url,
        "twilio": {
            "account_sid_env": "TEST_TWILIO_SID",
            "auth_token_env": "TEST_TWILIO_TOKEN",
            "from_number": "+15005550006",
            "api_base_url": twilio.base_url,
            "timeout_s": 5,
        },
    }
    return config


@dataclass
class Day:
    """One gateway and one stand-in for the tests of a day, each with residents of its own. The clock
    only moves forward: the test that moves it furthest (no answer) comes last."""

    live: LiveGateway
    twilio: TwilioStandIn
    clock: FakeClock

    @property
    def phones(self) -> ResponderPhones:
        assert self.twilio.phones is not None
        return self.twilio.phones


@contextlib.contextmanager
def _stand_in(http_port: int) -> Iterator[TwilioStandIn]:
    with TwilioStandIn(gateway_url=f"http://127.0.0.1:{http_port}") as twilio:
        saved = {name: os.environ.get(name) for name in ("TEST_TWILIO_SID", "TEST_TWILIO_TOKEN")}
        os.environ["TEST_TWILIO_SID"], os.environ["TEST_TWILIO_TOKEN"] = twilio.account_sid, twilio.auth_token
        try:
            yield twilio
        finally:
            for name, value in saved.items():
                os.environ.pop(name, None) if value is None else os.environ.update({name: value})


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def day(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Day]:
    """The day's calls placed at 09:00 for every resident; one gateway for the module (CI time)."""
    port = free_port()
    with Mosquitto() as broker, _stand_in(port) as twilio:
        config = _config(broker.url, tmp_path_factory.mktemp("day"), twilio, port)
        clock = FakeClock(BEFORE_NINE)
        async with live_gateway(config, clock) as live:
            await live.gateway.reassurance.tick()
            assert twilio.requests == [], "called before the residents' time"
            await _at(live, clock, NINE)
            yield Day(live, twilio, clock)


def _to(twilio: TwilioStandIn, number: str, resource: str = "Calls") -> list[RecordedRequest]:
    return [r for r in twilio.requests if r.resource == resource and r.get("To") == number]


async def _until(predicate: Any, what: str, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _at(live: LiveGateway, clock: FakeClock, moment: datetime) -> None:
    clock.set(moment)
    await live.gateway.reassurance.tick()


async def _attempts(live: LiveGateway, resident: str) -> list[AttemptView]:
    rows = await live.gateway.service.read(live.gateway.reassurance.records.of_days, [DAY])
    return [row for row in rows if row.resident_id == resident]


def _forget_users(config: dict[str, Any]) -> None:
    """The harness makes its operator on each start: the second gateway on the same store needs room."""
    store_execute(config["storage"]["url"], "DELETE FROM user_sessions")
    store_execute(config["storage"]["url"], "DELETE FROM users")


def _call_entry(twilio: TwilioStandIn, number: str, n: int) -> int:
    """The phone page's entry of the n-th call to `number`."""
    assert twilio.phones is not None
    phone = next(p for p in twilio.phones.inbox()["phones"] if p["number"] == number)
    return int([e for e in phone["entries"] if e["kind"] == "call"][-n]["id"])


def _latest_call(twilio: TwilioStandIn, number: str) -> int:
    assert twilio.phones is not None
    phone = next(p for p in twilio.phones.inbox()["phones"] if p["number"] == number)
    return int(next(e for e in phone["entries"] if e["kind"] == "call")["id"])


async def _press(twilio: TwilioStandIn, number: str, digit: str) -> str:
    """The resident picks up and presses `digit` (the stand-in reports in-progress, then the key)."""
    assert twilio.phones is not None
    exchange = await twilio.phones.press(twilio.phones.entry(_latest_call(twilio, number), "call"), digit)
    assert exchange.http_status == 200, exchange
    return exchange.answer


def _mine(incidents: list[dict[str, Any]], resident: str) -> list[tuple[str, str]]:
    return [(i["rule"], i["severity"]) for i in incidents if i["resident"] == resident]


@pytest.mark.asyncio(loop_scope="module")
async def test_key_1_records_well_key_2_opens_one_urgent_incident_and_a_forgery_is_refused(day: Day) -> None:
    live, twilio = day.live, day.twilio
    call = _to(twilio, EDWARD)[0]
    # In the resident's first language, waiting for one key, reporting back to the gateway.
    assert 'numDigits="1"' in (call.get("Twiml") or "")
    assert "press 1" in (call.get("Twiml") or "")
    assert "请按 1" in (_to(twilio, SHEN)[0].get("Twiml") or "")
    assert (call.get("StatusCallback") or "").startswith(live.gateway.config.escalation.public_url)
    assert _to(twilio, "+8657100003306") == [], "called without consent"

    # A forged key press (not signed with the account's token) is refused and changes nothing.
    [attempt] = await _attempts(live, "shen")
    forged = await asyncio.to_thread(
        twilio.drive_callback,
        f"{live.base_url.rstrip('/')}/api/twilio/reassurance/gather?a={attempt.id}",
        {"CallSid": attempt.provider_sid or "", "Digits": "2"},
        signature="bm90IGEgc2lnbmF0dXJl",
    )
    assert forged.status_code == 403
    assert _mine(await live.incidents(), "shen") == []

    assert "glad you are well" in await _press(twilio, EDWARD, "1")
    [edward] = await _attempts(live, "edward")
    assert (edward.outcome, edward.digits, edward.incident_id) == ("well", "1", None)
    assert _mine(await live.incidents(), "edward") == []

    assert "帮助" in await _press(twilio, SHEN, "2")
    assert _mine(await live.incidents(), "shen") == [("reassurance_help", "critical")]
    [shen] = await _attempts(live, "shen")
    assert shen.outcome == "needs_help"
    assert shen.incident_id is not None
    # The call ended with the gateway's answer (the stand-in reported completed).
    assert shen.status == "completed"
    # The urgent policy: the carer on duty at once.
    await _until(lambda: _to(twilio, CARER, "Messages"), "the carer's SMS")
    # The day is decided: the next ticks neither call again nor open a second incident.
    await live.gateway.reassurance.tick()
    assert len(_to(twilio, SHEN)) == 1
    assert len(_mine(await live.incidents(), "shen")) == 1
    actions = {entry.action for entry in await live.gateway.service.read(live.gateway.store.audit_trail)}
    assert {
        "reassurance.placing",
        "reassurance.placed",
        "reassurance.answered",
        "reassurance.decided",
    } <= actions


@pytest.mark.asyncio(loop_scope="module")
async def test_an_sms_reply_from_the_resident_is_their_answer_not_an_acknowledgement(day: Day) -> None:
    live, twilio = day.live, day.twilio
    [sms] = _to(twilio, KONG, "Messages")
    assert "回复 1" in (sms.get("Body") or "")
    entry = next(e for p in day.phones.inbox()["phones"] if p["number"] == KONG for e in p["entries"])
    exchange = await day.phones.reply(day.phones.entry(entry["id"], "sms"), "救命，我摔倒了")
    assert exchange.http_status == 200
    assert "安排人员" in exchange.answer
    [kong] = await _attempts(live, "kong")
    assert (kong.outcome, kong.reply) == ("needs_help", "救命，我摔倒了")
    assert _mine(await live.incidents(), "kong") == [("reassurance_help", "critical")]


@pytest.mark.asyncio(loop_scope="module")
async def test_the_manager_sees_the_day_and_the_months_of_their_sites_and_an_operator_is_refused(
    day: Day,
) -> None:
    live, twilio = day.live, day.twilio
    await _press(twilio, HU, "1")
    assert (await live.http.get("/api/office/reassurance")).status_code == 403
    async with signed_in(live, "hillboss", Role.MANAGER, sites=["hill"]) as http:
        today = (await http.get("/api/office/reassurance", params={"day": DAY})).json()
        assert [
            (r["resident"], r["resident_name"], r["outcome"], r["attempts"]) for r in today["residents"]
        ] == [("hu", "胡明", "well", 1)]
        months = await http.get(
            "/api/office/reassurance/months", params={"start": "2025-12", "end": "2026-01"}
        )
        assert months.json()["months"] == [
            {
                "site": "hill",
                "site_name": "Hill Street",
                "month": "2026-01",
                "placed": 1,
                "answered": 1,
                "well": 1,
                "help": 0,
                "no_answer": 0,
            }
        ]
        csv = await http.get("/api/office/reassurance", params={"day": DAY, "format": "csv"})
        assert csv.headers["content-type"].startswith("text/csv")
        assert "胡明" in csv.text
        assert "shen" not in csv.text
        assert (await http.get("/api/office/reassurance", params={"site": "xihu"})).status_code == 403
        assert (await http.get("/api/office/reassurance", params={"day": "2026-02-31"})).status_code == 400
        refused = await http.get(
            "/api/office/reassurance/months", params={"start": "2026-05", "end": "2026-01"}
        )
        assert refused.status_code == 400


@pytest.mark.asyncio(loop_scope="module")
async def test_a_restart_mid_schedule_neither_repeats_nor_skips_an_attempt(day: Day) -> None:
    """A scheduler built afresh over the same store, as a restarted gateway builds it: all it knows is
    in the store."""
    live, twilio, clock = day.live, day.twilio, day.clock
    gateway = live.gateway
    assert len(_to(twilio, LIN)) == 1
    restarted = scheduler_for(
        gateway.store,
        gateway.service,
        gateway.alarm_lane.commit_decisions,
        clock,
        lambda: gateway.config,
        build_channels(gateway.config.escalation),
    )
    first = (await _attempts(live, "lin"))[0]
    clock.set(max(clock.now(), first.scheduled_at + timedelta(minutes=1)))
    await restarted.tick()
    assert len(_to(twilio, LIN)) == 1, "attempt 1 placed again after the restart"
    clock.set(max(clock.now(), first.scheduled_at + timedelta(minutes=10)))
    await restarted.tick()
    await gateway.reassurance.tick()
    assert len(_to(twilio, LIN)) == 2, "attempt 2 skipped or repeated"
    # Attempt 1's call, placed before the restart, still answers: its webhook names its row.
    answered = await asyncio.to_thread(
        twilio.drive_callback,
        f"{live.base_url.rstrip('/')}/api/twilio/reassurance/gather?a={first.id}",
        {"CallSid": first.provider_sid or "", "Digits": "1", "AccountSid": twilio.account_sid},
    )
    assert answered.status_code == 200
    assert [(a.attempt, a.outcome) for a in await _attempts(live, "lin")] == [(1, "well"), (2, None)]
    assert _mine(await live.incidents(), "lin") == []
    await restarted.tick()
    assert len(_to(twilio, LIN)) == 2


@pytest.mark.asyncio(loop_scope="module")
async def test_no_answer_opens_one_incident_only_after_the_last_retry(day: Day) -> None:
    live, twilio, clock = day.live, day.twilio, day.clock
    first = (await _attempts(live, "wu"))[0].scheduled_at
    for attempt in range(1, 4):
        await _at(live, clock, max(clock.now(), first + timedelta(minutes=10 * (attempt - 1))))
        # One call per retry wait passed, never more (an earlier test may have moved the clock on).
        assert len(_to(twilio, WU)) == 1 + min(2, (clock.now() - first) // timedelta(minutes=10))
        assert _mine(await live.incidents(), "wu") == [], f"an incident before call {attempt} ended"
        await day.phones.let_ring(day.phones.entry(_call_entry(twilio, WU, attempt), "call"))
    # The last call ended unanswered (its status callback): decided at once, without waiting.
    await live.wait_for(lambda found: _mine(found, "wu"), "the no-answer incident")
    assert _mine(await live.incidents(), "wu") == [("reassurance_no_answer", "high")]
    attempts = await _attempts(live, "wu")
    assert [(a.attempt, a.status) for a in attempts] == [(1, "no-answer"), (2, "no-answer"), (3, "no-answer")]
    assert attempts[-1].outcome == "no_answer"
    await _at(live, clock, clock.now() + timedelta(hours=1))
    assert len(_to(twilio, WU)) == 3
    assert len(_mine(await live.incidents(), "wu")) == 1
