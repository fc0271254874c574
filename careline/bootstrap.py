"""The composition root: every part of the gateway is built and wired here, top to bottom.

`bootstrap(config)` is the one way to build a gateway: the CLI, the benchmarks and the tests call it (tests
with their own clock and channels). Building does no I/O: the incident store is migrated, threads start
and the broker is connected only in `Gateway.running()` / `serve()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI

from common.errors import CarelineError
from dashboard.admin_api import admin_bulk_router
from dashboard.api import DashboardContext, create_app
from dashboard.auth import UserStore
from dashboard.broker_credentials import broker_credentials_router
from dashboard.duty_api import duty_router
from dashboard.hub import IncidentHub
from dashboard.pages import pages_router
from dashboard.pairing_api import pairing_router
from dashboard.reassurance_api import reassurance_router
from dashboard.risks_api import risks_router
from dashboard.security import OriginPolicy
from dashboard.throttle import LoginThrottle
from dashboard.unbound import unbound_router
from dashboard.visits_api import visits_router
from devices.model import Lane, RawMessage
from devices.registry import DeviceRegistry
from gateway.alarm_lane import AlarmLane
from gateway.broker import EmbeddedBroker
from gateway.broker_identity.provisioning import broker_identity
from gateway.clock import Clock, SystemClock
from gateway.cluster import Cluster
from gateway.config import CarelineConfig
from gateway.directory import (
    Directory,
    alarm_lane_topics,
    device_registry,
    rule_context,
    telemetry_lane_topics,
    update_rule_context,
)
from gateway.directory.keysafe import KeySafeCipher
from gateway.directory.sections import DirectorySections
from gateway.directory.store import DirectoryStore
from gateway.duty import ConsoleSeat, DutyWatch
from gateway.escalation.escalator import Escalator
from gateway.escalation.model import Channel, ChannelKind
from gateway.escalation.store import EscalationStore
from gateway.escalation.webhooks import WebhookContext, webhook_router
from gateway.escalation.wiring import build_channels, build_webhooks, twilio_auth_token
from gateway.headroom import watched_disks
from gateway.incidents.changes import Change
from gateway.incidents.db import make_engine, setting_up
from gateway.incidents.migrate import upgrade
from gateway.incidents.service import IncidentService
from gateway.incidents.store import ACTIVE, AlarmBatch, IncidentStore
from gateway.incidents.views import IncidentView
from gateway.ingest import MqttLane
from gateway.metrics import Metrics
from gateway.pairing import BridgeListener, PairedDevices
from gateway.reassurance.scheduler import ReassuranceScheduler, scheduler_for
from gateway.reassurance.webhooks import reassurance_webhooks
from gateway.rule_state import TELEMETRY, RuleStateKeeper, count_restore
from gateway.telemetry.reads import SensorLogReader
from gateway.telemetry_lane import DeadLetterItem, DeviceHealth, state_from_wire
from gateway.telemetry_process import TelemetryProcess
from gateway.unbound import Drained, UnboundDevices
from gateway.visits import VisitScheduler, VisitStore
from gateway.visits.tags import DoorTags
from rules import RuleEngine, default_rules
from rules.model import Decision
from rules.state import RestoreReport

log = logging.getLogger(__name__)

#: How often the gateway looks for directory changes committed elsewhere (the CLI, another instance).
DIRECTORY_POLL_S = 2.0
T = TypeVar("T")
#: How long `apply_directory` waits for the telemetry process to take a new directory.
CHILD_TAKES_DIRECTORY_S = 5.0
#: How long /api/readyz waits for the store to answer before calling this instance not ready.
READY_STORE_S = 2.0


def bootstrap(
    config: CarelineConfig,
    *,
    clock: Clock | None = None,
    channels: Mapping[ChannelKind, Channel] | None = None,
    webhooks: Mapping[str, Channel] | None = None,
) -> Gateway:
    """The whole gateway for `config`. Channels default to the configured ones (secrets are read from the
    environment here, once); tests pass their own clock and channels."""
    if config.broker.embedded and config.broker.protocol == "5":
        # amqtt speaks MQTT 3.1.1 only.
        config = config.model_copy(update={"broker": config.broker.model_copy(update={"protocol": "3.1.1"})})
    return Gateway(
        config,
        clock=clock or SystemClock(),
        channels=build_channels(config.escalation) if channels is None else channels,
        webhooks=build_webhooks(config.escalation) if webhooks is None else webhooks,
    )


class Gateway:
    """Every part of one gateway; build it with `bootstrap()`."""

    def __init__(
        self,
        config: CarelineConfig,
        *,
        clock: Clock,
        channels: Mapping[ChannelKind, Channel],
        webhooks: Mapping[str, Channel],
    ) -> None:
        self.config = config
        self.clock = clock
        self.metrics = Metrics()
        self.registry = device_registry(config)
        self.rule_context = rule_context(config)
        self.rules = RuleEngine(default_rules(self.rule_context))
        #: Devices heard but not in the directory, from both lanes (the child's are merged in).
        self.unbound = UnboundDevices(
            counted=lambda lane, profile, n: self.metrics.unbound_messages.labels(lane, profile).inc(n)
        )
        self.metrics.unbound_devices.set_function(lambda: len(self.unbound))
        #: Zigbee devices paired with Zigbee2MQTT, offered for binding (gateway/pairing.py).
        self.paired = PairedDevices(
            now=clock.now, on_refused=lambda reason: self.metrics.zigbee_bridge_refused.labels(reason).inc()
        )
        self.metrics.paired_devices.set_function(lambda: len(self.paired.devices))
        self.bridge = BridgeListener(config.broker, self.paired)
        #: Per-device and per-hub broker logins, kept in step with the directory (docs/broker-identity.md).
        self.broker_identity = broker_identity(config.broker, self.metrics.registry)
        #: Directories applied while running; each apply waits for the one before it.
        self.directory_version = 0
        self._applying = asyncio.Lock()
        self.database = make_engine(config.storage.url, busy_timeout_s=config.storage.busy_timeout_s)
        self.store = IncidentStore(
            self.database,
            Directory(config),
            self.clock.now,
            dead_letters_max=config.storage.dead_letters_max,
            on_evicted=lambda lane, count: self.metrics.dead_letters_evicted.labels(lane).inc(count),
            instance=config.broker.client_id,
        )
        #: Free space where incidents (and the telemetry spool) are written; see gateway/headroom.py.
        self.disks = watched_disks(config)
        for name, disk in self.disks.items():
            self.metrics.disk_free_bytes.labels(name).set_function(disk.free_bytes_gauge)
        self.service = IncidentService(self.store)
        self.users = UserStore(self.database, self.clock.now, config.http.session_hours)
        self.directory = DirectoryStore(
            self.service, config, KeySafeCipher.from_env(config.storage.directory_key_env)
        )
        self.directory.subscribe(self._directory_committed)
        self._directory_revision = -1
        self.hub = IncidentHub()
        self.service.subscribe(self.hub.publish)
        self.device_health = DeviceHealth()
        alarm_inbox: asyncio.Queue[RawMessage] = asyncio.Queue()  # unbounded: alarms are never dropped
        self._alarm_inbox = alarm_inbox
        self.alarm_mqtt = MqttLane(
            config.broker,
            Lane.ALARM,
            self.alarm_topics(),
            alarm_inbox.put_nowait,
            self.metrics,
            share_group=config.cluster.share_group,
        )
        #: Dead peer instances' broker sessions this instance holds (gateway/cluster.py), by instance.
        self.adopted_sessions: dict[str, MqttLane] = {}
        self.alarm_lane = AlarmLane(
            alarm_inbox,
            self.registry,
            self.rules,
            self.service,
            self.metrics,
            self.clock,
            acknowledge=self._acknowledge_alarm,
            telemetry_topics=telemetry_lane_topics(config),
            unbound=self.unbound,
            doors_in_store=config.cluster.shared,
        )
        esc = config.escalation
        # Tiers skip channels that are not configured (audited) rather than failing on them.
        self.escalations = EscalationStore(self.store, config, frozenset(channels))
        self.escalator = Escalator(
            self.escalations,
            self.service,
            channels,
            webhooks,
            self.clock,
            attempts=esc.send_attempts,
            failure_alarm_after=esc.channel_failure_alarm_after,
            in_doubt_wait_s=esc.in_doubt_wait_s,
            on_change=self._escalation_changed,
        )
        self.service.subscribe(self._incidents_changed)
        # Tests and faults as duty (docs/duty.md): test presses told to the tester's page; overdue faults
        # and an unstaffed console watched from the store and the hub's consoles.
        self.service.subscribe_tests(self.hub.publish_test)
        self.duty = DutyWatch(
            self.service,
            self.escalations,
            self.escalator,
            self.clock,
            lambda: self.config,
            self._console_seats,
            self.alarm_lane.commit_decisions,
        )
        # Telemetry, the wellbeing rules and the InfluxDB writer run in a process of their own, so a flood
        # of telemetry cannot hold the interpreter lock or the event loop the alarm lane needs.
        self.telemetry = TelemetryProcess(
            config,
            on_decisions=self._wellbeing_decided,
            on_dead_letters=self._telemetry_dead_letters,
            on_status=self._telemetry_status,
            on_unbound=self._telemetry_unbound,
            on_rule_state_restored=self._telemetry_rule_state_restored,
        )
        #: The rules' state saved in the store and restored at start (gateway/rule_state.py).
        self.rule_state = RuleStateKeeper(
            self.service,
            self.metrics,
            self.rules.rules,
            self.clock.now,
            lambda: self.telemetry.rule_state,
            every_s=config.storage.rule_state_every_s,
            max_age=timedelta(hours=config.storage.rule_state_max_age_h),
            instance=config.broker.client_id if config.cluster.shared else None,
        )
        self.telemetry_status: dict[str, Any] = {}
        #: With `cluster.share_group`: this instance among the others on the same store and broker.
        self.cluster = (
            Cluster(
                config.cluster,
                config.broker.client_id,
                f"{config.broker.client_id}-{Lane.ALARM.value}",
                self.service,
                self.metrics,
                adopt=self._adopt_peer,
                release=self._release_peer,
                changed=self._peer_committed,
                resync=self._resync_screens,
                seats=self.hub.consoles,
            )
            if config.cluster.shared
            else None
        )
        self._telemetry_counted = dict.fromkeys(
            ("received", "dropped", "dead_letters", "left_to_alarm_lane", "spoofed", "disk_refused_points"),
            0.0,
        )
        self.alarm_lane.add_observer(self.telemetry.observe)
        #: Planned home visits (docs/visits.md): the scheduler raises missed visits, door tags check in.
        self.visits = VisitStore(self.store, lambda: self.config)
        self.visit_scheduler = VisitScheduler(
            self.visits, self.service, self.alarm_lane.commit_decisions, self.clock, lambda: self.config
        )
        self.alarm_lane.add_recorder(DoorTags(self.visits, self.service, self.clock).record)
        self._workers: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self.started_at = datetime.now(UTC)
        #: The managers' sensor logs and the incident screen's readings (InfluxQL), when configured.
        self.sensor_log = (
            SensorLogReader.from_config(config.telemetry) if config.telemetry.read_database else None
        )
        self.http: FastAPI = create_app(
            DashboardContext(
                service=self.service,
                users=self.users,
                hub=self.hub,
                metrics=self.metrics,
                devices=self.device_health,
                health=self.health,
                secure_cookies=config.http.secure_cookies,
                session_hours=config.http.session_hours,
                escalations=self.escalations,
                directory=self.directory,
                current_config=lambda: self.config,
                sensor_log=self.sensor_log,
                origins=OriginPolicy(config.http.trusted_origins),
                throttle=LoginThrottle(config.http.login_free_failures, config.http.login_lock_max_s),
                api_docs=config.http.api_docs,
                metrics_enabled=config.http.metrics,
                metrics_token=config.http.metrics_token(),
                readiness=self.readiness,
            )
        )
        #: The daily reassurance calls (gateway/reassurance, docs/reassurance.md).
        self.reassurance: ReassuranceScheduler = scheduler_for(
            self.store, self.service, self.alarm_lane.commit_decisions, clock, lambda: self.config, channels
        )
        hooks = WebhookContext(
            escalator=self.escalator,
            escalations=self.escalations,
            service=self.service,
            public_url=esc.public_url,
            twilio_auth_token=twilio_auth_token(esc),
            metrics=self.metrics,
            voices={str(k): v for k, v in esc.twilio.voices.items()} if esc.twilio else {},
            inbound_sms=self.reassurance.inbound_sms,
        )
        self.http.include_router(webhook_router(hooks))
        self.http.include_router(reassurance_webhooks(hooks, self.reassurance))
        self.http.include_router(reassurance_router(self.service, lambda: self.config, self.clock.now))

        self.http.include_router(unbound_router(self.unbound))
        self.http.include_router(
            pairing_router(self.paired, self.unbound, lambda: self.registry, lambda: self.bridge.connected)
        )
        self.http.include_router(pages_router())
        self.http.include_router(admin_bulk_router())
        self.http.include_router(broker_credentials_router(self.broker_identity, lambda: self.config.broker))
        self.http.include_router(duty_router())
        self.http.include_router(risks_router(self.telemetry.observe))
        self.http.include_router(visits_router(self.visits, self.service, lambda: self.config, self.clock))

    # -- the directory, applied live -------------------------------------------------------------------

    async def apply_directory(self, sections: DirectorySections) -> None:
        """Put `sections` in force while the gateway runs, with no restart and no alarm lost or held up.

        Validated as a whole first: `ConfigError` lists every problem and nothing changes. Then, in this
        order, so an alarm accepted under the new directory finds everything it needs: the store's display
        names and the escalation rota (on the store's writer thread, between two commits), the device
        registry and the rules' facts (in one step on the event loop, between two alarm batches; the
        rules keep their timers and per-resident state), the telemetry child (its inbox), and the alarm
        lane's exact Zigbee2MQTT subscriptions. It returns once the broker has confirmed the new ones and
        the telemetry child has taken the directory (each waited for a few seconds at most, and logged if
        late), so a device added can raise alarms when it returns. Applies run one at a time, in call
        order; a cancelled caller does not stop one half-way."""
        async with self._applying:
            # Off the event loop: validating thousands of devices takes long enough to delay an alarm.
            prepared = await asyncio.to_thread(self._prepare_directory, sections)
            await asyncio.shield(self._spawn_task(self._put_in_force(*prepared)))

    def _prepare_directory(
        self, sections: DirectorySections
    ) -> tuple[CarelineConfig, DeviceRegistry, Directory, str]:
        config = sections.applied_to(self.config)
        return config, device_registry(config), self.store.directory.updated(config), config.model_dump_json()

    async def _put_in_force(
        self, config: CarelineConfig, registry: DeviceRegistry, names: Directory, config_json: str
    ) -> None:
        if self.service.started:
            await self.service.write(self._use_in_store, config, names)
        else:
            self._use_in_store(config, names)
        # From here to the next await: nothing else runs on the loop, so no alarm batch sees half of it.
        self.config = config
        self.registry = registry
        self.alarm_lane.use(registry)
        update_rule_context(self.rule_context, config, at=self.clock.now())
        self.unbound.forget_bound(registry)
        self.directory_version += 1
        self.telemetry.apply(config_json, self.directory_version)
        self.metrics.directory_applied.inc()
        self.visit_scheduler.wake()  # plans changed: the coming week's visits follow now
        if self.broker_identity is not None:
            # Only woken: the broker's logins follow in the background, never holding up this change.
            self.broker_identity.changed()
        for adopted in self.adopted_sessions.values():
            self._spawn(adopted.follow(self.alarm_topics()))
        subscribed, child_took = await asyncio.gather(
            self.alarm_mqtt.follow(self.alarm_topics()),
            self.telemetry.taken(self.directory_version, limit_s=CHILD_TAKES_DIRECTORY_S),
        )
        if not subscribed and self.alarm_mqtt.connected.is_set():
            log.error(
                "the broker did not confirm the alarm lane's new subscriptions; they follow on reconnect"
            )
        if not child_took and self.telemetry.alive:
            log.error("the telemetry process has not taken directory %d yet", self.directory_version)
        log.info(
            "directory %d applied: %d sites, %d residents, %d devices",
            self.directory_version,
            len(config.sites),
            len(config.residents),
            len(config.devices),
        )

    async def _directory_committed(self, sections: DirectorySections) -> None:
        """A change made through this gateway (pages, API): in force before the request is answered, so a
        pendant pressed the moment the installer has saved it is accepted."""
        try:
            await self.apply_directory(sections)
        except Exception:
            # Validated as a whole before it was committed; refused here only by a bug. The follower
            # tries the stored directory again at its next look.
            log.exception("a committed directory change could not be put in force")
            self._directory_revision = -1

    async def _follow_directory(self) -> None:
        """Changes committed elsewhere (`careline directory import` on this machine, another gateway
        instance) reach this one within `DIRECTORY_POLL_S`."""
        while True:
            await asyncio.sleep(DIRECTORY_POLL_S)
            try:
                revision = await self.service.read(self.directory.revision)
                if revision != self._directory_revision:
                    await self.apply_directory(await self.service.read(self.directory.load))
                    self._directory_revision = revision
            except Exception:
                log.exception("could not follow the directory; trying again")

    def _use_in_store(self, config: CarelineConfig, names: Directory) -> None:
        """On the store's writer thread, where commits and escalation steps run."""
        self.store.directory = names
        self.escalations.use(config)

    def _telemetry_unbound(self, drained: Drained) -> None:
        self.unbound.merge(drained, self.registry)

    # -- reactions ---------------------------------------------------------------------------------------

    def _incidents_changed(self, views: Sequence[IncidentView]) -> None:
        if any(view.status == "open" and view.trigger_count == 1 for view in views):
            self.escalator.wake()  # first contact at once, not at the next poll

    def _escalation_changed(self, incident_id: int) -> None:
        task = asyncio.get_running_loop().create_task(self._push_escalation(incident_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _push_escalation(self, incident_id: int) -> None:
        notifications = await self.service.read(self.escalations.notifications, incident_id)
        site = await self.service.read(self.service.store.site_of, incident_id)
        if site is not None:
            self.hub.publish_escalation(incident_id, site, notifications)

    # -- several instances (gateway/cluster.py) ----------------------------------------------------------

    def _acknowledge_alarm(self, raw: RawMessage) -> None:
        """On the session the alarm came through: this instance's own, or an adopted peer's."""
        lane = self.adopted_sessions.get(raw.via) if raw.via else self.alarm_mqtt
        if lane is not None:
            lane.ack(raw)
        # Else that session was handed back already; its owner gets the alarm again and the store
        # recognises it (a redelivery).

    async def _adopt_peer(self, peer: str) -> None:
        """A dead peer's alarms: connect its session here; its unsent notifications: send them here."""
        assert self.cluster is not None  # called by it
        broker = self.config.broker.model_copy(update={"client_id": peer})
        lane = MqttLane(
            broker,
            Lane.ALARM,
            self.alarm_topics(),
            self._alarm_inbox.put_nowait,
            self.metrics,
            share_group=self.config.cluster.share_group,
            via=peer,
            on_taken_over=lambda: self.cluster.stepped_aside(peer) if self.cluster else None,
        )
        self.adopted_sessions[peer] = lane
        lane.start()
        if self.config.escalation.enabled:
            taken = await self.escalator.take_over([peer])
            log.warning("adopted instance %s: its broker session and %d unsent notifications", peer, taken)

    def _release_peer(self, peer: str) -> None:
        lane = self.adopted_sessions.pop(peer, None)
        if lane is not None:
            lane.stop()
            log.info("instance %s's broker session released", peer)

    async def _peer_committed(self, change: Change) -> None:
        """Another instance's commit: this instance's screens see it as if it had been made here."""
        if change.incidents:
            views = await self.service.read(self.store.incidents_with_ids, change.incidents)
            self.hub.publish(views)
        for incident_id in change.notifications:
            await self._push_escalation(incident_id)

    async def _resync_screens(self) -> None:
        """After the change feed was lost for a moment: every active incident again (screens upsert)."""
        self.hub.publish(await self.service.read(self.store.incidents, ACTIVE))

    def _console_seats(self) -> list[ConsoleSeat]:
        """Consoles open on this instance and, with several, on the others (their last heartbeat)."""
        peers = self.cluster.peer_seats if self.cluster is not None else ()
        return [*self.hub.consoles(), *peers]

    async def readiness(self) -> list[str]:
        reasons = []
        if not self.alarm_mqtt.connected.is_set():
            reasons.append("alarm lane not connected to the broker")
        try:
            async with asyncio.timeout(READY_STORE_S):
                await self.service.read(self.store.active_count)
        except Exception as exc:
            reasons.append(f"incident store unreachable: {type(exc).__name__}")
        if self.cluster is not None and not self.cluster.joined:
            reasons.append("not joined to the cluster yet")
        return reasons

    def alarm_topics(self) -> list[str]:
        return alarm_lane_topics(self.config, self.registry)

    def health(self) -> dict[str, Any]:
        lanes = {
            Lane.ALARM.value: "connected" if self.alarm_mqtt.connected.is_set() else "disconnected",
            Lane.TELEMETRY.value: "connected" if self.telemetry.connected.is_set() else "disconnected",
        }
        reasons = [f"{lane} lane disconnected" for lane, state in lanes.items() if state != "connected"]
        reasons += self._alarm_path_problems()
        return {
            "telemetry": self.telemetry_status.get("writer"),
            "status": "degraded" if reasons else "ok",
            "reasons": reasons,
            "broker": lanes,
            "alarm_queue": self.alarm_lane.waiting(),
            "started_at": self.started_at.isoformat(),
            # Low disk leaves the status alone: incidents are still committed, and a restart would not help.
            "disk": {name: disk.report() for name, disk in self.disks.items()},
        }

    def _alarm_path_problems(self) -> list[str]:
        """An alarm that cannot be committed, or waits too long for it, makes the gateway degraded."""
        problems = []
        if self.alarm_lane.store_error is not None:
            problems.append(f"alarm commits failing: {self.alarm_lane.store_error}")
        waited = self.alarm_lane.uncommitted_wait_s(datetime.now(UTC))
        limit = self.config.http.health_max_alarm_wait_s
        if waited > limit:
            problems.append(f"an alarm has waited {waited:.1f} s to be committed (limit {limit:g} s)")
        return problems

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Gateway]:
        """Broker (if embedded), both MQTT lanes and the lane workers; the HTTP server is separate."""
        async with contextlib.AsyncExitStack() as stack:
            self.open_store()
            self.service.start()
            stack.callback(self.close)
            if self.sensor_log is not None:
                # Its keep-alive connections to InfluxDB (the incident screen reads a device's last day)
                # are closed with the gateway, not left to the garbage collector.
                stack.push_async_callback(self.sensor_log.aclose)
            # The database is the directory (the file only seeded it): in force before any alarm arrives.
            self._directory_revision = await self.service.read(self.directory.revision)
            stored = await self.service.read(self.directory.load)
            if stored != DirectorySections.of(self.config):
                await self.apply_directory(stored)
            if self.config.broker.embedded:
                await stack.enter_async_context(EmbeddedBroker(self.config.broker.embedded_port))
            # The rules' state from before the restart, in force before any event (with the directory
            # of the store, so the state of residents and devices that left is dropped).
            stored_state = await self.rule_state.load()
            self.rule_state.restore_alarm_lane(stored_state)
            self.telemetry.restore_from(stored_state.get(TELEMETRY))
            # Runs after the child stopped: its final snapshot is saved with the alarm lane's.
            stack.push_async_callback(self.rule_state.save)
            # Registered first, so it runs last: the child flushes or spools what it was handed.
            self.telemetry.start(asyncio.get_running_loop())
            stack.callback(self.telemetry.stop)
            tasks = [
                asyncio.create_task(coro, name=name)
                for name, coro in (
                    ("alarm-lane", self.alarm_lane.run()),
                    ("alarm-timers", self.alarm_lane.run_timers()),
                    ("telemetry-supervisor", self.telemetry.supervise()),
                    ("rule-state", self.rule_state.run()),
                    ("directory-follower", self._follow_directory()),
                    ("zigbee2mqtt-bridge", self.bridge.run()),
                    ("duty", self.duty.run()),
                    ("visits", self.visit_scheduler.run()),
                    *self._broker_identity_task(),
                    *([("escalation", self.escalator.run())] if self.config.escalation.enabled else []),
                    ("reassurance", self.reassurance.run()),
                )
            ]
            if self.cluster is not None:
                # Registered (and no longer adopted by a peer) before this instance takes any alarm.
                await self.cluster.join()
                tasks += self._cluster_tasks(self.cluster)
                tasks.append(asyncio.create_task(self.alarm_lane.run_door_reports(), name="door-reports"))
                # Runs after the lanes stopped: peers adopt this instance's session at once.
                stack.push_async_callback(self.cluster.leave)
                stack.callback(self._release_every_peer)
            self._workers = tasks
            stack.callback(self._stop_tasks, tasks)
            self.alarm_mqtt.start()
            stack.callback(self.alarm_mqtt.stop)
            # What lives now (imported libraries, the app, the directory: ~160k objects) lives as long as
            # the gateway. Frozen, a full garbage collection no longer walks it: unfrozen it costs ~100 ms
            # on this machine, stalling the alarm lane whenever allocation (an applied directory, a burst)
            # triggers one (docs/benchmarks.md).
            gc.freeze()
            stack.callback(gc.unfreeze)
            yield self

    def _cluster_tasks(self, cluster: Cluster) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(cluster.run(), name="cluster"),
            asyncio.create_task(cluster.follow_changes(self.config.storage.url), name="cluster-changes"),
        ]

    def _release_every_peer(self) -> None:
        for peer in list(self.adopted_sessions):
            self._release_peer(peer)

    def _broker_identity_task(self) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        identity = self.broker_identity
        if identity is None:
            return []

        async def devices() -> tuple[Any, ...]:
            return self.config.devices

        return [("broker-identity", identity.run(devices, self.config.broker.identity.reconcile_s))]

    def open_store(self) -> None:
        """Bring the incident store to the newest schema and, on first start, seed the directory from the
        configuration file (idempotent; also run by `running`)."""
        with setting_up(self.database):
            upgrade(self.database)
            self.directory.seed(self.config)

    # -- what the telemetry process reports back (on the event loop) -------------------------------------

    def _wellbeing_decided(self, decisions: list[Decision]) -> None:
        # With several instances each one's telemetry process hears all telemetry and decides alike.
        self._spawn(self.alarm_lane.commit_decisions(decisions, replicated=self.config.cluster.shared))

    def _telemetry_rule_state_restored(self, report: dict[str, Any]) -> None:
        count_restore(self.metrics, TELEMETRY, RestoreReport(tuple(report["restored"]), report["ignored"]))
        self.metrics.baseline_seeded_residents.inc(report.get("seeded", 0))

    def _telemetry_dead_letters(self, letters: list[DeadLetterItem]) -> None:
        database = self.disks.get("database")
        if database is not None and database.short():
            # The space left is the incidents'; telemetry gives way first.
            self.metrics.disk_refused.labels("telemetry_dead_letters").inc(len(letters))
            return
        self._spawn(self.service.apply(AlarmBatch(dead_letters=letters)))

    def _telemetry_status(self, status: dict[str, Any]) -> None:
        self.telemetry_status = status
        states = (state_from_wire(wire) for wire in status["devices"])
        self.device_health.devices = {state.device_id: state for state in states}
        for name, counter in (
            ("received", self.metrics.messages_received.labels("telemetry")),
            ("dropped", self.metrics.telemetry_dropped),
            ("dead_letters", self.metrics.dead_letters.labels("telemetry")),
            ("left_to_alarm_lane", self.metrics.telemetry_left_to_alarm_lane),
            ("spoofed", self.metrics.spoofed.labels("telemetry")),
            ("disk_refused_points", self.metrics.disk_refused.labels("telemetry_spool_points")),
        ):
            # The child's counters restart with it: count only growth.
            counter.inc(max(0.0, status[name] - self._telemetry_counted[name]))
            self._telemetry_counted[name] = status[name]
        self.metrics.queue_depth.labels("telemetry").set(status["queue_depth"])
        self.metrics.telemetry_lag.set(status["lag_s"])

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        self._spawn_task(work)

    def _spawn_task(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    @staticmethod
    def _stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()

    async def wait_connected(self, limit_s: float = 15.0) -> None:
        async with asyncio.timeout(limit_s):
            await self.alarm_mqtt.connected.wait()
            await self.telemetry.connected.wait()

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        """Run everything until `stop` is set (or the HTTP server exits, e.g. on SIGTERM)."""
        server = uvicorn.Server(
            uvicorn.Config(
                self.http,
                host=self.config.http.host,
                port=self.config.http.port,
                log_level="warning",
                lifespan="off",
                timeout_graceful_shutdown=5,
            )
        )
        async with self.running():
            serving = asyncio.create_task(server.serve())
            stopping = asyncio.create_task(stop.wait()) if stop else None
            waiters = [serving, *self._workers] + ([stopping] if stopping else [])
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            server.should_exit = True
            await serving
            if stopping is not None:
                stopping.cancel()
        for worker in done & set(self._workers):
            # A lane worker never ends on its own: stop the process loudly so a supervisor restarts it
            # (the broker redelivers whatever was not committed) instead of running without a lane.
            exc = worker.exception()
            log.critical("%s stopped: %r", worker.get_name(), exc)
            raise CarelineError(f"{worker.get_name()} stopped: {exc!r}")

    def close(self) -> None:
        self.service.close()
        self.database.dispose()
