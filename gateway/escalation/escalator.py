"""The escalator: due steps → notifications → channels, until somebody acknowledges.

A pipeline of small stages, in order: claim due steps (rota lookup, de-duplicate and rate-limit per
responder, next timer — one transaction) → send each notification in its own task with retries → record
the outcome → report a channel that keeps failing as a technical alarm. A hanging channel only ever holds
its own task: other incidents and the alarm lane never wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from devices.model import DeviceEvent, DeviceType, EventKind
from gateway.clock import Clock
from gateway.escalation.model import Channel, ChannelKind, Delivery, Notification, SentLookup
from gateway.escalation.store import CLAIM_LIMIT, EscalationStore, LinkOutcome, PlannedNotification
from gateway.incidents.service import IncidentService
from gateway.incidents.store import AlarmBatch, IncidentConflictError, RuledDecision
from rules.model import AlarmDecision, Severity

log = logging.getLogger(__name__)

POLL_S = 0.5
RETRY_BASE_S = 1.0
#: A send that outlives its channel's own timeout by this much is abandoned (and retried).
SEND_GUARD_S = 30.0
#: The rule name of the technical alarm raised for a channel that keeps failing.
CHANNEL_FAILING_RULE = "channel_failing"


class _Outcomes:
    """Channels' answers, recorded in batches: one write in flight at a time, and the answers that arrive
    meanwhile go in the next. Alone, an answer is written at once; after a burst of alarms, hundreds of
    sends end within moments and share a few commits instead of holding the writer for one each."""

    def __init__(self, service: IncidentService, store: EscalationStore, clock: Clock) -> None:
        self._service, self._store, self._clock = service, store, clock
        self._pending: list[tuple[tuple[int, Delivery, int], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, notification_id: int, delivery: Delivery, attempt: int) -> None:
        """Returns once it is committed (raises what the commit raised)."""
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(((notification_id, delivery, attempt), answered))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        await answered

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._service.bookkeeping(
                    self._store.record_deliveries, [outcome for outcome, _ in batch], self._clock.now()
                )
            except Exception as exc:
                for _, answered in batch:
                    if not answered.done():
                        answered.set_exception(exc)
            else:
                for _, answered in batch:
                    if not answered.done():
                        answered.set_result(None)


class Escalator:
    def __init__(
        self,
        store: EscalationStore,
        service: IncidentService,
        channels: Mapping[ChannelKind, Channel],
        webhooks: Mapping[str, Channel],
        clock: Clock,
        *,
        attempts: int = 3,
        failure_alarm_after: int = 5,
        in_doubt_wait_s: float = 15.0,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        self._in_doubt_wait_s = in_doubt_wait_s
        self._store = store
        self._service = service
        self._channels = dict(channels)
        self._webhooks = dict(webhooks)
        self._clock = clock
        self._attempts = attempts
        self._failure_alarm_after = failure_alarm_after
        self._on_change = on_change or (lambda _incident_id: None)
        self._wake = asyncio.Event()
        self._outcomes = _Outcomes(service, store, clock)
        self._sending: set[asyncio.Task[None]] = set()
        self._consecutive_failures: dict[str, int] = defaultdict(int)

    def wake(self) -> None:
        """Run due steps now (a new incident must not wait for the next poll)."""
        self._wake.set()

    async def run(self) -> None:
        self._dispatch(await self._service.bookkeeping(self._store.requeue_interrupted, self._clock.now()))
        while True:
            if len(await self.run_due()) >= CLAIM_LIMIT:
                continue  # more are due (a burst of alarms): the next batch now, not after the poll
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_S):
                    await self._wake.wait()
            self._wake.clear()

    async def take_over(self, owners: Sequence[str]) -> int:
        """Send what dead instances (adopted by this one) had planned and not sent; returns how many."""
        planned = await self._service.bookkeeping(self._store.take_over, self._clock.now(), owners)
        self._dispatch(planned)
        for incident_id in {p.incident_id for p in planned}:
            self._on_change(incident_id)
        return len(planned)

    async def run_due(self) -> list[PlannedNotification]:
        planned = await self._service.bookkeeping(self._store.claim_due, self._clock.now())
        self._dispatch(planned)
        for incident_id in {p.incident_id for p in planned}:
            self._on_change(incident_id)
        return planned

    def send(self, planned: list[PlannedNotification]) -> None:
        """Send notifications planned outside the policy's steps (gateway/duty.py), each in its own task
        with retries, like a step's; the screens are told of them."""
        self._dispatch(planned)
        for incident_id in {p.incident_id for p in planned}:
            self._on_change(incident_id)

    async def drain(self) -> None:
        """Wait for every send under way (tests, shutdown)."""
        while self._sending:
            await asyncio.gather(*list(self._sending), return_exceptions=True)

    def _dispatch(self, planned: list[PlannedNotification]) -> None:
        for item in planned:
            task = asyncio.create_task(self._deliver(item), name=f"notify-{item.notification_id}")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _deliver(self, item: PlannedNotification) -> None:
        channel = self._webhooks.get(item.webhook or "") if item.webhook else self._channels.get(item.channel)
        notification = Notification(
            item.notification_id, item.incident_id, item.recipient, item.alarm, item.ack_token
        )
        if item.in_doubt_since is not None and await self._went_out(item, channel, notification):
            self._on_change(item.incident_id)
            return
        for attempt in range(1, self._attempts + 1):
            delivery = await self._send_once(channel, replace(notification, attempt=attempt))
            await self._outcomes.record(item.notification_id, delivery, attempt)
            self._on_change(item.incident_id)
            await self._track_channel_health(item, delivery)
            if delivery.ok or not delivery.retryable:
                return
            await asyncio.sleep(RETRY_BASE_S * 2 ** (attempt - 1))

    async def _went_out(
        self, item: PlannedNotification, channel: Channel | None, notification: Notification
    ) -> bool:
        """A notification a dead instance had handed to its channel (docs/cluster.md): first the
        provider's status callback is given time to arrive; then, where the provider can be asked
        (Twilio SMS), it is asked. True when it did go out, so it is not sent twice."""
        since = item.in_doubt_since
        if since is None:
            return False
        await asyncio.sleep(self._in_doubt_wait_s)
        now = self._clock.now()
        if not await self._service.bookkeeping(self._store.settle_in_doubt, item.notification_id, now):
            return True
        if not isinstance(channel, SentLookup):
            return False
        found = await channel.sent_since(notification, since)
        if found is None:
            return False
        await self._service.bookkeeping(
            self._store.found_sent, item.notification_id, found, self._clock.now()
        )
        return True

    async def _send_once(self, channel: Channel | None, notification: Notification) -> Delivery:
        if channel is None:
            return Delivery(ok=False, retryable=False, detail="channel not configured")
        try:
            async with asyncio.timeout(SEND_GUARD_S):
                return await channel.send(notification)
        except TimeoutError:
            return Delivery(ok=False, retryable=True, detail="channel did not answer in time")
        except Exception as exc:
            # Channels should not raise; one that does must not take the escalation down with it.
            log.exception("channel %s raised", channel)
            return Delivery(ok=False, retryable=True, detail=f"channel error: {exc!r}")

    async def _track_channel_health(self, item: PlannedNotification, delivery: Delivery) -> None:
        name = (item.webhook and f"webhook:{item.webhook}") or item.channel.value
        if delivery.ok:
            self._consecutive_failures[name] = 0
            return
        self._consecutive_failures[name] += 1
        if self._consecutive_failures[name] == self._failure_alarm_after:
            await self._raise_channel_alarm(name, item, delivery)

    async def _raise_channel_alarm(self, name: str, item: PlannedNotification, delivery: Delivery) -> None:
        now = self._clock.now()
        event = DeviceEvent(
            device_id=f"channel:{name}",
            device_type=DeviceType.OTHER,
            site=item.alarm.site_id,
            room=None,
            resident=None,
            kind=EventKind.AVAILABILITY,
            value=False,
            ts=now,
            received_at=now,
            message_key=f"channel-failing:{name}:{now.isoformat()}",
        )
        decision = AlarmDecision(
            CHANNEL_FAILING_RULE,
            Severity.MEDIUM,
            f"{CHANNEL_FAILING_RULE}:{name}",
            event,
            {"channel": name, "last_error": delivery.detail[:200]},
        )
        log.error(
            "channel %s failed %d times in a row: raising a technical alarm", name, self._failure_alarm_after
        )
        await self._service.apply(AlarmBatch([RuledDecision(decision, check_duplicate=False)]))
        self.wake()

    # -- acknowledgements from responders --------------------------------------------------------------

    async def acknowledge_by_token(self, token: str, via: str) -> str:
        """'acknowledged', 'late' (already resolved: recorded, not lost) or 'unknown'."""
        owner = await self._service.read(self._store.token_owner, token)
        if owner is None:
            return "unknown"
        try:
            await self._service.acknowledge(owner.incident_id, f"responder:{owner.responder_id} via {via}")
        except IncidentConflictError:
            return "late"
        return "acknowledged"

    async def acknowledge_by_link(self, token: str) -> LinkOutcome:
        """The button on an acknowledge link's page: works once per link."""
        outcome, view = await self._service.write(self._store.redeem_ack_link, token, self._clock.now())
        if view is not None:
            self._service.announce([view])
        return outcome

    async def provider_status(self, notification_id: int, status: str) -> None:
        if await self._service.bookkeeping(
            self._store.record_status, notification_id, status, self._clock.now()
        ):
            self.wake()
