"""Several gateway instances on one PostgreSQL store and one broker (docs/scaling.md).

What the instances share, and how, without a cluster of our own:
- **Alarms**: every instance's alarm lane subscribes through one MQTT v5 shared subscription
  (`$share/<group>/…`); the broker gives each alarm to one of them. Each alarm is one incident
  whichever instance takes it: the store's unique keys decide, not timing (gateway/incidents/store.py).
- **A dead instance's alarms**: the broker keeps the alarms it had sent to the dead instance, and with a
  persistent session it goes on queueing that instance's share of new ones (MQTT 5 lets a server wait
  for the client to come back; Mosquitto 2 does). So a live instance *adopts* the dead one's session:
  it connects with the dead instance's client id, receives what was waiting and what keeps coming, and
  steps aside when the instance returns and takes its session back.
- **Liveness**: each instance writes a heartbeat row (`gateway_instances`) with the database's clock, so
  machines' clocks never decide who is dead. A peer silent for `cluster.peer_timeout_s` is adopted by one
  live instance, chosen by a row lock (`FOR UPDATE SKIP LOCKED`).
- **Escalations**: due steps are claimed with `SELECT … FOR UPDATE SKIP LOCKED` by whichever instance
  polls first (gateway/escalation/store.py); the adopter sends what the dead instance had planned.
- **Consoles**: each heartbeat carries the consoles open on its instance, so every instance's duty watch
  knows a site is watched even when its operator's screen is on another instance.
- **Screens**: each commit notifies its changed incidents with `pg_notify` in the same transaction
  (gateway/incidents/changes.py); every instance LISTENs and pushes them to its own screens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from gateway.config import ClusterConfig
from gateway.duty import ConsoleSeat
from gateway.incidents.changes import CHANNEL, Change, parse
from gateway.incidents.schema import GatewayInstance
from gateway.incidents.service import IncidentService
from gateway.incidents.store import IncidentStore
from gateway.metrics import Metrics

log = logging.getLogger(__name__)

#: A departed instance's heartbeat: long before any live one's, so its peers adopt it at once.
_LEFT = datetime(2000, 1, 1, tzinfo=UTC)
_LISTEN_RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class Survey:
    """What one look at the instances table decided for this instance."""

    #: Dead peers this instance has adopted (newly or before): their sessions should be connected here.
    adopted: tuple[str, ...]
    alive: int
    #: The consoles open on the other live instances.
    peer_seats: tuple[ConsoleSeat, ...] = ()


def seats_to_json(seats: Sequence[ConsoleSeat]) -> list[Any]:
    return [[seat.user, sorted(seat.scope) if seat.scope is not None else None] for seat in seats]


def seats_from_json(stored: Any) -> list[ConsoleSeat]:
    """What a peer wrote; anything unreadable is left out (a peer of another version, say)."""
    seats = []
    for item in stored if isinstance(stored, list) else ():
        if isinstance(item, list) and len(item) == 2 and isinstance(item[0], str):
            scope = item[1]
            if scope is None or (isinstance(scope, list) and all(isinstance(s, str) for s in scope)):
                seats.append(ConsoleSeat(item[0], frozenset(scope) if scope is not None else None))
    return seats


def _db_now(session: Session) -> datetime:
    """The database's clock: instances on machines whose clocks differ agree on who is silent."""
    now = session.scalar(select(func.now()))
    if not isinstance(now, datetime):
        raise TypeError(f"the database's now() gave {now!r}")
    return now


def register(store: IncidentStore, instance: str, alarm_client_id: str) -> None:
    """This instance is (back) up: its heartbeat is fresh and nobody adopts it any more."""
    with store.transaction(durable=False) as session:
        row = session.get(GatewayInstance, instance, with_for_update=True)
        now = _db_now(session)
        if row is None:
            row = GatewayInstance(instance=instance, alarm_client_id=alarm_client_id, consoles=[])
            session.add(row)
        row.alarm_client_id, row.started_at, row.heartbeat_at = alarm_client_id, now, now
        row.adopted_by, row.adopted_at = None, None


def beat(store: IncidentStore, instance: str, seats: Sequence[ConsoleSeat] = ()) -> None:
    with store.transaction(durable=False) as session:
        row = session.get(GatewayInstance, instance)
        if row is not None:
            row.heartbeat_at, row.consoles = _db_now(session), seats_to_json(seats)


def leave(store: IncidentStore, instance: str) -> None:
    """A clean stop: the broker keeps queueing this instance's share of alarms in its session while it
    is away, so its peers should adopt it now, not after the timeout."""
    with store.transaction(durable=False) as session:
        row = session.get(GatewayInstance, instance)
        if row is not None:
            row.heartbeat_at = _LEFT


