"""The rule engine: every alarm-lane event goes through each rule; timers fire on `tick`.

Custom rules plug in by implementing `Rule` (two methods) and being passed to `RuleEngine`.
Rules are pure and synchronous: they get the time from the caller and never touch I/O, so the alarm lane
stays fast and the tests need no sleeping.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol

from devices.model import DeviceEvent
from rules.model import Decision


class Rule(Protocol):
    name: str

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        """Decisions caused by one event (usually none)."""
        ...

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        """Decisions caused by time passing (timers that came due)."""
        ...


class RuleEngine:
    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)

    def handle(self, event: DeviceEvent, now: datetime) -> list[Decision]:
        return [decision for rule in self.rules for decision in rule.on_event(event, now)]

    def tick(self, now: datetime) -> list[Decision]:
        return [decision for rule in self.rules for decision in rule.on_tick(now)]
