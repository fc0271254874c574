"""The rule engine: every event goes through each rule that reads its kind; timers fire on `tick`.

Custom rules plug in by implementing `Rule` (two methods) and being passed to `RuleEngine`.
Rules are pure and synchronous: they get the time from the caller and never touch I/O, so the alarm lane
stays fast and the tests need no sleeping.

A rule may say which event kinds it reads (`kinds`, a frozenset of `EventKind`); the engine then hands it
only those. Telemetry is thousands of events a second, and most rules read one or two kinds: asking ten
rules about every battery reading was a third of the telemetry lane's rule time (docs/benchmarks.md). A
rule without `kinds` gets every event. `tests/test_rule_engine.py` checks that dispatching by kind
decides exactly what asking every rule decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol

from devices.model import DeviceEvent, EventKind
from rules.model import Decision


class Rule(Protocol):
    name: str

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        """Decisions caused by one event (usually none)."""
        ...

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        """Decisions caused by time passing (timers that came due)."""
        ...


def kinds_read(rule: Rule) -> frozenset[EventKind] | None:
    """The event kinds `rule` reads; None when it reads every event."""
    kinds = getattr(rule, "kinds", None)
    return frozenset(kinds) if kinds is not None else None


class RuleEngine:
    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)
        reads = [(rule, kinds_read(rule)) for rule in self.rules]
        #: Per kind, the rules that read it, in the engine's order (decisions keep that order).
        self._by_kind: dict[EventKind, tuple[Rule, ...]] = {
            kind: tuple(rule for rule, kinds in reads if kinds is None or kind in kinds) for kind in EventKind
        }

    def handle(self, event: DeviceEvent, now: datetime) -> list[Decision]:
        decisions: list[Decision] = []
        for rule in self._by_kind[event.kind]:
            decided = rule.on_event(event, now)
            if decided:
                decisions += decided
        return decisions

    def tick(self, now: datetime) -> list[Decision]:
        return [decision for rule in self.rules for decision in rule.on_tick(now)]
