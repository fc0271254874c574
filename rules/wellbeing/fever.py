"""Epidemic early warning (疫情监测预警): feverish residents of one site within a day.

Two halves. `FeverReadingRule` runs with the wellbeing rules on the wearables' body temperatures: a
reading at or above the site's threshold becomes a `TemperatureTaken` for the store (at most one per
resident every `fever.repeat_hours`, so a wearable reporting each minute is one observation, yet a fever
lasting past the window keeps the resident counted). Carers' manual entries arrive at the store the same
way from the dashboard. The store keeps every observation and, in the same transaction, asks
`cluster_alarm` whether the site now has a cluster: counted from the store, the count is the same
whichever source a reading came from and across a gateway restart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from devices.model import DeviceEvent, EventKind
from rules.context import RuleContext
from rules.model import AlarmDecision, Decision, Severity, TemperatureTaken
from rules.wellbeing.common import WellbeingSource, config_lookup, number, subject_of_event, synthetic_event
from rules.wellbeing.config import FeverConfig

CLUSTER_RULE = "fever_cluster"


def is_fever(celsius: float, settings: FeverConfig) -> bool:
    """China's fever screening counts 37.3 °C and above as a fever."""
    return celsius >= settings.threshold_c


def temperature_taken(
    event: DeviceEvent, celsius: float, settings: FeverConfig, recorded_by: str
) -> TemperatureTaken:
    return TemperatureTaken(
        "fever",
        event,
        is_fever(celsius, settings),
        recorded_by,
        settings.residents,
        timedelta(hours=settings.window_hours),
    )


class FeverReadingRule:
    name = CLUSTER_RULE
    #: The event kinds this rule reads (rules/engine.py dispatches by them).
    kinds = frozenset({EventKind.BODY_TEMPERATURE})

    def __init__(self, context: RuleContext, config: WellbeingSource) -> None:
        self._context = context
        self._config = config_lookup(config)
        #: Resident -> when their last fever was noted.
        self._noted: dict[str, datetime] = {}

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        celsius = number(event.value) if event.kind is EventKind.BODY_TEMPERATURE else None
        # A carer's entry is kept by the dashboard itself; it comes here only for the sensor log.
        if celsius is None or event.extra.get("manual") is True:
            return ()
        _subject, resident = subject_of_event(self._context, event)
        settings = self._config(event.site).fever
        if resident is None or not settings.enabled or not is_fever(celsius, settings):
            return ()
        noted = self._noted.get(resident)
        if noted is not None and event.received_at - noted < timedelta(hours=settings.repeat_hours):
            return ()
        self._noted[resident] = event.received_at
        # The resident the reading is about, also when the wearable is bound to the room only.
        reading = dataclasses.replace(event, resident=resident)
        return (temperature_taken(reading, celsius, settings, f"device:{event.device_id}"),)

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        day = timedelta(hours=24)
        for resident in [r for r, at in self._noted.items() if now - at > day]:
            del self._noted[resident]
        return ()


@dataclass(frozen=True, slots=True)
class LastCluster:
    """The site's latest fever-cluster incident, as the store has it."""

    opened_at: datetime
    active: bool


def cluster_alarm(
    taken: TemperatureTaken,
    feverish: Sequence[str],
    newly_counted: bool,
    last: LastCluster | None,
) -> AlarmDecision | None:
    """Whether this fever makes (or joins) the site's cluster. `feverish`: the distinct residents of the
    site with a fever within the window ending at this reading, this one included; `newly_counted`: the
    resident was not among them before this reading.

    A cluster raises ONE incident when the count reaches `cluster_size`. While it is open, each further
    resident joins it; once resolved, residents falling ill within the window of its opening are the same
    cluster and raise nothing new (they are listed on the managers' fever list)."""
    if not taken.fever or not newly_counted or len(feverish) < taken.cluster_size:
        return None
    at = taken.event.received_at
    same_cluster = last is not None and (last.active or at - last.opened_at < taken.window)
    if same_cluster and not (last is not None and last.active):
        return None
    site = taken.event.site
    key = f"{CLUSTER_RULE}:{site}"
    event = synthetic_event(CLUSTER_RULE, key, at, site=site)
    evidence: dict[str, str | float | bool] = {
        "feverish_residents": len(feverish),
        "residents": ",".join(sorted(feverish)),
        "window_hours": round(taken.window.total_seconds() / 3600, 2),
        "latest": taken.event.resident or "",
    }
    return AlarmDecision(CLUSTER_RULE, Severity.HIGH, key, event, evidence)
