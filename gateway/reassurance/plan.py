"""What is due next for one resident's day of reassurance calls, and what an answer means (pure)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo

from common.settings import Language
from gateway.config import CarelineConfig, ReassuranceConfig

Outcome = Literal["well", "needs_help", "no_answer"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("well", "needs_help", "no_answer")

HELP_RULE: Final = "reassurance_help"
NO_ANSWER_RULE: Final = "reassurance_no_answer"

#: A day's first call is placed at most this long after its time (a gateway that was down all morning
#: does not ring an elder at night); a day already begun is always carried on.
LATE_LIMIT: Final = timedelta(hours=2)

#: Call or SMS states after which nobody will answer this attempt any more. "completed" only reaches
#: here without a key pressed: the key is recorded as the answer first.
ENDED_UNANSWERED: Final = frozenset({"completed", "no-answer", "busy", "failed", "canceled", "undelivered"})

_WELL: Final = frozenset(
    {"1", "ok", "okay", "yes", "well", "fine", "good", "好", "好的", "安好", "平安", "没事"}
)
_HELP_WORDS: Final = ("2", "help", "sos", "救命", "帮助", "求助", "帮忙", "不好", "不舒服")
_TRAILING: Final = " \t\r\n.!。！,，~"


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A resident who gets the daily call, as the directory says now."""

    resident_id: str
    name: str
    site: str
    language: Language
    zone: ZoneInfo
    settings: ReassuranceConfig

    @property
    def attempts(self) -> int:
        return 1 + self.settings.retries

    @property
    def wait(self) -> timedelta:
        return timedelta(minutes=self.settings.retry_wait_min)

    def day(self, now: datetime) -> date:
        return now.astimezone(self.zone).date()

    def first_call_at(self, day: date) -> datetime:
        return datetime.combine(day, self.settings.at, tzinfo=self.zone).astimezone(UTC)


def subscribers(config: CarelineConfig) -> dict[str, Subscriber]:
    """Active residents with the daily call set up AND consented to; by resident id."""
    zones = {site.id: site.zone for site in config.sites}
    return {
        r.id: Subscriber(r.id, r.name, r.site, r.language, zones[r.site], r.reassurance)
        for r in config.residents
        if r.active and r.reassurance is not None and r.reassurance.consent and r.site in zones
    }


@dataclass(frozen=True, slots=True)
class AttemptState:
    """What the plan needs of one attempt row."""

    attempt: int
    scheduled_at: datetime
    status: str
    #: The answer given (digits or an SMS reply), whether or not the day was decided on it yet.
    answer: Outcome | None
    outcome: Outcome | None


@dataclass(frozen=True, slots=True)
class Place:
    attempt: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Decide:
    outcome: Outcome


Step = Place | Decide


def next_step(
    subscriber: Subscriber, attempts: Sequence[AttemptState], now: datetime, first_at: datetime
) -> Step | None:
    """The one thing to do now for this day (None: nothing yet, or the day is over).

    Attempt n+1 follows attempt n by the retry wait when nobody answered; after the last attempt the day
    is "no answer" once that call has ended unanswered or the wait has passed. An answer recorded but
    not yet decided on (a restart in between) is decided first."""
    if not attempts:
        return Place(1, first_at) if first_at <= now < first_at + LATE_LIMIT else None
    if any(a.outcome is not None for a in attempts):
        return None
    answered = next((a.answer for a in attempts if a.answer is not None), None)
    if answered is not None:
        return Decide(answered)
    last = max(attempts, key=lambda a: a.attempt)
    due = last.scheduled_at + subscriber.wait
    if last.attempt < subscriber.attempts:
        return Place(last.attempt + 1, due) if now >= due else None
    if last.status in ENDED_UNANSWERED or now >= due:
        return Decide("no_answer")
    return None


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip(_TRAILING).casefold()


def answer_of_digits(digits: str) -> Outcome | None:
    """Key 1: well; key 2: needs help; anything else is no answer yet (the question is asked again)."""
    keys: dict[str, Outcome] = {"1": "well", "2": "needs_help"}
    return keys.get(digits.strip())


def answer_of_reply(body: str) -> Outcome | None:
    """An SMS reply: "1" (or ok, 好, 安好 ...) is well; "2" or any word asking for help is needs help;
    anything else is not understood (None). Help wins: "1 but please help" asks for help."""
    folded = _folded(body)
    if any(word in folded for word in _HELP_WORDS):
        return "needs_help"
    return "well" if folded in _WELL else None
