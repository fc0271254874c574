"""The daily reassurance calls, placed on time and answered through Twilio's webhooks.

It ticks with the gateway's injected clock (and is woken by a call that ended), so a day of calls runs
in seconds under a fake clock. All of its state is in the incident store: after a restart it carries
on where the rows say, and an attempt's row is committed before its call is placed, so a restart never
places one twice. An incident ("needs help", or no answer after the last retry) is committed through
the alarm lane like every alarm (durable, audited, escalated, on the console), then the day's outcome
is recorded: a crash in between commits the decision again at the next tick, which joins the incident
still open instead of opening a second one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Final

from gateway.clock import Clock
from gateway.config import CarelineConfig
from gateway.escalation.channels.messages import normalize_language
from gateway.escalation.channels.twilio_channels import TwilioSms, TwilioVoice
from gateway.escalation.model import Channel, ChannelKind, Delivery
from gateway.incidents.service import IncidentService
from gateway.incidents.store import IncidentStore
from gateway.reassurance import speech
from gateway.reassurance.plan import (
    ENDED_UNANSWERED,
    HELP_RULE,
    NO_ANSWER_RULE,
    Decide,
    Outcome,
    Place,
    Subscriber,
    answer_of_digits,
    answer_of_reply,
    next_step,
    subscribers,
)
from gateway.reassurance.records import AttemptView, ReassuranceRecords, day_outcome
from rules.model import AlarmDecision, Decision, Severity
from rules.wellbeing.common import synthetic_event

log = logging.getLogger(__name__)

TICK_S: Final = 15.0
_SEVERITY: Final[Mapping[str, Severity]] = {HELP_RULE: Severity.CRITICAL, NO_ANSWER_RULE: Severity.HIGH}
_HANG_UP: Final = '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup /></Response>'


class ReassuranceScheduler:
    def __init__(
        self,
        records: ReassuranceRecords,
        service: IncidentService,
        commit: Callable[[Sequence[Decision]], Awaitable[None]],
        clock: Clock,
        config: Callable[[], CarelineConfig],
        *,
        voice: TwilioVoice | None,
        sms: TwilioSms | None,
        public_url: str,
    ) -> None:
        self.records = records
        self._service = service
        self._commit = commit
        self._clock = clock
        self._config = config
        self._voice = voice
        self._sms = sms
        self._public_url = public_url
        self._ready = asyncio.Event()
        self._ticking = asyncio.Lock()
        self._deciding = asyncio.Lock()
        self._forward: datetime | None = None
        self._unreachable: set[str] = set()

    def wake(self) -> None:
        self._ready.set()

    def bring_forward(self, at: datetime) -> None:
        """The demo's shortcut: the first calls of the day `at` falls on are placed at `at`, not at each
        resident's own time (kept in memory only: a restart goes back to the configured times)."""
        self._forward = at
        self.wake()

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(TICK_S):
                    await self._ready.wait()
            except TimeoutError:
                pass
            self._ready.clear()
            try:
                await self.tick()
            except Exception:
                log.exception("reassurance calls: tick failed; trying again at the next")

    async def tick(self) -> None:
        """Place what is due and decide the days that are over, for every subscriber."""
        now = self._clock.now()
        subs = {key: sub for key, sub in subscribers(self._config()).items() if self._reachable(sub)}
        if not subs:
            return
        days = {sub.resident_id: sub.day(now) for sub in subs.values()}
        async with self._ticking:
            attempts: dict[tuple[str, str], list[AttemptView]] = defaultdict(list)
            for row in await self._service.read(self.records.of_days, {d.isoformat() for d in days.values()}):
                attempts[(row.resident_id, row.day)].append(row)
            placing: list[tuple[Subscriber, date, Place]] = []
            deciding: list[tuple[str, str, Outcome]] = []
            for sub in subs.values():
                day = days[sub.resident_id]
                rows = attempts[(sub.resident_id, day.isoformat())]
                step = next_step(sub, [a.state() for a in rows], now, self._first_call_at(sub, day))
                if isinstance(step, Place):
                    placing.append((sub, day, step))
                elif isinstance(step, Decide):
                    deciding.append((sub.resident_id, day.isoformat(), step.outcome))
            for resident_id, day_text, outcome in deciding:
                await self._decide(resident_id, day_text, outcome)
            # Calls are placed side by side: one slow Twilio request does not hold up the others.
            await asyncio.gather(*(self._place(*placed) for placed in placing))

    def _reachable(self, sub: Subscriber) -> bool:
        """Without the resident's channel (Twilio not configured) nobody is called: every day would
        otherwise end "no answer" and open an incident that only says the setup is missing."""
        if (self._sms if sub.settings.channel == "sms" else self._voice) is not None:
            return True
        if sub.resident_id not in self._unreachable:
            self._unreachable.add(sub.resident_id)
            log.error(
                "reassurance: no Twilio %s channel configured; %s is not called",
                sub.settings.channel,
                sub.resident_id,
            )
        return False

    def _first_call_at(self, sub: Subscriber, day: date) -> datetime:
        forward = self._forward
        return forward if forward is not None and sub.day(forward) == day else sub.first_call_at(day)

    # -- placing ---------------------------------------------------------------------------------------

    async def _place(self, sub: Subscriber, day: date, step: Place) -> None:
        attempt_id = await self._service.write(
            self.records.reserve, sub, day.isoformat(), step.attempt, step.at
        )
        if attempt_id is None:
            return
        delivery = await self._send(sub, attempt_id)
        if not delivery.ok:
            log.warning(
                "reassurance call %d to %s not placed: %s", attempt_id, sub.resident_id, delivery.detail
            )
        await self._service.write(self.records.placed, attempt_id, delivery)

    async def _send(self, sub: Subscriber, attempt_id: int) -> Delivery:
        phone = sub.settings.phone
        if sub.settings.channel == "sms":
            if self._sms is None:
                return Delivery(ok=False, retryable=False, detail="Twilio SMS is not configured")
            body = speech.sms_question(sub.name, sub.language)
            return await self._sms.text(phone, body, speech.sms_status_url(self._public_url, attempt_id))
        if self._voice is None:
            return Delivery(ok=False, retryable=False, detail="Twilio voice is not configured")
        action = speech.gather_url(self._public_url, attempt_id)
        twiml = speech.call_twiml(sub.name, sub.language, action, self._voice_for(sub.language))
        return await self._voice.call(phone, twiml, speech.call_status_url(self._public_url, attempt_id))

    def _voice_for(self, language: str) -> str | None:
        if self._voice is None:
            return None
        return self._voice.settings.voices.get(normalize_language(language))

    # -- deciding --------------------------------------------------------------------------------------

    async def _decide(self, resident_id: str, day: str, outcome: Outcome) -> None:
        """Record the day's outcome; "needs help" and "no answer" first open their incident. Once per day,
        except that a plea for help after "well" or "no answer" still opens the urgent incident."""
        async with self._deciding:
            rows = [
                a
                for a in await self._service.read(self.records.of_days, [day])
                if a.resident_id == resident_id
            ]
            if not rows:
                return
            decided = day_outcome(rows)
            if decided is not None and (outcome != "needs_help" or decided.outcome == "needs_help"):
                return
            last = max(rows, key=lambda a: a.attempt)
            target = next((a for a in reversed(rows) if a.answer == outcome), last)
            incident_id = None
            if outcome != "well":
                incident_id = await self._raise(target, outcome, len(rows))
            await self._service.write(self.records.decided, target.id, outcome, incident_id)
            log.info("reassurance: %s on %s is %s", resident_id, day, outcome)

    async def _raise(self, attempt: AttemptView, outcome: Outcome, attempts: int) -> int | None:
        rule = HELP_RULE if outcome == "needs_help" else NO_ANSWER_RULE
        key = f"{rule}:{attempt.resident_id}:{attempt.day}"
        now = self._clock.now()
        event = synthetic_event(rule, key, now, site=attempt.site, resident=attempt.resident_id)
        evidence: dict[str, str | float | bool] = {
            "channel": attempt.channel,
            "attempts": attempts,
            "phone": attempt.phone,
            "day": attempt.day,
        }
        if attempt.digits:
            evidence["digits"] = attempt.digits
        if attempt.reply:
            evidence["reply"] = attempt.reply[:200]
        await self._commit([AlarmDecision(rule, _SEVERITY[rule], key, event, evidence)])
        return await self._service.read(self.records.active_incident, key)

    # -- Twilio's callbacks (gateway/reassurance/webhooks.py) ------------------------------------------

    async def gather(self, attempt_id: int, digits: str) -> str:
        """A key pressed during the call: the TwiML to answer with."""
        attempt = await self._service.read(self.records.attempt, attempt_id)
        if attempt is None:
            return _HANG_UP
        language = self._language_of(attempt.resident_id)
        outcome = answer_of_digits(digits)
        if outcome is not None:
            await self._service.write(self.records.answered, attempt_id, digits=digits.strip())
            await self._decide(attempt.resident_id, attempt.day, outcome)
        action = speech.gather_url(self._public_url, attempt_id)
        return speech.gather_answer_twiml(outcome, language, action, self._voice_for(language))

    async def progress(self, attempt_id: int, status: str) -> None:
        """A call's or SMS's status callback; an ended call may end the day (no answer)."""
        view = await self._service.write(self.records.status, attempt_id, status.strip().lower())
        if view is not None and view.status in ENDED_UNANSWERED:
            self.wake()

    async def inbound_sms(self, form: Mapping[str, str]) -> str | None:
        """An SMS from a resident's number answering their daily SMS: the TwiML to answer with. None when
        it is not one (a responder's acknowledgement, then)."""
        attempt = await self._service.read(
            self.records.latest_sms_to, form.get("From", ""), self._clock.now()
        )
        if attempt is None:
            return None
        body = form.get("Body", "")
        outcome = answer_of_reply(body)
        if outcome is not None:
            await self._service.write(self.records.answered, attempt.id, reply=body)
            await self._decide(attempt.resident_id, attempt.day, outcome)
        return speech.sms_answer_twiml(outcome, self._language_of(attempt.resident_id))

    def _language_of(self, resident_id: str) -> str:
        resident = next((r for r in self._config().residents if r.id == resident_id), None)
        return resident.language if resident is not None else "zh-CN"


def scheduler_for(
    store: IncidentStore,
    service: IncidentService,
    commit: Callable[[Sequence[Decision]], Awaitable[None]],
    clock: Clock,
    config: Callable[[], CarelineConfig],
    channels: Mapping[ChannelKind, Channel],
) -> ReassuranceScheduler:
    """The scheduler on the configured Twilio channels (without them, nobody is called, and the log says
    so once per resident)."""
    voice, sms = channels.get(ChannelKind.VOICE), channels.get(ChannelKind.SMS)
    return ReassuranceScheduler(
        ReassuranceRecords(store),
        service,
        commit,
        clock,
        config,
        voice=voice if isinstance(voice, TwilioVoice) else None,
        sms=sms if isinstance(sms, TwilioSms) else None,
        public_url=config().escalation.public_url,
    )
