"""Wellbeing ("quiet emergency") rules for the telemetry lane: nothing happened that should have.

Pure and synchronous like the alarm rules: time comes from the caller, nothing touches I/O. State lives
in memory and survives a restart through `snapshot`/`restore` (rules/state.py); what was never heard of
is timed from `start`.
"""

from collections.abc import Iterable, Mapping
from datetime import datetime

from rules.context import DeviceFacts, RuleContext
from rules.engine import Rule
from rules.wellbeing.baseline import ActivityBaselineRule
from rules.wellbeing.bed_exit import BedExitRule
from rules.wellbeing.check_in import MissedCheckInRule
from rules.wellbeing.common import WellbeingSource, synthetic_event
from rules.wellbeing.config import EffectiveRules, ResidentWellbeing, WellbeingConfig
from rules.wellbeing.device_health import DeviceHealthRule
from rules.wellbeing.falling_from_bed import FallingFromBedRule
from rules.wellbeing.fever import FeverReadingRule
from rules.wellbeing.inactivity import InactivityRule
from rules.wellbeing.repositioning import RepositioningRule
from rules.wellbeing.scalds import ScaldsRule
from rules.wellbeing.vitals import VitalsRule

__all__ = [
    "ActivityBaselineRule",
    "BedExitRule",
    "DeviceHealthRule",
    "EffectiveRules",
    "FallingFromBedRule",
    "FeverReadingRule",
    "InactivityRule",
    "MissedCheckInRule",
    "RepositioningRule",
    "ResidentWellbeing",
    "ScaldsRule",
    "VitalsRule",
    "WellbeingConfig",
    "WellbeingSource",
    "synthetic_event",
    "wellbeing_rules",
]


def wellbeing_rules(
    context: RuleContext,
    config: WellbeingSource,
    start: datetime,
    *,
    devices: Iterable[DeviceFacts] = (),
    device_intervals: Mapping[str, float] | None = None,
) -> list[Rule]:
    """The wellbeing rules. `config` is one `WellbeingConfig` for every site, or a function from site id
    to that site's settings. `start` is when the gateway started: residents and `devices` not heard from
    since are timed from it."""
    return [
        InactivityRule(context, config, start),
        MissedCheckInRule(context, config, start),
        BedExitRule(context, config),
        VitalsRule(context, config),
        DeviceHealthRule(context, config, start, devices=devices, intervals=device_intervals),
        ActivityBaselineRule(context, config, start),
        # The risk rules (docs/risks.md).
        RepositioningRule(context, config),
        FallingFromBedRule(context, config),
        ScaldsRule(context, config),
        FeverReadingRule(context, config),
    ]
