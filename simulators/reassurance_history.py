"""The demo's past days of daily reassurance calls, so the managers' view is not empty at start.

Made up with a seeded random generator: most residents answer "well" at the first call, some at a
retry, now and then one asks for help or does not answer at all. The rows are written straight into
the store (a made-up past, wiped at the next start): they carry no audit entries, and the few days
that ended "needs help" or "no answer" name no incident.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from gateway.config import CarelineConfig
from gateway.incidents.schema import ReassuranceAttempt
from gateway.reassurance.plan import Subscriber, subscribers

#: The share of days answered "well" at the first call, at a retry, with a plea for help; the rest
#: go unanswered.
_FIRST, _RETRY, _HELP = 0.84, 0.10, 0.02


def write_reassurance_history(
    engine: Engine, config: CarelineConfig, now: datetime, days: int, seed: int
) -> int:
    """Every consenting resident's calls of the `days` days before today; the number of attempts."""
    rng = random.Random(seed)
    rows = [
        row
        for sub in subscribers(config).values()
        for back in range(days, 0, -1)
        for row in _day(sub, sub.first_call_at(sub.day(now) - timedelta(days=back)), rng)
    ]
    with Session(engine) as session, session.begin():
        session.add_all(rows)
    return len(rows)


def _day(sub: Subscriber, first: datetime, rng: random.Random) -> list[ReassuranceAttempt]:
    draw = rng.random()
    if draw < _FIRST:
        answered, digits = 1, "1"
    elif draw < _FIRST + _RETRY:
        answered, digits = min(2, sub.attempts), "1"
    elif draw < _FIRST + _RETRY + _HELP:
        answered, digits = 1, "2"
    else:
        answered, digits = 0, ""
    count = answered or sub.attempts
    rows = []
    for n in range(1, count + 1):
        at = first + sub.wait * (n - 1)
        answers = n == answered
        row = ReassuranceAttempt(
            resident_id=sub.resident_id,
            site=sub.site,
            day=sub.day(first).isoformat(),
            attempt=n,
            channel=sub.settings.channel,
            phone=sub.settings.phone,
            scheduled_at=at,
            placed_at=at,
            provider_sid=("SM" if sub.settings.channel == "sms" else "CA")
            + format(rng.getrandbits(128), "032x"),
            status=("answered" if sub.settings.channel == "sms" else "completed") if answers else "no-answer",
            updated_at=at + timedelta(minutes=1),
        )
        if answers:
            reply_at = at + timedelta(seconds=rng.randint(20, 300))
            if sub.settings.channel == "sms":
                row.reply = digits
            else:
                row.digits = digits
            row.answered_at = row.decided_at = reply_at
            row.outcome = "well" if digits == "1" else "needs_help"
        elif n == count:
            row.outcome, row.decided_at = "no_answer", at + sub.wait
        rows.append(row)
    return rows
