"""Escalation state in the incident store: claiming due steps, recording deliveries, acknowledgements.

Every function runs inside one transaction on the store's writer thread (through `IncidentService.write`),
so a step's notifications, its audit rows and the next timer are durable together.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from gateway.config import CarelineConfig, Language, ResponderConfig
from gateway.escalation.config import Policy, Tier
from gateway.escalation.model import AlarmSummary, ChannelKind, Delivery, Recipient
from gateway.escalation.rota import Reach, Rota
from gateway.incidents.duty import FAULT_OVERDUE
from gateway.incidents.schema import Escalation, FaultEscalation, Incident, IncidentStatus, Notification
from gateway.incidents.store import IncidentStore
from gateway.incidents.views import IncidentView

#: Statuses of a notification still under way; anything else is final.
IN_FLIGHT = ("queued", "sending", "sent", "initiated", "ringing", "in-progress")
NO_CONTACT = ("no-answer", "busy", "failed", "canceled", "undelivered")
CLAIM_LIMIT = 50


@dataclass(frozen=True, slots=True)
class PlannedNotification:
    notification_id: int
    incident_id: int
    channel: ChannelKind
    webhook: str | None
    recipient: Recipient
    alarm: AlarmSummary
    ack_token: str
    #: Its attempt was under way (since then) when its owner died: wait for the provider's word, and ask
    #: the provider, before sending it again.
    in_doubt_since: datetime | None = None

    @property
    def in_doubt(self) -> bool:
        return self.in_doubt_since is not None


@dataclass(frozen=True, slots=True)
class TokenOwner:
    incident_id: int
    responder_id: str
    channel: str


LinkOutcome = Literal["acknowledged", "late", "used", "unknown"]


@dataclass(frozen=True, slots=True)
class AckLink:
    """What the acknowledge link's page shows before anyone presses its button."""

    owner: TokenOwner
    alarm: AlarmSummary
    status: str
    used_at: datetime | None


