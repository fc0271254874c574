"""Alarm-lane rules: small, pure state machines fed by `DeviceEvent`s and an injected time."""

from rules.alarms import SmokeRule, SosRule
from rules.context import RuleContext
from rules.door import DoorAtNightRule, DoorLeftOpenRule
from rules.engine import Rule, RuleEngine
from rules.fall import FallRule
from rules.locked_zone import LockedZoneExitRule
from rules.model import AlarmDecision, CancelDecision, Decision, DeviceTestDecision, Severity

__all__ = [
    "AlarmDecision",
    "CancelDecision",
    "Decision",
    "DeviceTestDecision",
    "DoorAtNightRule",
    "DoorLeftOpenRule",
    "FallRule",
    "LockedZoneExitRule",
    "Rule",
    "RuleContext",
    "RuleEngine",
    "Severity",
    "SmokeRule",
    "SosRule",
    "default_rules",
]


def default_rules(context: RuleContext) -> list[Rule]:
    """The built-in alarm rules, in the order they are consulted."""
    return [
        SosRule(),
        FallRule(context),
        SmokeRule(),
        DoorAtNightRule(context),
        DoorLeftOpenRule(context),
        LockedZoneExitRule(context),
    ]
