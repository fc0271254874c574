"""Duty: device faults handed to the technician on duty when overdue, and an alarm when nobody is at
the console (docs/duty.md).

* A device fault (a `device_health` incident: offline, silent, battery low, tamper) still not resolved
  2 hours after it was raised is escalated once to the responders with role `technician` on duty now,
  worded "workaround due within 2 hours: JGJ/T 484". Resolved is what counts: acknowledging a fault is
  not fixing it. The 2 hours are computed from the stored `opened_at`, and "once" is a row in
  `fault_escalations` written with the notifications and the audit entry in one transaction, so a
  restart neither forgets nor repeats it.
* A site with active devices and no console open on it (a WebSocket of a signed-in user whose sites
  include it; a tester's phone page does not count) for the site's `duty.console_unstaffed_after_min`
  opens one `console_unstaffed` incident per gap, escalated by phone to the supervisor and the manager
  (the default policy `default-console-unstaffed`), and closes it, audited, when someone opens the
  console again. No alarm in the gateway's first minutes: a console has not had the time to connect.

The console's connections are the dashboard's (its hub); they reach here as a callable handed in by the
composition root, so imports keep running one way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from devices.model import DeviceEvent, DeviceType, EventKind
from gateway.clock import Clock
from gateway.config import CarelineConfig, SiteConfig
from gateway.escalation.config import Target, Tier
from gateway.escalation.escalator import Escalator
from gateway.escalation.model import ChannelKind
from gateway.escalation.store import EscalationStore, PlannedNotification
from gateway.incidents.duty import (
    CONSOLE_UNSTAFFED_RULE,
    FAULT_OVERDUE,
    DutyStore,
    console_unstaffed_key,
)
from gateway.incidents.schema import FaultEscalation, Incident
from gateway.incidents.service import IncidentService
from gateway.incidents.store import ACTIVE
from rules.model import AlarmDecision, Decision, Severity

log = logging.getLogger(__name__)

POLL_S = 15.0
#: JGJ/T 484: a workaround within 2 hours of a device fault.
FAULT_LIMIT = timedelta(hours=2)
#: The incidents that are device faults.
FAULT_RULES = ("device_health",)
TECHNICIANS = Tier(
    targets=(Target(role="technician", on_duty=True),),
    channels=(ChannelKind.SMS, ChannelKind.VOICE, ChannelKind.EMAIL),
)
FAULTS_PER_TICK = 50


@dataclass(frozen=True, slots=True)
class ConsoleSeat:
    """One console open now: who signed in to it, and the sites it shows (None: every site)."""

    user: str
    scope: frozenset[str] | None

    def covers(self, site: str) -> bool:
        return self.scope is None or site in self.scope


ConsoleSeats = Callable[[], Sequence[ConsoleSeat]]


class DutyWatch:
    def __init__(
        self,
        service: IncidentService,
        escalations: EscalationStore,
        escalator: Escalator,
        clock: Clock,
        config: Callable[[], CarelineConfig],
        seats: ConsoleSeats,
        commit: Callable[[Sequence[Decision]], Awaitable[None]],
    ) -> None:
        self._service = service
        self._escalations = escalations
        self._escalator = escalator
        self._clock = clock
        self._config = config
        self._seats = seats
        self._commit = commit
        self._duty = DutyStore(service.store)
        #: From when a console gap is timed: the watch's start (a gap before it is not this gateway's).
        self._started = clock.now()
        #: Site -> the last moment a console covered it.
        self._staffed_at: dict[str, datetime] = {}
        #: Sites whose gap alarm this watch raised and has not seen closed.
        self._gap_raised: set[str] = set()
        #: Sites covered at the last look (None before the first): a site newly covered closes its gap.
        self._covered: set[str] | None = None

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                # A failed look is tried again at the next one; the alarm lane is not this task's.
                log.exception("duty watch failed; trying again")
            await asyncio.sleep(POLL_S)

    async def tick(self) -> None:
        await self.escalate_overdue_faults()
        await self.watch_consoles()

    # -- device faults --------------------------------------------------------------------------------

    async def escalate_overdue_faults(self) -> list[PlannedNotification]:
        now = self._clock.now()
        if not await self._service.read(self._any_overdue, now):
            # Most looks find nothing: a read takes no write lock.
            return []
        planned = await self._service.bookkeeping(self._escalate_overdue, now)
        self._escalator.send(planned)
        return planned

    def _overdue(self, now: datetime) -> Any:
        return (
            select(Incident)
            .outerjoin(FaultEscalation, FaultEscalation.incident_id == Incident.id)
            .where(
                Incident.rule.in_(FAULT_RULES),
                Incident.status.in_(ACTIVE),
                Incident.opened_at <= now - FAULT_LIMIT,
                FaultEscalation.incident_id.is_(None),
            )
        )

    def _any_overdue(self, now: datetime) -> bool:
        with self._service.store.reading() as session:
            return session.scalars(self._overdue(now).limit(1)).first() is not None

    def _escalate_overdue(self, now: datetime) -> list[PlannedNotification]:
        """On the writer thread: each overdue fault's notifications, its mark and its audit entry in one
        transaction."""
        store = self._service.store
        planned: list[PlannedNotification] = []
        with store.transaction() as session:
            overdue = session.scalars(self._overdue(now).order_by(Incident.opened_at).limit(FAULTS_PER_TICK))
            for incident in overdue.all():
                notes = self._escalations.notify_outside_policy(
                    session, incident, TECHNICIANS, FAULT_OVERDUE, now
                )
                reached = sorted({n.recipient.responder_id for n in notes})
                session.add(FaultEscalation(incident_id=incident.id, escalated_at=now, technicians=reached))
                store.audit.append(
                    session,
                    at=now,
                    actor="duty",
                    action="incident.fault_escalated",
                    incident_id=incident.id,
                    details={
                        "technicians": reached,
                        "contacts": [f"{n.recipient.responder_id}:{n.channel.value}" for n in notes],
                        "fault_for_s": round((now - incident.opened_at).total_seconds()),
                        "limit_s": FAULT_LIMIT.total_seconds(),
                        "standard": "JGJ/T 484",
                    },
                )
                if not reached:
                    log.error("device fault %d is overdue and no technician is on duty", incident.id)
                planned += notes
        return planned

    # -- the console ------------------------------------------------------------------------------------

    async def watch_consoles(self) -> None:
        now = self._clock.now()
        seats = list(self._seats())
        decisions: list[Decision] = []
        covered: set[str] = set()
        for site in watched_sites(self._config()):
            present = [seat for seat in seats if seat.covers(site.id)]
            if present:
                covered.add(site.id)
                self._staffed_at[site.id] = now
                if self._covered is None or site.id not in self._covered or site.id in self._gap_raised:
                    await self._close_gap(site.id, present[0].user)
                continue
            since = max(self._staffed_at.get(site.id, self._started), self._started)
            after = timedelta(minutes=site.duty.console_unstaffed_after_min)
            if now - since >= after and site.id not in self._gap_raised:
                # Marked before the commit is awaited: a second look meanwhile must not raise it again.
                self._gap_raised.add(site.id)
                decisions.append(unstaffed_alarm(site.id, since, now))
        self._covered = covered
        if decisions:
            await self._commit(decisions)

    async def _close_gap(self, site: str, user: str) -> None:
        self._gap_raised.discard(site)
        if not await self._service.read(self._duty.console_gap_open, site):
            return
        view = await self._service.write(self._duty.close_console_gap, site, f"user:{user}")
        if view is not None:
            self._service.announce([view])


def watched_sites(config: CarelineConfig) -> list[SiteConfig]:
    """Sites whose alarms can come now (they have an active device), with the watch on."""
    equipped = {device.site for device in config.devices if device.active}
    return [
        site for site in config.sites if site.id in equipped and site.duty.console_unstaffed_after_min > 0
    ]


def unstaffed_alarm(site: str, since: datetime, now: datetime) -> AlarmDecision:
    event = DeviceEvent(
        device_id=f"console:{site}",
        device_type=DeviceType.OTHER,
        site=site,
        room=None,
        resident=None,
        kind=EventKind.AVAILABILITY,
        value=False,
        ts=now,
        received_at=now,
        message_key=f"{CONSOLE_UNSTAFFED_RULE}:{site}:{now.isoformat()}",
    )
    evidence: dict[str, str | float | bool] = {
        "unstaffed_since": since.isoformat(),
        "unstaffed_for_s": round((now - since).total_seconds()),
    }
    return AlarmDecision(CONSOLE_UNSTAFFED_RULE, Severity.HIGH, console_unstaffed_key(site), event, evidence)
