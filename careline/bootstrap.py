"""The composition root: every part of the gateway is built and wired here, top to bottom.

`bootstrap(config)` is the one way to build a gateway: the CLI, the benchmarks and the tests call it (tests
with their own clock and channels). Building does no I/O: the incident store is migrated, threads start
and the broker is connected only in `Gateway.running()` / `serve()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI

from common.errors import CarelineError
from dashboard.api import DashboardContext, create_app
from dashboard.auth import UserStore
from dashboard.hub import IncidentHub
from devices.model import Lane, RawMessage
from gateway.alarm_lane import AlarmLane
from gateway.broker import EmbeddedBroker
from gateway.clock import Clock, SystemClock
from gateway.config import CarelineConfig
from gateway.directory import Directory, device_registry, rule_context
from gateway.directory.keysafe import KeySafeCipher
from gateway.directory.store import DirectoryStore
from gateway.escalation.engine import EscalationEngine
from gateway.escalation.model import Channel, ChannelKind
from gateway.escalation.store import EscalationStore
from gateway.escalation.webhooks import WebhookContext, webhook_router
from gateway.escalation.wiring import build_channels, build_webhooks, twilio_auth_token
from gateway.incidents.db import make_engine
from gateway.incidents.migrate import upgrade
from gateway.incidents.service import IncidentService
from gateway.incidents.store import AlarmBatch, IncidentStore
from gateway.incidents.views import IncidentView
from gateway.ingest import MqttLane
from gateway.metrics import Metrics
from gateway.telemetry.reads import SensorLogReader
from gateway.telemetry_lane import DeadLetterItem, DeviceHealth, DeviceState
from gateway.telemetry_process import TelemetryProcess
from rules import RuleEngine, default_rules
from rules.model import Decision

log = logging.getLogger(__name__)


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
        self.rules = RuleEngine(default_rules(rule_context(config)))
        self.database = make_engine(config.storage.url, busy_timeout_s=config.storage.busy_timeout_s)
        self.store = IncidentStore(self.database, Directory(config), self.clock.now)
        self.service = IncidentService(self.store)
        self.users = UserStore(self.database, self.clock.now, config.http.session_hours)
        self.directory = DirectoryStore(
            self.service, config, KeySafeCipher.from_env(config.storage.directory_key_env)
        )
        self.hub = IncidentHub()
        self.service.subscribe(self.hub.publish)
        self.device_health = DeviceHealth()
        alarm_inbox: asyncio.Queue[RawMessage] = asyncio.Queue()  # unbounded: alarms are never dropped
        self.alarm_mqtt = MqttLane(
            config.broker, Lane.ALARM, self.alarm_topics(), alarm_inbox.put_nowait, self.metrics
        )
        self.alarm_lane = AlarmLane(
            alarm_inbox,
            self.registry,
            self.rules,
            self.service,
            self.metrics,
            self.clock,
            acknowledge=self.alarm_mqtt.ack,
            telemetry_topics=config.broker.telemetry_topics,
        )
        esc = config.escalation
        # Tiers skip channels that are not configured (audited) rather than failing on them.
        self.escalations = EscalationStore(self.store, config, frozenset(channels))
        self.escalation = EscalationEngine(
            self.escalations,
            self.service,
            channels,
            webhooks,
            self.clock,
            attempts=esc.send_attempts,
            failure_alarm_after=esc.channel_failure_alarm_after,
            on_change=self._escalation_changed,
        )
        self.service.subscribe(self._incidents_changed)
        # Telemetry, the wellbeing rules and the InfluxDB writer run in a process of their own, so a flood
        # of telemetry cannot hold the interpreter lock or the event loop the alarm lane needs.
        self.telemetry = TelemetryProcess(
            config,
            on_decisions=self._wellbeing_decided,
            on_dead_letters=self._telemetry_dead_letters,
            on_status=self._telemetry_status,
        )
        self.telemetry_status: dict[str, Any] = {}
        self._telemetry_counted = {"received": 0.0, "dropped": 0.0, "dead_letters": 0.0}
        self.alarm_lane.add_observer(self.telemetry.observe)
        self._workers: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self.started_at = datetime.now(UTC)
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
                sensor_log=SensorLogReader.from_config(config.telemetry)
                if config.telemetry.read_database
                else None,
            )
        )
        self.http.include_router(
            webhook_router(
                WebhookContext(
                    engine=self.escalation,
                    escalations=self.escalations,
                    service=self.service,
                    public_url=esc.public_url,
                    twilio_auth_token=twilio_auth_token(esc),
                    voices={str(k): v for k, v in esc.twilio.voices.items()} if esc.twilio else {},
                )
            )
        )

    def _incidents_changed(self, views: Sequence[IncidentView]) -> None:
        if any(view.status == "open" and view.trigger_count == 1 for view in views):
            self.escalation.wake()  # first contact at once, not at the next poll

    def _escalation_changed(self, incident_id: int) -> None:
        task = asyncio.get_running_loop().create_task(self._push_escalation(incident_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _push_escalation(self, incident_id: int) -> None:
        notifications = await self.service.read(self.escalations.notifications, incident_id)
        self.hub.publish_escalation(incident_id, notifications)

    def alarm_topics(self) -> list[str]:
        return [*self.config.broker.alarm_topics, *self.registry.zigbee2mqtt_alarm_topics()]

    def health(self) -> dict[str, Any]:
        lanes = {
            Lane.ALARM.value: "connected" if self.alarm_mqtt.connected.is_set() else "disconnected",
            Lane.TELEMETRY.value: "connected" if self.telemetry.connected.is_set() else "disconnected",
        }
        ok = all(state == "connected" for state in lanes.values())
        return {
            "telemetry": self.telemetry_status.get("writer"),
            "status": "ok" if ok else "degraded",
            "broker": lanes,
            "alarm_queue": self.alarm_lane.waiting(),
            "started_at": self.started_at.isoformat(),
        }

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Gateway]:
        """Broker (if embedded), both MQTT lanes and the lane workers; the HTTP server is separate."""
        async with contextlib.AsyncExitStack() as stack:
            self.open_store()
            self.service.start()
            stack.callback(self.close)
            if self.config.broker.embedded:
                await stack.enter_async_context(EmbeddedBroker(self.config.broker.embedded_port))
            # Registered first, so it runs last: the child flushes or spools what it was handed.
            self.telemetry.start(asyncio.get_running_loop())
            stack.callback(self.telemetry.stop)
            tasks = [
                asyncio.create_task(coro, name=name)
                for name, coro in (
                    ("alarm-lane", self.alarm_lane.run()),
                    ("alarm-timers", self.alarm_lane.run_timers()),
                    ("telemetry-supervisor", self.telemetry.supervise()),
                    *([("escalation", self.escalation.run())] if self.config.escalation.enabled else []),
                )
            ]
            self._workers = tasks
            stack.callback(self._stop_tasks, tasks)
            self.alarm_mqtt.start()
            stack.callback(self.alarm_mqtt.stop)
            yield self

    def open_store(self) -> None:
        """Bring the incident store to the newest schema and, on first start, seed the directory from the
        configuration file (idempotent; also run by `running`)."""
        upgrade(self.database)
        self.directory.seed(self.config)

    # -- what the telemetry process reports back (on the event loop) -------------------------------------

    def _wellbeing_decided(self, decisions: list[Decision]) -> None:
        self._spawn(self.alarm_lane.commit_decisions(decisions))

    def _telemetry_dead_letters(self, letters: list[DeadLetterItem]) -> None:
        self._spawn(self.service.apply(AlarmBatch(dead_letters=letters)))

    def _telemetry_status(self, status: dict[str, Any]) -> None:
        self.telemetry_status = status
        self.device_health.devices = {d["device_id"]: DeviceState(**d) for d in status["devices"]}
        for name, counter in (
            ("received", self.metrics.messages_received.labels("telemetry")),
            ("dropped", self.metrics.telemetry_dropped),
            ("dead_letters", self.metrics.dead_letters.labels("telemetry")),
        ):
            # The child's counters restart with it: count only growth.
            counter.inc(max(0.0, status[name] - self._telemetry_counted[name]))
            self._telemetry_counted[name] = status[name]
        self.metrics.queue_depth.labels("telemetry").set(status["queue_depth"])
        self.metrics.telemetry_lag.set(status["lag_s"])

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

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