def survey(store: IncidentStore, instance: str, timeout_s: float) -> Survey:
    """Adopt the dead peers nobody alive has adopted; report the ones this instance holds."""
    with store.transaction(durable=False) as session:
        now = _db_now(session)
        every = session.scalars(select(GatewayInstance)).all()
        alive = {row.instance for row in every if (now - row.heartbeat_at).total_seconds() < timeout_s}
        orphans = [
            row.instance
            for row in every
            if row.instance not in alive and row.instance != instance and row.adopted_by not in alive
        ]
        # Locked one by one and skipped when another instance holds the lock: two survivors never
        # both adopt one session (they would take it from each other at the broker).
        for name in orphans:
            row = session.scalar(
                select(GatewayInstance)
                .where(GatewayInstance.instance == name)
                .with_for_update(skip_locked=True)
                # Read again under the lock: another survivor may have adopted it since the look above.
                .execution_options(populate_existing=True)
            )
            if row is not None and row.adopted_by not in alive:
                row.adopted_by, row.adopted_at = instance, now
                log.warning("gateway instance %s is silent: %s adopts its broker session", name, instance)
        session.flush()
        adopted = tuple(
            row.instance for row in every if row.adopted_by == instance and row.instance not in alive
        )
        seats = (
            seat
            for row in every
            if row.instance in alive and row.instance != instance
            for seat in seats_from_json(row.consoles)
        )
        return Survey(adopted, len(alive | {instance}), tuple(seats))


class Cluster:
    """Heartbeat, adoption of dead peers' sessions and work, and the other instances' commits."""

    def __init__(
        self,
        config: ClusterConfig,
        instance: str,
        alarm_client_id: str,
        service: IncidentService,
        metrics: Metrics,
        *,
        adopt: Callable[[str], Awaitable[None]],
        release: Callable[[str], None],
        changed: Callable[[Change], Awaitable[None]],
        resync: Callable[[], Awaitable[None]],
        seats: Callable[[], list[ConsoleSeat]] = list,
    ) -> None:
        #: This instance's open consoles, written with each heartbeat.
        self._seats = seats
        #: The other live instances' consoles at the last look (for the duty watch).
        self.peer_seats: tuple[ConsoleSeat, ...] = ()
        self._config = config
        self.instance = instance
        self._alarm_client_id = alarm_client_id
        self._service = service
        self._metrics = metrics
        self._adopt, self._release = adopt, release
        self._changed, self._resync = changed, resync
        #: Peers whose sessions this instance holds now.
        self.adopted: set[str] = set()
        self.joined = False

    async def join(self) -> None:
        await self._service.bookkeeping(register, self._service.store, self.instance, self._alarm_client_id)
        self.joined = True

    async def leave(self) -> None:
        await self._service.bookkeeping(leave, self._service.store, self.instance)

    async def run(self) -> None:
        while True:
            try:
                await self._service.bookkeeping(beat, self._service.store, self.instance, self._seats())
                found = await self._service.bookkeeping(
                    survey, self._service.store, self.instance, self._config.peer_timeout_s
                )
                await self._follow(found)
            except Exception:
                # The store may be away for a moment; the next beat tries again (and peers wait
                # `peer_timeout_s` before deciding this instance is dead).
                log.exception("cluster heartbeat failed; trying again")
            await asyncio.sleep(self._config.heartbeat_s)

    async def _follow(self, found: Survey) -> None:
        self._metrics.cluster_peers_alive.set(found.alive)
        self.peer_seats = found.peer_seats
        for peer in sorted(set(found.adopted) - self.adopted):
            self.adopted.add(peer)
            await self._adopt(peer)
        for peer in sorted(self.adopted - set(found.adopted)):
            self.stepped_aside(peer)
        self._metrics.cluster_adopted_sessions.set(len(self.adopted))

    def stepped_aside(self, peer: str) -> None:
        """The peer is back (or another instance holds it): its session is its own again."""
        if peer in self.adopted:
            self.adopted.discard(peer)
            self._release(peer)
            self._metrics.cluster_adopted_sessions.set(len(self.adopted))

    async def follow_changes(self, url: str) -> None:
        """LISTEN to every instance's commits; push the others' to this instance's screens. After a
        lost connection the screens get every active incident again, in case a notification was missed."""
        import psycopg  # only with a PostgreSQL store

        conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    if not first:
                        await self._resync()
                    first = False
                    async for notification in connection.notifies():
                        await self._take(notification.payload)
            except (psycopg.Error, OSError) as exc:
                log.warning("lost the store's change feed (%s); listening again", exc)
                await asyncio.sleep(_LISTEN_RETRY_S)

    async def _take(self, payload: str) -> None:
        change = parse(payload)
        if change is None:
            log.warning("an unreadable change notification was ignored: %r", payload[:200])
            return
        if change.instance == self.instance:
            return  # this instance's screens were told after its own commit
        self._metrics.cluster_changes_followed.inc()
        try:
            await self._changed(change)
        except Exception:
            log.exception("could not push another instance's change to the screens")
