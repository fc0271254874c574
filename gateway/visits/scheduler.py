"""The visit scheduler: ticks with the gateway's clock, keeps the coming week's visits in the store and
raises one `visit_missed` incident per visit whose due-by passed with no check-in.

Its state is the store's (a restart finds the same rows); the alarm is committed through the alarm
lane's commit path (durable, audited, escalated, on the console) before the visit is marked missed, so a
crash in between raises it again at the next tick, and it joins the incident still open under the
visit's own key instead of opening another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from devices.model import DeviceEvent, DeviceType, EventKind
from gateway.clock import Clock
from gateway.config import CarelineConfig
from gateway.incidents.service import IncidentService
from gateway.visits.schedule import occurrences
from gateway.visits.store import VisitStore, VisitView
from rules.model import AlarmDecision, Decision, Severity

log = logging.getLogger(__name__)

#: The rule name (and alarm type) of a missed visit: `rule.visit_missed` in the catalogue.
VISIT_MISSED_RULE = "visit_missed"
TICK_S = 30.0
#: Visits planned per transaction: the first week of a large directory is written in slices.
PLANNED_PER_COMMIT = 100
#: Visits are in the store this far ahead, so the carer's page shows the coming week.
HORIZON = timedelta(days=7)


def incident_key(visit: VisitView) -> str:
    return f"{VISIT_MISSED_RULE}:{visit.id}"


def missed_visit_alarm(visit: VisitView, now: datetime) -> AlarmDecision:
    event = DeviceEvent(
        device_id=f"visit:{visit.id}",
        device_type=DeviceType.OTHER,
        site=visit.site,
        room=None,
        resident=visit.resident,
        kind=EventKind.VISIT_MISSED,
        value=visit.carer,
        ts=visit.due_by,
        received_at=now,
        message_key=f"visit-missed:{visit.id}",
    )
    evidence: dict[str, str | float | bool] = {
        "visit": visit.id,
        "carer": visit.carer,
        "planned_at": visit.planned_at.isoformat(),
        "due_by": visit.due_by.isoformat(),
    }
    return AlarmDecision(VISIT_MISSED_RULE, Severity.HIGH, incident_key(visit), event, evidence)


class VisitScheduler:
    def __init__(
        self,
        visits: VisitStore,
        service: IncidentService,
        commit: Callable[[Sequence[Decision]], Awaitable[None]],
        clock: Clock,
        current_config: Callable[[], CarelineConfig],
    ) -> None:
        self._visits = visits
        self._service = service
        self._commit = commit
        self._clock = clock
        self._config = current_config
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Tick now (the directory changed, a test moved the clock)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("visit scheduler tick failed; trying again")
            try:
                async with asyncio.timeout(TICK_S):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def tick(self) -> list[VisitView]:
        """Plan the coming week; alarm the visits now overdue. Returns the visits marked missed."""
        now = self._clock.now()
        planned = occurrences(self._config(), now - timedelta(days=1), now + HORIZON)
        changes = await self._service.read(self._visits.changes, planned, now, now + HORIZON)
        for chunk in changes.chunks(PLANNED_PER_COMMIT):
            try:
                # Bookkeeping: yields the writer to alarms waiting for it.
                await self._service.bookkeeping(self._visits.apply, chunk)
            except IntegrityError:
                # A carer checked in to a row being replaced (or another instance planned it): the next
                # tick sees the store as it is now.
                log.info("visit plan changed under a check-in; planning again at the next tick")
                break
        missed = []
        for visit in await self._service.read(self._visits.overdue, now):
            await self._commit([missed_visit_alarm(visit, now)])
            marked = await self._service.write(self._visits.mark_missed, visit.id, incident_key(visit))
            if marked is not None:
                log.warning("visit %d to %s by %s missed", visit.id, visit.resident, visit.carer)
                missed.append(marked)
        return missed
