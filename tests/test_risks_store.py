"""The fever count is the store's: body temperatures kept in SQLite, counted per site in the same
transaction, so a gateway restart between two readings changes nothing (docs/risks.md)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from stores import store_url
from test_risks_rules import bed, careline, taken
from test_wellbeing_support import local

from devices.model import EventKind
from gateway.clock import FakeClock
from gateway.directory import Directory, rule_context
from gateway.incidents.db import make_engine
from gateway.incidents.migrate import upgrade
from gateway.incidents.schema import Outcome
from gateway.incidents.store import AlarmBatch, BatchResult, IncidentStore, RuledDecision
from rules.model import TemperatureTaken
from rules.wellbeing import RepositioningRule, WellbeingConfig

_engines: list[Engine] = []


@pytest.fixture(autouse=True)
def _engines_disposed() -> Iterator[None]:
    """Each "start" below opens an engine, as a gateway would; their pools are closed after the test."""
    yield
    while _engines:
        _engines.pop().dispose()


def started(db: Path, clock: FakeClock) -> IncidentStore:
    """A gateway's store as it starts: a new engine on the file, migrated."""
    engine = make_engine(store_url(db))
    _engines.append(engine)
    upgrade(engine)
    return IncidentStore(engine, Directory(careline()), clock.now)


def keep(store: IncidentStore, reading: TemperatureTaken) -> BatchResult:
    return store.apply(AlarmBatch([RuledDecision(reading, check_duplicate=False)]))


def test_the_count_survives_a_restart_and_the_cluster_fires_once_at_the_third_resident(
    tmp_path: Path,
) -> None:
    db, clock = tmp_path / "careline.db", FakeClock(local(8))
    before = started(db, clock)
    assert not keep(before, taken("wang", local(8))).changed
    assert not keep(before, taken("li", local(9))).changed
    assert not keep(before, taken("chen", local(9), celsius=36.9)).changed  # not a fever

    after = started(db, clock)  # the gateway restarted: nothing of the count was in memory
    clock.set(local(10))
    [opened] = keep(after, taken("chen", local(10))).changed
    [joined] = keep(after, taken("zhou", local(11))).changed

    assert (opened.rule, opened.site, opened.trigger_count) == ("fever_cluster", "sunrise", 1)
    assert (joined.id, joined.trigger_count) == (opened.id, 2)
    recorded = [a for a in after.audit_trail() if a.action == "temperature.recorded"]
    assert len(recorded) == 5
    assert recorded[0].actor == "nurse-wu"


def test_once_the_cluster_is_resolved_the_same_day_s_further_residents_raise_nothing_new(
    tmp_path: Path,
) -> None:
    clock = FakeClock(local(8))
    store = started(tmp_path / "careline.db", clock)
    for hour, resident in enumerate(("wang", "li", "chen"), start=8):
        result = keep(store, taken(resident, local(hour)))
    [cluster] = result.changed
    store.resolve(cluster.id, "head-nurse", Outcome.OTHER, "isolated, CDC told")

    assert not keep(store, taken("zhou", local(14))).changed
    # A day after the cluster opened, a new one may be raised.
    later = local(11) + timedelta(days=1)
    clock.set(later)
    for resident in ("wu", "zheng"):
        keep(store, taken(resident, later - timedelta(hours=1)))
    [new] = keep(store, taken("feng", later)).changed
    assert new.id != cluster.id


def test_readings_older_than_the_window_are_not_counted(tmp_path: Path) -> None:
    store = started(tmp_path / "careline.db", FakeClock(local(8)))
    keep(store, taken("wang", local(8, day=4)))
    keep(store, taken("li", local(8, day=5)))

    assert not keep(store, taken("chen", local(9, day=5))).changed
    assert keep(store, taken("zhou", local(10, day=5))).changed


def test_a_carer_marking_the_repositioning_task_done_closes_it_as_repositioned_in_their_name(
    tmp_path: Path,
) -> None:
    clock = FakeClock(local(15))
    store = started(tmp_path / "careline.db", clock)
    rule = RepositioningRule(rule_context(careline()), WellbeingConfig())
    rule.on_event(bed(EventKind.BED_POSITION, "left", local(13)), local(13))
    [task] = store.apply(
        AlarmBatch([RuledDecision(d, check_duplicate=False) for d in rule.on_tick(local(15))])
    ).changed

    clock.set(local(15, 10))
    done = store.resolve(task.id, "carer-li", Outcome.REPOSITIONED, "turned to the right side")

    assert (done.outcome, done.resolved_by, done.resolved_at) == ("repositioned", "carer-li", local(15, 10))
    [entry] = [a for a in store.audit_trail(task.id) if a.action == "incident.resolved"]
    assert (entry.actor, entry.details["outcome"]) == ("carer-li", "repositioned")
