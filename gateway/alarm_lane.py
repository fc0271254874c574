"""The alarm lane: broker → decode → rules → durable incident → broker ack → dashboard push.

Messages are taken in small batches (whatever arrived while the last commit ran) so one fsync covers
many alarms under load, while a lone SOS is committed the moment it arrives. Acknowledgement to the
broker happens only after the commit: a crash before that makes the broker redeliver.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from paho.mqtt.client import topic_matches_sub
from sqlalchemy.exc import OperationalError

from devices.decode import decode
from devices.model import (
    DecodeError,
    DeviceEvent,
    Lane,
    RawMessage,
    SpoofedMessageError,
    UnboundDeviceError,
)
from devices.registry import DeviceRegistry
from gateway.clock import Clock
from gateway.incidents.doors import DOOR_KINDS
from gateway.incidents.service import IncidentService
from gateway.incidents.store import AlarmBatch, BatchResult, RuledDecision
from gateway.metrics import Metrics
from gateway.unbound import UnboundDevices
from rules.engine import RuleEngine
from rules.model import Decision

log = logging.getLogger(__name__)

MAX_BATCH = 200
DOOR_REPORTS_EVERY_S = 0.25
#: Door reports kept while the store refuses them; the newest matter (older ones change nothing).
DOOR_REPORTS_KEPT = 10_000
TIMER_PERIOD_S = 1.0
_RETRY_MAX_S = 5.0


def may_be_redelivery(raw: RawMessage, event: DeviceEvent) -> bool:
    """Whether to look for an earlier copy before counting this event. Native Careline events carry a
    device-made id, so a copy is always recognisable; content-keyed events (Zigbee2MQTT has no id, and
    a native alarm read without a usable `event_id` is keyed `careline-content:`) are only compared
    when the broker marks the delivery as a resend, or a second identical press would be swallowed."""
    return raw.duplicate or event.message_key.startswith("careline:")


class AlarmLane:
    def __init__(
        self,
        inbox: asyncio.Queue[RawMessage],
        registry: DeviceRegistry,
        rules: RuleEngine,
        service: IncidentService,
        metrics: Metrics,
        clock: Clock,
        *,
        acknowledge: Callable[[RawMessage], None],
        telemetry_topics: Sequence[str] = (),
        unbound: UnboundDevices | None = None,
        doors_in_store: bool = False,
    ) -> None:
        #: Several instances share the alarm lane: door reports are kept in the store, where each
        #: instance's door rules are checked against all of them (gateway/incidents/doors.py).
        self._doors_in_store = doors_in_store
        #: Door reports not yet written; written together every DOOR_REPORTS_EVERY_S as bookkeeping, so a
        #: busy building's doors never put a commit of their own before an SOS.
        self._door_reports: list[DeviceEvent] = []
        #: Filled by the alarm lane's MQTT client; unbounded, because alarms are never dropped.
        self._inbox = inbox
        self._acknowledge = acknowledge
        self._registry = registry
        #: Telemetry sinks (device health, wellbeing rules, the InfluxDB writer) also hear the alarm lane's
        #: events, after the commit, unless the telemetry lane receives the same topic anyway.
        self._observers: list[Callable[[Sequence[DeviceEvent]], None]] = []
        #: Handlers of events that are records, not alarms (a visit tag's check-in): awaited after the
        #: commit and before the broker's ack, so a crash makes the broker redeliver them.
        self._recorders: list[Callable[[Sequence[DeviceEvent]], Awaitable[None]]] = []
        self._telemetry_topics = tuple(telemetry_topics)
        self._rules = rules
        #: Messages from devices the directory does not hold are counted there, not dead-lettered.
        self.unbound = unbound if unbound is not None else UnboundDevices()
        self._service = service
        self._metrics = metrics
        self._clock = clock
        #: Why the incident store refused the last commit, until a commit succeeds (health shows it).
        self.store_error: str | None = None
        # Receipt time of the oldest message being handled; the queue is FIFO, so nothing waits longer.
        self._oldest_in_hand: datetime | None = None

    def uncommitted_wait_s(self, now: datetime) -> float:
        """How long the oldest alarm message not yet committed has waited since it was received."""
        oldest = self._oldest_in_hand
        return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0

    def use(self, registry: DeviceRegistry) -> None:
        """Decode with `registry` from the next batch on. A batch is decoded and ruled in one step on the
        event loop, so each message sees one directory, never half of two."""
        self._registry = registry

    def add_observer(self, observer: Callable[[Sequence[DeviceEvent]], None]) -> None:
        self._observers.append(observer)

    def add_recorder(self, recorder: Callable[[Sequence[DeviceEvent]], Awaitable[None]]) -> None:
        self._recorders.append(recorder)

    def waiting(self) -> int:
        """Alarm messages received and not yet taken for a commit."""
        return self._inbox.qsize()

    async def run(self) -> None:
        while True:
            messages = [await self._inbox.get()]
            while len(messages) < MAX_BATCH and not self._inbox.empty():
                messages.append(self._inbox.get_nowait())
            self._metrics.messages_received.labels("alarm").inc(len(messages))
            self._metrics.queue_depth.labels("alarm").set(self._inbox.qsize())
            await self.handle(messages)

    async def run_door_reports(self) -> None:
        """With several instances: the door reports of the last moment, written in one transaction."""
        while True:
            await asyncio.sleep(DOOR_REPORTS_EVERY_S)
            reports, self._door_reports = self._door_reports, []
            if not reports:
                continue
            try:
                await self._service.bookkeeping(self._service.store.record_doors, reports)
            except Exception:
                # Kept for the next round: a door rule meanwhile trusts its own reports.
                log.exception("door reports could not be written; trying again")
                self._door_reports[:0] = reports[-DOOR_REPORTS_KEPT:]

    async def run_timers(self) -> None:
        while True:
            await asyncio.sleep(TIMER_PERIOD_S)
            await self.tick()

    async def tick(self) -> None:
        await self.commit_decisions(self._rules.tick(self._clock.now()))

    async def commit_decisions(self, decisions: Sequence[Decision], *, replicated: bool = False) -> None:
        """Decisions made outside a message (timers, the wellbeing rules): committed like any alarm.
        `replicated`: every instance makes them (see RuledDecision)."""
        if decisions:
            await self._commit(
                AlarmBatch(
                    [RuledDecision(d, check_duplicate=False, replicated=replicated) for d in decisions]
                )
            )

    async def handle(self, messages: list[RawMessage]) -> BatchResult:
        self._oldest_in_hand = min((raw.received_at for raw in messages), default=None)
        try:
            batch, decoded = self._rule(messages)
            result = await self._commit(batch) if batch else BatchResult()
            await self._record(decoded)
        finally:
            self._oldest_in_hand = None
        committed = datetime.now(UTC)
        for raw in messages:
            self._acknowledge(raw)
            self._metrics.alarm_latency.observe((committed - raw.received_at).total_seconds())
        self._metrics.alarm_batch_size.observe(len(messages))
        self._tell_observers(decoded)
        return result

    async def _record(self, decoded: list[tuple[str, list[DeviceEvent]]]) -> None:
        events = [event for _, batch in decoded for event in batch]
        for recorder in self._recorders if events else ():
            try:
                await recorder(events)
            except Exception:
                log.exception("alarm-lane recorder %r failed", recorder)

    def _tell_observers(self, decoded: list[tuple[str, list[DeviceEvent]]]) -> None:
        """After the commit and the acks, so none of this delays an alarm."""
        if not self._observers:
            return
        events = [e for topic, batch in decoded if not self._heard_on_telemetry_lane(topic) for e in batch]
        if not events:
            return
        for observer in self._observers:
            try:
                observer(events)
            except Exception:
                log.exception("alarm-lane observer %r failed", observer)

    def _heard_on_telemetry_lane(self, topic: str) -> bool:
        return any(topic_matches_sub(pattern, topic) for pattern in self._telemetry_topics)

    def _rule(self, messages: list[RawMessage]) -> tuple[AlarmBatch, list[tuple[str, list[DeviceEvent]]]]:
        batch = AlarmBatch()
        decoded: list[tuple[str, list[DeviceEvent]]] = []
        now = self._clock.now()
        for raw in messages:
            if raw.retained:
                # A retained message is a device's last state replayed on subscribe, not a new alarm.
                self._metrics.alarm_retained_ignored.inc()
                continue
            try:
                events = decode(raw, self._registry)
            except UnboundDeviceError as exc:
                self.unbound.record(raw, exc)
                continue
            except DecodeError as exc:
                batch.dead_letters.append((raw, exc.reason, exc.device_id))
                self._metrics.dead_letters.labels("alarm").inc()
                if isinstance(exc, SpoofedMessageError):
                    self._metrics.spoofed.labels("alarm").inc()
                continue
            decoded.append((raw.topic, events))
            self._count_faults(events)
            for event in events:
                if self._doors_in_store and event.kind in DOOR_KINDS:
                    self._door_reports.append(event)
                if event.is_alarm_kind:
                    check = may_be_redelivery(raw, event)
                    batch.decisions.extend(RuledDecision(d, check) for d in self._rules.handle(event, now))
        return batch, decoded

    def _count_faults(self, events: Sequence[DeviceEvent]) -> None:
        """One count per message whose alarm was read despite faults in it."""
        faulty = next((e for e in events if e.faults and e.is_alarm_kind), None)
        if faulty is not None:
            binding = self._registry.by_id(faulty.device_id)
            self._metrics.alarms_with_faults.labels(binding.profile if binding else "unknown").inc()

    async def _commit(self, batch: AlarmBatch) -> BatchResult:
        delay = 0.05
        while True:
            try:
                result = await self._service.apply(batch)
            except OperationalError as exc:
                # The store is locked or unreachable: wait and retry; the broker keeps the messages.
                self._metrics.store_failures.inc()
                self.store_error = str(exc.orig)
                log.error("incident store unavailable, retrying in %.2fs: %s", delay, exc.orig)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            except Exception:
                log.exception(
                    "incident store rejected a batch of %d; committing one by one",
                    len(batch.decisions) + len(batch.dead_letters),
                )
                self._metrics.store_failures.inc()
                return await self._commit_one_by_one(batch)
            self.store_error = None
            self._count(result)
            return result

    def _count(self, result: BatchResult) -> None:
        self._metrics.duplicates.inc(result.duplicates)
        self._metrics.device_tests.inc(result.tested)
        for view in result.changed:
            if view.trigger_count == 1 and view.status == "open":
                self._metrics.incidents_opened.labels(view.rule).inc()

    async def _commit_one_by_one(self, batch: AlarmBatch) -> BatchResult:
        """Isolate what the store refuses (a bug, not an outage) so it cannot block every later alarm;
        what is refused is kept as a dead letter for inspection."""
        total = BatchResult()
        singles = [AlarmBatch(decisions=[d]) for d in batch.decisions]
        singles += [AlarmBatch(dead_letters=[letter]) for letter in batch.dead_letters]
        for single in singles:
            try:
                result = await self._service.apply(single)
            except Exception as exc:
                log.critical("incident store refused %s", single, exc_info=True)
                await self._keep_refused(single, exc)
                continue
            self._count(result)
            total.changed += result.changed
            total.duplicates += result.duplicates
            total.tested += result.tested
        return total

    async def _keep_refused(self, single: AlarmBatch, exc: Exception) -> None:
        try:
            await self._service.apply(AlarmBatch(dead_letters=[_refused(single, exc)]))
        except Exception:
            # Nothing left to write it to: the log line above is the record.
            log.critical("could not keep the refused item as a dead letter either", exc_info=True)


def _refused(single: AlarmBatch, exc: Exception) -> tuple[RawMessage, str, str | None]:
    if single.dead_letters:
        raw, reason, device_id = single.dead_letters[0]
        return raw, f"{reason}; store refused: {exc}", device_id
    event = single.decisions[0].decision.event
    raw = RawMessage(
        topic=f"(decision {single.decisions[0].decision.rule})",
        payload=repr(event).encode(),
        received_at=event.received_at,
        lane=Lane.ALARM,
    )
    return raw, f"store refused the decision: {exc}", event.device_id