class EscalationStore:
    def __init__(
        self,
        store: IncidentStore,
        config: CarelineConfig,
        available: frozenset[ChannelKind] = frozenset(ChannelKind),
    ) -> None:
        self._store = store
        #: The audit rows of the transaction under way, while they are held back (`_audited_last`).
        self._held_notes: list[dict[str, Any]] | None = None
        #: Channels actually configured; a tier asking for another one skips it (and says so in the audit).
        self._available = available
        self.use(config)

    def use(self, config: CarelineConfig) -> None:
        """Follow a new directory (responders, rota, policies). Call it on the store's writer thread, where
        every escalation step runs, so no step mixes the old directory with the new."""
        self._config = config
        self._escalation = config.escalation
        self._rota = Rota(config)
        self._sites = {site.id: site for site in config.sites}

    def _note(
        self,
        session: Session,
        now: datetime,
        action: str,
        incident_id: int,
        details: dict[str, Any],
        *,
        actor: str = "escalation",
    ) -> None:
        """One row of the audit trail about this incident's escalation."""
        note: dict[str, Any] = {
            "at": now,
            "actor": actor,
            "action": action,
            "incident_id": incident_id,
            "details": details,
        }
        if self._held_notes is not None:
            self._held_notes.append(note)
        else:
            self._store.audit.append(session, **note)

    @contextmanager
    def _audited_last(self, session: Session) -> Iterator[None]:
        """Append the audit rows of the work inside at its end, just before the commit.

        Appending takes the audit chain's lock until the commit (on PostgreSQL an advisory lock shared by
        every instance's writer), so one row appended at the first of fifty steps would hold every
        instance's alarms behind the rest of the steps' queries. Held back, the rows are appended (in
        their order) after the work, and the lock is held for their inserts and the commit only.
        """
        self._held_notes = []
        try:
            yield
            notes = self._held_notes
        finally:
            self._held_notes = None
        for note in notes:
            self._store.audit.append(session, **note)

    # -- stepping --------------------------------------------------------------------------------------

    def claim_due(self, now: datetime) -> list[PlannedNotification]:
        """Run every escalation step that is due: plan its notifications and set the next timer."""
        planned: list[PlannedNotification] = []
        if not self._anything_due(now):
            # Most polls find nothing: a read takes no write lock, so it never delays an alarm's commit.
            return planned
        with self._store.transaction(durable=False) as session:
            due = session.scalars(
                select(Escalation)
                .where(Escalation.state == "active", Escalation.next_step_at <= now)
                .order_by(Escalation.next_step_at)
                .limit(CLAIM_LIMIT)
                # Several instances poll the same store: each step is claimed by one of them, the others
                # pass over the rows it holds instead of waiting (PostgreSQL; on SQLite, one writer at a
                # time does the same). The step's notifications, its audit rows and its next timer are
                # committed together, so a step is taken once, whoever takes it.
                .with_for_update(skip_locked=True)
            ).all()
            with self._audited_last(session):
                for escalation in due:
                    planned += self._step(session, escalation, now)
        return planned

    def _anything_due(self, now: datetime) -> bool:
        with self._store.reading() as session:
            due = session.scalar(
                select(Escalation.incident_id)
                .where(Escalation.state == "active", Escalation.next_step_at <= now)
                .limit(1)
            )
            return due is not None

    def _step(self, session: Session, escalation: Escalation, now: datetime) -> list[PlannedNotification]:
        incident = session.get(Incident, escalation.incident_id)
        if incident is None or incident.status != IncidentStatus.OPEN.value:
            escalation.state, escalation.stop_reason, escalation.next_step_at = "stopped", "not open", None
            return []
        policy = self._escalation.policy_for(incident.severity, incident.rule, incident.site)
        escalation.policy_id = policy.id
        tier_index = min(escalation.next_tier, len(policy.tiers) - 1)
        tier = policy.tiers[tier_index]
        reached = self._rota.resolve(tier.targets, incident.site, incident.room, now)
        planned = [
            p
            for reach in reached
            for channel in self._channels_for(reach, tier)
            if (p := self._plan(session, incident, escalation.round, tier_index, reach, channel, now))
        ]
        self._note(
            session,
            now,
            "escalation.tier",
            incident.id,
            {
                "policy": policy.id,
                "tier": tier_index + 1,
                "round": escalation.round,
                "contacts": [f"{p.recipient.responder_id}:{p.channel.value}" for p in planned],
            },
        )
        if not reached:
            self._note(session, now, "escalation.no_responder", incident.id, {"tier": tier_index + 1})
        self._advance(session, escalation, policy, tier_index, tier, now, nobody=not planned)
        return planned

    def _channels_for(self, reach: Reach, tier: Tier) -> list[ChannelKind]:
        if reach.webhook is not None:
            return [ChannelKind.WEBHOOK] if reach.webhook in self._escalation.webhooks else []
        responder = reach.responder
        assert responder is not None
        usable = {
            ChannelKind.SMS: responder.phone,
            ChannelKind.VOICE: responder.phone,
            ChannelKind.EMAIL: responder.email,
        }
        return [
            c
            for c in tier.channels
            if c is not ChannelKind.WEBHOOK and c in self._available and usable.get(c)
        ]

    def _advance(
        self,
        session: Session,
        escalation: Escalation,
        policy: Policy,
        tier_index: int,
        tier: Tier,
        now: datetime,
        *,
        nobody: bool,
    ) -> None:
        # Nobody reachable in this tier: fall through at once on the first pass; later passes wait, so an
        # empty rota cannot spin.
        quiet = policy.renotify_s if escalation.round > 1 and policy.renotify_s else tier.wait_s
        wait = timedelta(0) if nobody and escalation.round == 1 else timedelta(seconds=quiet)
        escalation.next_step_at, escalation.updated_at = now + wait, now
        if tier_index + 1 < len(policy.tiers):
            escalation.next_tier = tier_index + 1
            return
        if policy.repeat == "stop":
            escalation.state, escalation.stop_reason, escalation.next_step_at = (
                "exhausted",
                "policy ended",
                None,
            )
            self._note(session, now, "escalation.exhausted", escalation.incident_id, {"policy": policy.id})
            return
        escalation.round += 1
        escalation.next_tier = 0 if policy.repeat == "restart" else tier_index

    def _plan(
        self,
        session: Session,
        incident: Incident,
        round_no: int,
        tier: int,
        reach: Reach,
        channel: ChannelKind,
        now: datetime,
        *,
        about: str | None = None,
    ) -> PlannedNotification | None:
        address = self._address(reach.responder, channel)
        if self._contacted_recently(session, incident.id, reach.id, channel, now):
            return None
        token = secrets.token_urlsafe(24)
        row = Notification(
            incident_id=incident.id,
            tier=tier + 1,
            round=round_no,
            responder_id=reach.id,
            channel=channel.value,
            address=address,
            status="queued",
            attempts=0,
            ack_token=token,
            created_at=now,
            updated_at=now,
            owner=self._store.instance,
            # Handed to its channel as soon as this step commits: from here until its outcome is
            # recorded, an instance that dies leaves it in doubt (`take_over`). Set in the step's own
            # transaction, so marking costs no write of its own.
            attempt_started_at=now,
        )
        session.add(row)
        session.flush()
        return PlannedNotification(
            row.id,
            incident.id,
            channel,
            reach.webhook,
            self._recipient(reach),
            self._summary(incident, about),
            token,
        )

    def notify_outside_policy(
        self, session: Session, incident: Incident, tier: Tier, about: str, now: datetime
    ) -> list[PlannedNotification]:
        """Notifications to `tier`'s targets about `incident`, outside its policy's tiers (recorded as
        tier 0, round 0), worded as `about` (a catalogue rule code) instead of the incident's own alarm
        type: e.g. a device fault handed to the technician on duty once it is overdue (gateway/duty.py).
        Within the caller's transaction; send the result with `Escalator.send`."""
        reached = self._rota.resolve(tier.targets, incident.site, incident.room, now)
        return [
            p
            for reach in reached
            for channel in self._channels_for(reach, tier)
            if (p := self._plan(session, incident, 0, -1, reach, channel, now, about=about))
        ]

    def _contacted_recently(
        self, session: Session, incident_id: int, who: str, channel: ChannelKind, now: datetime
    ) -> bool:
        """One incident never floods a responder: one message per channel per interval at most."""
        since = now - timedelta(seconds=self._escalation.min_interval_per_responder_s)
        found = session.scalar(
            select(Notification.id)
            .where(
                Notification.incident_id == incident_id,
                Notification.responder_id == who,
                Notification.channel == channel.value,
                Notification.created_at > since,
            )
            .limit(1)
        )
        return found is not None

    @staticmethod
    def _address(responder: ResponderConfig | None, channel: ChannelKind) -> str | None:
        if responder is None:
            return None
        return responder.email if channel is ChannelKind.EMAIL else responder.phone

    @staticmethod
    def _recipient(reach: Reach) -> Recipient:
        r = reach.responder
        if r is None:
            return Recipient(responder_id=reach.id, name=reach.id, language="en")
        return Recipient(responder_id=r.id, name=r.name, language=r.language, phone=r.phone, email=r.email)

    def _summary(self, incident: Incident, about: str | None = None) -> AlarmSummary:
        directory = self._store.directory
        site = self._sites.get(incident.site)
        return AlarmSummary(
            incident_id=incident.id,
            rule=about or incident.rule,
            severity=incident.severity,
            site_name=directory.site_name(incident.site),
            room=incident.room,
            resident_name=directory.resident_name(incident.resident),
            opened_at=incident.opened_at,
            trigger_count=incident.trigger_count,
            timezone=site.timezone if site else "UTC",
            site_id=incident.site,
        )

    # -- what channels report --------------------------------------------------------------------------

    def record_deliveries(self, outcomes: Sequence[tuple[int, Delivery, int]], now: datetime) -> None:
        """What channels answered, in one transaction: after a burst of alarms hundreds of sends end
        within moments, and one commit each would hold the writer (and the next steps) behind them."""
        with self._store.transaction(durable=False) as session, self._audited_last(session):
            for notification_id, delivery, attempt in outcomes:
                self._record_one(session, notification_id, delivery, attempt, now)

    def _record_one(
        self, session: Session, notification_id: int, delivery: Delivery, attempt: int, now: datetime
    ) -> None:
        row = session.get(Notification, notification_id)
        if row is None:
            return
        row.attempts = attempt
        row.status = "sent" if delivery.ok else ("retrying" if delivery.retryable else "failed")
        # A retry is coming: its attempt is under way (in doubt) as much as the first was.
        row.attempt_started_at = now if row.status == "retrying" else None
        row.provider_id = delivery.provider_id or row.provider_id
        row.detail, row.updated_at = delivery.detail[:2000], now
        self._note(
            session,
            now,
            "notification.sent" if delivery.ok else "notification.failed",
            row.incident_id,
            {
                "notification": row.id,
                "responder": row.responder_id,
                "channel": row.channel,
                "attempt": attempt,
                "detail": delivery.detail[:300],
            },
        )

    def record_status(self, notification_id: int, status: str, now: datetime) -> bool:
        """A provider's status callback. True when the tier should move on at once (nobody answered)."""
        with self._store.transaction(durable=False) as session:
            row = session.get(Notification, notification_id)
            if row is None:
                return False
            row.status, row.updated_at = status, now
            self._note(
                session,
                now,
                "notification.status",
                row.incident_id,
                {"notification": row.id, "status": status},
                actor=f"provider:{row.channel}",
            )
            if status not in NO_CONTACT:
                return False
            return self._move_on_if_tier_silent(session, row, now)

    def _move_on_if_tier_silent(self, session: Session, row: Notification, now: datetime) -> bool:
        escalation = session.get(Escalation, row.incident_id)
        if escalation is None or escalation.state != "active":
            return False
        calls_pending = session.scalar(
            select(Notification.id)
            .where(
                Notification.incident_id == row.incident_id,
                Notification.round == row.round,
                Notification.tier == row.tier,
                Notification.channel == ChannelKind.VOICE.value,
                Notification.status.in_(IN_FLIGHT),
            )
            .limit(1)
        )
        if calls_pending is not None:
            return False
        escalation.next_step_at, escalation.updated_at = now, now
        self._note(
            session, now, "escalation.moved_on", row.incident_id, {"after": row.status, "tier": row.tier}
        )
        return True

    def token_owner(self, token: str) -> TokenOwner | None:
        with self._store.reading() as session:
            row = session.scalar(select(Notification).where(Notification.ack_token == token))
            return TokenOwner(row.incident_id, row.responder_id, row.channel) if row else None

    def language_of(self, responder_id: str) -> Language:
        return self.configured_language(responder_id) or "en"

    def configured_language(self, responder_id: str) -> Language | None:
        """The responder's language, or None for a webhook or a responder no longer configured."""
        responder = next((r for r in self._config.responders if r.id == responder_id), None)
        return responder.language if responder else None

    def ack_link(self, token: str) -> AckLink | None:
        with self._store.reading() as session:
            row = session.scalar(select(Notification).where(Notification.ack_token == token))
            incident = session.get(Incident, row.incident_id) if row else None
            if row is None or incident is None:
                return None
            owner = TokenOwner(row.incident_id, row.responder_id, row.channel)
            return AckLink(owner, self._summary(incident), incident.status, row.ack_used_at)

    def redeem_ack_link(self, token: str, now: datetime) -> tuple[LinkOutcome, IncidentView | None]:
        """Use an acknowledge link, once: the link is marked used in the acknowledgement's own
        transaction, so two presses (or a replay) cannot both count."""
        with self._store.transaction() as session:
            row = session.scalar(select(Notification).where(Notification.ack_token == token))
            if row is None:
                return "unknown", None
            if row.ack_used_at is not None:
                return "used", None
            row.ack_used_at, row.updated_at = now, now
            actor = f"responder:{row.responder_id} via link"
            view, late = self._store.acknowledge_in(session, row.incident_id, actor)
        return ("late", None) if late else ("acknowledged", view)

    def latest_token_for_phone(self, phone: str) -> str | None:
        """The newest SMS to this number about an incident that is still open or acknowledged."""
        with self._store.reading() as session:
            row = session.scalar(
                select(Notification)
                .join(Incident, Incident.id == Notification.incident_id)
                .where(
                    Notification.address == phone,
                    Notification.channel == ChannelKind.SMS.value,
                    Incident.status != IncidentStatus.RESOLVED.value,
                )
                .order_by(Notification.created_at.desc(), Notification.id.desc())
                .limit(1)
            )
            return row.ack_token if row else None

    def requeue_interrupted(self, now: datetime) -> list[PlannedNotification]:
        """Notifications this instance planned but never finished sending when it stopped: send them
        now. (With no owner: planned before instances had names.)"""
        return self.take_over(now, (self._store.instance,), unowned=True)

    def take_over(
        self, now: datetime, owners: Sequence[str], *, unowned: bool = False
    ) -> list[PlannedNotification]:
        """The unsent notifications of `owners` (this instance after a restart, or dead instances it
        adopted), made this instance's and planned again. One whose attempt had begun when its owner
        stopped may have gone out: it is audited as in doubt, and sent again unless the provider's
        status callback says it went (awaited for `escalation.in_doubt_wait_s`): a responder told twice
        is safer than one never told (docs/scaling.md)."""
        owned = Notification.owner.in_(list(owners))
        with self._store.transaction(durable=False) as session:
            rows = session.scalars(
                select(Notification)
                .join(Incident, Incident.id == Notification.incident_id)
                .where(
                    Notification.status.in_(("queued", "retrying")),
                    or_(owned, Notification.owner.is_(None)) if unowned else owned,
                    or_(
                        Incident.status == IncidentStatus.OPEN.value,
                        # Sent outside the policy (an overdue fault to the technician): an
                        # acknowledged fault is still not fixed.
                        and_(Notification.tier == 0, Incident.status == IncidentStatus.ACKNOWLEDGED.value),
                    ),
                )
                .with_for_update(of=Notification, skip_locked=True)
            ).all()
            return [self._take(session, row, now) for row in rows]

    def _take(self, session: Session, row: Notification, now: datetime) -> PlannedNotification:
        incident = session.get(Incident, row.incident_id)
        assert incident is not None  # joined above
        started = row.attempt_started_at
        if started is not None:
            self._note(
                session,
                now,
                "notification.in_doubt",
                row.incident_id,
                {
                    "notification": row.id,
                    "owner": row.owner,
                    "responder": row.responder_id,
                    "channel": row.channel,
                    "attempt_started_at": started.isoformat(),
                },
            )
        if row.owner != self._store.instance:
            self._note(
                session,
                now,
                "notification.taken_over",
                row.incident_id,
                {"notification": row.id, "from": row.owner, "by": self._store.instance},
            )
        # Still marked: it is handed to a channel again now (cleared when that outcome is recorded).
        row.owner, row.attempt_started_at, row.updated_at = self._store.instance, now, now
        reach = self._reach_of(row.responder_id)
        overdue = row.tier == 0 and session.get(FaultEscalation, incident.id) is not None
        return PlannedNotification(
            row.id,
            row.incident_id,
            ChannelKind(row.channel),
            reach.webhook,
            self._recipient(reach),
            self._summary(incident, FAULT_OVERDUE if overdue else None),
            row.ack_token,
            in_doubt_since=started,
        )

    def found_sent(self, notification_id: int, provider_id: str, now: datetime) -> None:
        """The provider says a notification in doubt did go out: recorded as sent, not sent again."""
        with self._store.transaction(durable=False) as session:
            row = session.get(Notification, notification_id)
            if row is None:
                return
            row.status, row.provider_id, row.attempt_started_at, row.updated_at = (
                "sent",
                provider_id,
                None,
                now,
            )
            self._note(
                session,
                now,
                "notification.in_doubt_found",
                row.incident_id,
                {"notification": row.id, "provider_id": provider_id, "channel": row.channel},
            )

    def settle_in_doubt(self, notification_id: int, now: datetime) -> bool:
        """After the wait: True to send it again; False when the provider reported it meanwhile (its
        status callback was recorded), so it did go out, and once is enough."""
        with self._store.transaction(durable=False) as session:
            row = session.get(Notification, notification_id)
            if row is None:
                return False
            if row.status in ("queued", "retrying"):
                return True
            self._note(
                session,
                now,
                "notification.in_doubt_settled",
                row.incident_id,
                {"notification": row.id, "status": row.status},
            )
            return False

    def _reach_of(self, responder_id: str) -> Reach:
        if responder_id.startswith("webhook:"):
            return Reach(webhook=responder_id.removeprefix("webhook:"))
        responder = next((r for r in self._config.responders if r.id == responder_id), None)
        return Reach(responder=responder) if responder else Reach(webhook=None)

    def notifications(self, incident_id: int) -> list[dict[str, object]]:
        with self._store.reading() as session:
            rows = session.scalars(
                select(Notification).where(Notification.incident_id == incident_id).order_by(Notification.id)
            ).all()
            escalation = session.get(Escalation, incident_id)
            state = escalation.state if escalation else None
            names = {r.id: r.name for r in self._config.responders}
            return [
                {
                    "id": r.id,
                    "tier": r.tier,
                    "round": r.round,
                    "responder": r.responder_id,
                    # Operators read who was called by name; an id no longer configured shows as it is.
                    "responder_name": names.get(r.responder_id, r.responder_id),
                    "channel": r.channel,
                    "status": r.status,
                    "attempts": r.attempts,
                    "created_at": r.created_at.isoformat(),
                    "updated_at": r.updated_at.isoformat(),
                    "detail": r.detail,
                    "escalation_state": state,
                }
                for r in rows
            ]
