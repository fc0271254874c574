"""Rule state kept in the incident store, so a restart does not start every timer over.

The alarm lane's rules (door timers) live in the gateway's process; the wellbeing rules in the telemetry
process, which sends its snapshot up every `storage.rule_state_every_s` and once more when it stops. The
gateway writes both lanes' latest snapshots in one transaction on the store's writer thread (yielding to
alarms), every period and at a clean shutdown; at start it reads them back and gives them to the rules
before any event is handled (the telemetry process gets its own as it starts).

Why the store and not a file next to the telemetry spool: the store is already written durably (WAL,
synchronous=FULL) and a row replaced in one transaction is atomic without write-then-rename; and with
several gateways on one PostgreSQL (issue 13) the state must follow the store to whichever instance takes
the sites over, which a file on one machine's disk cannot do (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import select

from gateway.incidents.schema import RuleState
from gateway.incidents.service import IncidentService
from gateway.incidents.store import IncidentStore
from gateway.metrics import Metrics
from rules.state import FORMAT, RestoreReport, parsed, restore_rules, snapshot_rules

log = logging.getLogger(__name__)

ALARM, TELEMETRY = "alarm", "telemetry"


def row_name(lane: str, instance: str | None) -> str:
    """Several instances each keep their own snapshot: an instance's door timers are its own, and two
    instances writing one row would each restore the other's."""
    return lane if instance is None else f"{lane}@{instance}"


def load_rule_state(store: IncidentStore, instance: str | None = None) -> dict[str, str]:
    """Lane -> its latest snapshot, as JSON text: this instance's own, else (an instance's first start
    in a cluster) the one the store kept while a single gateway ran."""
    with store.reading() as session:
        rows = {row.lane: row.snapshot for row in session.scalars(select(RuleState))}
    found = {lane: rows.get(row_name(lane, instance)) or rows.get(lane) for lane in (ALARM, TELEMETRY)}
    return {lane: text for lane, text in found.items() if text is not None}


def save_rule_state(
    store: IncidentStore, snapshots: Mapping[str, str], now: datetime, instance: str | None = None
) -> None:
    """Replace the lanes' snapshots (JSON text), all in one transaction (writer thread only)."""
    with store.transaction() as session:
        for lane, snapshot in snapshots.items():
            name = row_name(lane, instance)
            row = session.get(RuleState, name)
            if row is None:
                row = RuleState(lane=name)
                session.add(row)
            row.saved_at, row.format, row.snapshot = now, FORMAT, snapshot


def count_restore(metrics: Metrics, lane: str, report: RestoreReport) -> None:
    """Count and log what a restore took and what it ignored (another version, a corrupt snapshot)."""
    for rule in report.restored:
        metrics.rule_state_restored.labels(lane, rule).inc()
    for rule, reason in report.ignored.items():
        metrics.rule_state_ignored.labels(lane, rule).inc()
        log.warning("%s lane: rule %s's saved state was ignored (%s); it starts afresh", lane, rule, reason)


class RuleStateKeeper:
    """Restores the alarm lane's rules at start; saves both lanes' snapshots every `every_s` and at the
    end. The telemetry process's latest snapshot (JSON text) comes from `telemetry_snapshot` (None until
    one was stored or sent)."""

    def __init__(
        self,
        service: IncidentService,
        metrics: Metrics,
        alarm_rules: Iterable[object],
        now: Callable[[], datetime],
        telemetry_snapshot: Callable[[], str | None],
        *,
        every_s: float,
        max_age: timedelta,
        instance: str | None = None,
    ) -> None:
        #: With several instances, this one's name: its snapshots are its own rows.
        self._instance = instance
        self._service, self._metrics, self._now = service, metrics, now
        self._alarm_rules = tuple(alarm_rules)
        self._telemetry_snapshot = telemetry_snapshot
        self.every_s, self.max_age = every_s, max_age

    async def load(self) -> dict[str, str]:
        try:
            return await self._service.read(load_rule_state, self._service.store, self._instance)
        except Exception:
            # A store that cannot say is a gateway starting afresh, not one that does not start.
            log.exception("rule state could not be read; the rules start afresh")
            return {}

    def restore_alarm_lane(self, stored: Mapping[str, str]) -> RestoreReport:
        text = stored.get(ALARM)
        if text is None:
            return RestoreReport()
        report = restore_rules(self._alarm_rules, parsed(text), self._now(), max_age=self.max_age)
        count_restore(self._metrics, ALARM, report)
        return report

    async def save(self) -> None:
        now = self._now()
        snapshots = {ALARM: json.dumps(snapshot_rules(self._alarm_rules, now))}
        telemetry = self._telemetry_snapshot()
        if telemetry is not None:
            snapshots[TELEMETRY] = telemetry
        try:
            await self._service.bookkeeping(
                save_rule_state, self._service.store, snapshots, now, self._instance
            )
        except Exception:
            self._metrics.rule_state_save_failures.inc()
            log.exception("rule state could not be saved; the previous snapshot stays")
            return
        self._metrics.rule_state_saved.inc()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            await self.save()
