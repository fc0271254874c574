"""The demo's home visits: past weeks of the directory's visit plans carried out (most on time, some
late, a few missed), and today's: one done, one under way, one overdue (the gateway's scheduler raises
its missed-visit incident when it starts). Written through the real visit store, in time order."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.clock import FakeClock
from gateway.config import CarelineConfig
from gateway.incidents.store import IncidentStore
from gateway.visits import CHECKLIST, Occurrence, VisitStore, occurrences
from gateway.visits.scheduler import incident_key

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class VisitHistory:
    past: int
    today: int


def _answers(rng: random.Random) -> dict[str, str]:
    return {item: rng.choices(("yes", "no", "concern"), (0.85, 0.05, 0.10))[0] for item in CHECKLIST}


def _carry_out(visits: VisitStore, clock: FakeClock, occurrence: Occurrence, rng: random.Random) -> None:
    """One past visit: planned the day before, then done on time, done late or missed."""
    clock.set(occurrence.planned_at - timedelta(days=1))
    visits.materialise([occurrence], clock.now(), occurrence.planned_at + MINUTE)
    row = visits.in_period(None, occurrence.planned_at, occurrence.planned_at + MINUTE)
    visit = next(v for v in row if v.resident == occurrence.resident and v.plan == occurrence.plan)
    fate = rng.choices(("on_time", "late", "missed"), (0.84, 0.09, 0.07))[0]
    if fate == "missed":
        clock.set(occurrence.due_by)
        visits.mark_missed(visit.id, incident_key(visit))
        return
    window = (occurrence.due_by - occurrence.planned_at).total_seconds() / 60
    delay = rng.uniform(-10, window - 5) if fate == "on_time" else rng.uniform(window + 5, window + 60)
    arrived = occurrence.planned_at + timedelta(minutes=delay)
    clock.set(arrived)
    visits.check_in(visit.id, occurrence.carer, "tag:demo" if rng.random() < 0.3 else "page", arrived)
    left = arrived + timedelta(minutes=rng.uniform(25, 60))
    clock.set(left)
    notes = rng.choice(
        ("", "", "精神不错，聊了天。", "冰箱里的菜快吃完了，已告知家属。", "Asked for help with the heating.")
    )
    visits.check_out(visit.id, occurrence.carer, "page", left, _answers(rng), notes)


def _today(visits: VisitStore, clock: FakeClock, config: CarelineConfig, now: datetime) -> int:
    """Three visits of the district today, whatever the weekday: done, under way, overdue."""
    xihu = [r for r in config.residents if r.site == "xihu" and r.active and r.visits]
    if len(xihu) < 3:
        return 0
    shown = (
        (xihu[0], now - timedelta(hours=3), "done"),
        (xihu[1], now - timedelta(minutes=40), "in_progress"),
        (xihu[2], now - timedelta(hours=2), "overdue"),
    )
    for resident, planned_at, fate in shown:
        plan = resident.visits[0]
        occurrence = Occurrence(
            resident.site, resident.id, plan.id, plan.carer, planned_at, planned_at + timedelta(minutes=60)
        )
        clock.set(planned_at - timedelta(hours=12))
        visits.materialise([occurrence], clock.now(), planned_at + MINUTE)
        visit = next(
            v for v in visits.in_period(None, planned_at, planned_at + MINUTE) if v.resident == resident.id
        )
        if fate == "overdue":
            continue  # the scheduler finds it overdue at start and raises the incident
        clock.set(planned_at + 5 * MINUTE)
        visits.check_in(visit.id, plan.carer, "page", clock.now())
        if fate == "done":
            clock.set(planned_at + 50 * MINUTE)
            visits.check_out(
                visit.id, plan.carer, "page", clock.now(), dict.fromkeys(CHECKLIST, "yes"), "一切安好。"
            )
    return len(shown)


def write_visit_history(
    make_store: Callable[[FakeClock], IncidentStore],
    config: CarelineConfig,
    now: datetime,
    *,
    days: int,
    seed: int,
) -> VisitHistory:
    clock = FakeClock()
    visits = VisitStore(make_store(clock), lambda: config)
    rng = random.Random(seed)
    # The past ends yesterday: today's visits are the three shown below (and the plans' own).
    yesterday = now - timedelta(days=1)
    past = [o for o in occurrences(config, now - timedelta(days=days), yesterday) if o.due_by < yesterday]
    for occurrence in sorted(past, key=lambda o: o.planned_at):
        _carry_out(visits, clock, occurrence, rng)
    return VisitHistory(len(past), _today(visits, clock, config, now))
