"""Scalds (GB/T 38600): hot water above the site's limit where a resident flagged `scalds` washes.

The probe is bound to the resident or to their room. Hysteresis: after an alarm the probe must read
`margin_c` below the limit before it can raise another, so a tap running hot for ten minutes (a reading
every few seconds) is one alarm, not two hundred.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from devices.model import DeviceEvent, EventKind
from rules.context import RuleContext
from rules.model import AlarmDecision, Decision, Severity
from rules.wellbeing.common import WellbeingSource, config_lookup, number, residents_of

RISK = "scalds"


class ScaldsRule:
    name = "scalds"
    #: The event kinds this rule reads (rules/engine.py dispatches by them).
    kinds = frozenset({EventKind.WATER_TEMPERATURE})

    def __init__(self, context: RuleContext, config: WellbeingSource) -> None:
        self._context = context
        self._config = config_lookup(config)
        #: Probes that alarmed and have not yet cooled below the limit by the margin.
        self._hot: set[str] = set()

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        celsius = number(event.value) if event.kind is EventKind.WATER_TEMPERATURE else None
        if celsius is None:
            return ()
        settings = self._config(event.site).scalds
        if event.device_id in self._hot:
            if celsius <= settings.limit_c - settings.margin_c:
                self._hot.discard(event.device_id)
            return ()
        at_risk = [r.id for r in residents_of(self._context, event) if RISK in r.risks]
        if not settings.enabled or not at_risk or celsius <= settings.limit_c:
            return ()
        self._hot.add(event.device_id)
        evidence: dict[str, str | float | bool] = {
            "water_c": celsius,
            "limit_c": settings.limit_c,
            "residents_at_risk": ",".join(at_risk),
        }
        key = f"scalds:{event.site}:{event.device_id}"
        return (AlarmDecision(self.name, Severity.HIGH, key, event, evidence),)

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        return ()
