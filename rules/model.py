"""What the rules decide: open (or join) an incident, cancel one, record that a device was tested, or keep
a body temperature."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from devices.model import DeviceEvent


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.CRITICAL: 0, Severity.HIGH: 1, Severity.MEDIUM: 2, Severity.LOW: 3}


@dataclass(frozen=True, slots=True)
class AlarmDecision:
    """Raise an alarm. Decisions sharing an `incident_key` join the incident that is still open."""

    rule: str
    severity: Severity
    incident_key: str
    event: DeviceEvent
    evidence: dict[str, str | float | bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CancelDecision:
    """Resolve the open incident under `incident_key` on the resident's own word (e.g. a fall cancel)."""

    rule: str
    incident_key: str
    event: DeviceEvent
    reason: str
    #: Only an incident triggered at or after this moment may be cancelled (the cancel window).
    triggered_after: datetime


@dataclass(frozen=True, slots=True)
class DeviceTestDecision:
    """Record that a device was tested and works (a smoke detector's test button): never an incident."""

    rule: str
    event: DeviceEvent


@dataclass(frozen=True, slots=True)
class TemperatureTaken:
    """Keep a resident's body temperature (a wearable's fever reading, or a carer's entry) in the store;
    when it is a fever, count the site's feverish residents (epidemic early warning, docs/risks.md)."""

    rule: str
    #: The reading: `resident`, `site`, `value` (degrees Celsius) and `received_at` (when it was taken).
    event: DeviceEvent
    fever: bool
    #: Who took it: `device:<id>` or the signed-in user's name.
    recorded_by: str
    #: The site's settings when taken: so many distinct feverish residents within `window` are a cluster.
    cluster_size: int
    window: timedelta


Decision = AlarmDecision | CancelDecision | DeviceTestDecision | TemperatureTaken
