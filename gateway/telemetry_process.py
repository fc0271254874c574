"""The telemetry lane in a process of its own.

Telemetry is where the volume is: parsing thousands of MQTT messages a second, decoding, the wellbeing
rules and the InfluxDB writer. In the gateway's process they would compete with the alarm lane for the one
interpreter lock and the one event loop (measured in docs/benchmarks.md), so they run here instead. What
comes back to the gateway is small: the wellbeing rules' decisions (committed through the alarm lane),
dead letters (kept in the incident store), and a status snapshot every second (device health, counters,
the writer's state). The gateway sends the alarm lane's events in, so signs of life and the sensor log
include them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.context import SpawnProcess
from typing import Any, NoReturn

from devices.model import DeviceEvent, Lane
from gateway.clock import Clock, SystemClock
from gateway.config import CarelineConfig
from gateway.directory import (
    active_devices,
    alarm_lane_topics,
    device_registry,
    rule_context,
    telemetry_lane_topics,
    update_rule_context,
)
from gateway.ingest import MqttLane
from gateway.metrics import Metrics
from gateway.telemetry.history import signs_of_life
from gateway.telemetry.reads import SensorLogReader, TelemetryQueryError
from gateway.telemetry.writer import create_writer
from gateway.telemetry_lane import DeadLetterItem, DeviceHealth, TelemetryLane, state_to_wire
from gateway.unbound import Drained, UnboundDevices
from gateway.wellbeing import WellbeingMonitor
from rules import Rule, RuleContext, RuleEngine
from rules.model import Decision
from rules.state import RestoreReport, parsed, restore_rules, snapshot_rules
from rules.wellbeing import ActivityBaselineRule, wellbeing_rules
from rules.wellbeing.config import DeviceHealthConfig

log = logging.getLogger(__name__)

STATUS_PERIOD_S = 1.0
DECISIONS, DEAD_LETTERS, STATUS = "decisions", "dead_letters", "status"
#: How often the child looks whether the gateway that started it is still its parent.
PARENT_WATCH_PERIOD_S = 0.5
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

#: Unbound devices heard since the last report; the directory version the child has taken.
UNBOUND, DIRECTORY = "unbound", "directory"
#: The wellbeing rules' snapshot (every `storage.rule_state_every_s` and at the end); what the child's
#: restore took and ignored, and how many residents' baselines it seeded from the sensor log.
RULE_STATE, RULE_STATE_RESTORED = "rule_state", "rule_state_restored"


@dataclass(frozen=True)
class DirectoryUpdate:
    """Sent down the inbox when the directory is applied live: the whole configuration with the new
    directory in it (validated by the gateway), and its version."""

    version: int
    config_json: str


# -- the child process ---------------------------------------------------------------------------------


def telemetry_main(
    config_json: str,
    inbox: Any,
    outbox: Any,
    parent_pid: int,
    directory_version: int = 0,
    rule_state_json: str | None = None,
) -> None:
    """Entry point of the child process."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s telemetry %(name)s: %(message)s"
    )
    # httpx logs every write request at INFO: one line a second says nothing an operator needs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    die_with_parent(parent_pid)
    config = CarelineConfig.model_validate_json(config_json)
    yield_to_alarms(config.broker.telemetry_nice)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _run_child(
                config,
                inbox,
                outbox,
                directory_version,
                parsed(rule_state_json) if rule_state_json is not None else None,
            )
        )


def yield_to_alarms(nice: int) -> None:
    """Run at a lower CPU priority than the gateway, whose alarm lane must not wait behind telemetry."""
    if nice and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:
            log.warning("could not lower the telemetry process's priority by %d", nice)


def die_with_parent(parent_pid: int) -> None:
    """Never outlive the gateway. An orphan stays connected under the client id the restarted gateway's
    own child uses, and the broker evicts one for the other every second; it also keeps writing."""
    _set_parent_death_signal()
    start_parent_watch(parent_pid)


def _set_parent_death_signal() -> None:
    """Linux: the kernel sends SIGKILL to this process when its parent dies (SIGKILL and OOM kills
    included). It fires when the parent's thread that started the child ends; the gateway starts it
    from its event loop's thread, which lives as long as the gateway does."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        failed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0
    except (OSError, AttributeError):
        failed = True
    if failed:
        log.warning("no parent-death signal (prctl failed); watching the gateway's pid instead")


def start_parent_watch(parent_pid: int, period_s: float = PARENT_WATCH_PERIOD_S) -> None:
    """The portable fallback: once the parent is gone this process is re-parented, so its ppid changes.
    The first look is immediate, which also covers a parent that died before the death signal was set."""
    threading.Thread(
        target=_watch_parent, args=(parent_pid, period_s), daemon=True, name="parent-watch"
    ).start()


def _watch_parent(parent_pid: int, period_s: float) -> NoReturn:
    while os.getppid() == parent_pid:
        time.sleep(period_s)
    log.critical("the gateway (pid %d) is gone; the telemetry process ends with it", parent_pid)
    # At once, as the death signal would: nobody reads the outbox any more, so a graceful exit could
    # block on it.
    os._exit(1)


async def _run_child(
    config: CarelineConfig, inbox: Any, outbox: Any, directory_version: int = 0, rule_state: Any = None
) -> None:
    loop = asyncio.get_running_loop()
    clock, metrics = SystemClock(), Metrics()

    async def send_decisions(decisions: Sequence[Decision]) -> None:
        outbox.put((DECISIONS, list(decisions)))

    async def send_dead_letters(letters: list[DeadLetterItem]) -> None:
        outbox.put((DEAD_LETTERS, letters))

    context = rule_context(config)
    # The context follows the directory applied live, so a site's new battery threshold counts at once.
    health = DeviceHealth(
        lambda site: (
            context.site(site).wellbeing.device_health if context.has_site(site) else DeviceHealthConfig()
        )
    )
    rules = wellbeing_rules(
        context, lambda site: context.site(site).wellbeing, clock.now(), devices=active_devices(config)
    )
    registry = device_registry(config)
    # Before any event: the rules (and the device board) go on from where the last process left them.
    kept: list[object] = [*rules, health]
    restored = _restore(kept, rule_state, config, clock)
    outbox.put(
        (RULE_STATE_RESTORED, {"restored": list(restored.restored), "ignored": dict(restored.ignored)})
    )
    health.forget_unbound(registry)
    wellbeing = WellbeingMonitor(RuleEngine(rules), send_decisions, clock)
    # The writer's refusals become the lane's dead letters (`lane` is bound below, before any event).
    writer = create_writer(
        config.telemetry,
        on_refused=lambda event, reason: lane.keep_refused_event(event, reason),
        min_free_bytes=config.storage.min_free_bytes,
    )
    sinks = [s for s in (health, wellbeing, writer) if s is not None]
    lane = TelemetryLane(
        registry,
        send_dead_letters,
        metrics,
        config.broker.telemetry_queue_max,
        sinks,
        alarm_topics=alarm_lane_topics(config, registry),
    )
    topics = telemetry_lane_topics(config)
    mqtt = MqttLane(config.broker, Lane.TELEMETRY, topics, lane.submit, metrics, batch_sink=lane.submit_many)
    stopped = asyncio.Event()
    directory = _ChildDirectory(lane, context, health, clock, outbox)
    directory.taken(directory_version)
    threading.Thread(target=_read_inbox, args=(inbox, loop, sinks, directory, stopped), daemon=True).start()
    workers = [
        lane.run(),
        lane.flush_dead_letters_forever(),
        wellbeing.run(),
        _report(outbox, metrics, health, writer, mqtt),
        _report_unbound(outbox, lane.unbound),
        _report_rule_state(outbox, kept, clock, config.storage.rule_state_every_s),
        _seed_baseline(outbox, config, rules, clock),
    ]
    if writer is not None:
        workers.append(writer.run())
    tasks = [asyncio.create_task(w) for w in workers]
    mqtt.start()
    try:
        await stopped.wait()
    finally:
        mqtt.stop()
        for task in tasks:
            task.cancel()
        # The last word on the rules' state, for a clean restart.
        outbox.put((RULE_STATE, json.dumps(snapshot_rules(kept, clock.now()))))
        await lane.flush_dead_letters()
        if writer is not None:
            await writer.close()


def _restore(rules: list[object], snapshot: Any, config: CarelineConfig, clock: Clock) -> RestoreReport:
    if snapshot is None:
        return RestoreReport()
    max_age = timedelta(hours=config.storage.rule_state_max_age_h)
    return restore_rules(rules, snapshot, clock.now(), max_age=max_age)


async def _report_rule_state(outbox: Any, rules: list[object], clock: Clock, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        outbox.put((RULE_STATE, json.dumps(snapshot_rules(rules, clock.now()))))


async def _seed_baseline(outbox: Any, config: CarelineConfig, rules: list[Rule], clock: Clock) -> None:
    """Residents whose activity baseline has no history (nothing restored) get one from the sensor log.
    In the background: it only replaces history, never today's counts, so events may flow meanwhile."""
    baseline = next((rule for rule in rules if isinstance(rule, ActivityBaselineRule)), None)
    residents = baseline.without_history() if baseline is not None else []
    if baseline is None or not residents or config.telemetry.read_database is None:
        return
    now = clock.now()
    days = max(baseline.history_days(resident) for resident in residents)
    try:
        async with SensorLogReader.from_config(config.telemetry) as reader:
            read = await signs_of_life(
                reader, sorted({r.site for r in residents}), now - timedelta(days=days + 1), now
            )
        seeded = baseline.seed_from_signs(read.events, clock.now())
    except TelemetryQueryError as exc:
        log.warning("the activity baseline could not be seeded from the sensor log: %s", exc)
        return
    except Exception:
        log.exception("the activity baseline could not be seeded from the sensor log")
        return
    log.info(
        "activity baseline seeded for %d residents from %d signs of life (%d queries, %.2f s)",
        len(seeded),
        len(read.events),
        read.queries,
        read.seconds,
    )
    outbox.put((RULE_STATE_RESTORED, {"restored": [], "ignored": {}, "seeded": len(seeded)}))


class _ChildDirectory:
    """The child's side of the directory applied live: its registry, rule context and device health."""

    def __init__(
        self, lane: TelemetryLane, context: RuleContext, health: DeviceHealth, clock: Clock, outbox: Any
    ) -> None:
        self._lane, self._context, self._health, self._clock, self._outbox = (
            lane,
            context,
            health,
            clock,
            outbox,
        )

    def apply(self, version: int, config: CarelineConfig) -> None:
        """On the child's event loop, between two chunks of telemetry: every message is decoded and
        ruled under one directory. The rules keep their state; devices no longer bound leave the
        device-health list."""
        registry = device_registry(config)
        self._lane.use(registry, alarm_lane_topics(config, registry))
        update_rule_context(self._context, config, at=self._clock.now())
        self._health.forget_unbound(registry)
        self.taken(version)

    def taken(self, version: int) -> None:
        self._outbox.put((DIRECTORY, version))


def _read_inbox(
    inbox: Any,
    loop: asyncio.AbstractEventLoop,
    sinks: list[Callable[[Sequence[DeviceEvent]], None]],
    directory: _ChildDirectory,
    stopped: asyncio.Event,
) -> None:
    while (item := inbox.get()) is not None:
        if isinstance(item, DirectoryUpdate):
            # Parsed on this thread, so the event loop only swaps references.
            config = CarelineConfig.model_validate_json(item.config_json)
            loop.call_soon_threadsafe(directory.apply, item.version, config)
        else:
            loop.call_soon_threadsafe(_feed, sinks, item)
    loop.call_soon_threadsafe(stopped.set)


async def _report_unbound(outbox: Any, unbound: UnboundDevices) -> None:
    while True:
        await asyncio.sleep(STATUS_PERIOD_S)
        drained = unbound.drain()
        if drained:
            outbox.put((UNBOUND, drained.to_wire()))


def _feed(sinks: list[Callable[[Sequence[DeviceEvent]], None]], events: Sequence[DeviceEvent]) -> None:
    for sink in sinks:
        try:
            sink(events)
        except Exception:
            log.exception("telemetry sink %r failed", sink)


async def _report(outbox: Any, metrics: Metrics, health: DeviceHealth, writer: Any, mqtt: MqttLane) -> None:
    while True:
        await asyncio.sleep(STATUS_PERIOD_S)
        outbox.put(
            (
                STATUS,
                {
                    "connected": mqtt.connected.is_set(),
                    "received": metrics.messages_received.labels("telemetry")._value.get(),
                    "dropped": metrics.telemetry_dropped._value.get(),
                    "dead_letters": metrics.dead_letters.labels("telemetry")._value.get(),
                    "left_to_alarm_lane": metrics.telemetry_left_to_alarm_lane._value.get(),
                    "spoofed": metrics.spoofed.labels("telemetry")._value.get(),
                    "disk_refused_points": writer.disk_refused_points if writer is not None else 0,
                    "queue_depth": metrics.queue_depth.labels("telemetry")._value.get(),
                    "lag_s": metrics.telemetry_lag._value.get(),
                    "devices": [state_to_wire(state) for state in health.devices.values()],
                    "writer": writer.status() if writer is not None else None,
                },
            )
        )


# -- the gateway's side ---------------------------------------------------------------------------------


class TelemetryProcess:
    """Starts the child, carries events in and results out, and restarts the child if it dies."""

    def __init__(
        self,
        config: CarelineConfig,
        *,
        on_decisions: Callable[[list[Decision]], None],
        on_dead_letters: Callable[[list[DeadLetterItem]], None],
        on_status: Callable[[dict[str, Any]], None],
        on_unbound: Callable[[Drained], None] | None = None,
        on_rule_state_restored: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._config_json = config.model_dump_json()
        self._on_status = on_status
        self._on_unbound = on_unbound
        self._handlers: dict[str, Callable[[Any], None]] = {
            DECISIONS: on_decisions,
            DEAD_LETTERS: on_dead_letters,
            STATUS: self._status,
            UNBOUND: self._unbound,
            DIRECTORY: self._directory_taken,
            RULE_STATE: lambda _snapshot: None,  # kept by the reader thread, see `_read_outbox`
            RULE_STATE_RESTORED: on_rule_state_restored or (lambda _report: None),
        }
        #: The wellbeing rules' latest snapshot (JSON text, never parsed here): the child's last report,
        #: else the one stored at start; a restarted child starts from it.
        self.rule_state: str | None = None
        self._readers: list[threading.Thread] = []
        #: The directory version handed to the child (`apply`), and the one it reports having taken.
        self._directory_version = 0
        self.directory_version = 0
        self._version_waiters: list[tuple[int, asyncio.Future[None]]] = []
        #: Set while the child reports its MQTT connection up; cleared when it dies.
        self.connected = asyncio.Event()
        self._context = multiprocessing.get_context("spawn")
        self._process: SpawnProcess | None = None
        self._inbox: Any = None
        self.restarts = 0
        self._generation = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._inbox, outbox = self._context.Queue(), self._context.Queue()
        self._process = self._context.Process(
            target=telemetry_main,
            name="careline-telemetry",
            daemon=True,
            args=(
                self._config_json,
                self._inbox,
                outbox,
                os.getpid(),
                self._directory_version,
                self.rule_state,
            ),
        )
        self._process.start()
        self._generation += 1
        reader = threading.Thread(
            target=self._read_outbox,
            args=(outbox, loop, self._generation),
            daemon=True,
            name="telemetry-outbox",
        )
        reader.start()
        self._readers = [r for r in self._readers if r.is_alive()] + [reader]

    def restore_from(self, snapshot: str | None) -> None:
        """The stored snapshot the first child starts from (call before `start`)."""
        self.rule_state = snapshot

    def observe(self, events: Sequence[DeviceEvent]) -> None:
        """Alarm-lane events, for signs of life and the sensor log (never blocks: a feeder thread sends)."""
        if self._inbox is not None:
            self._inbox.put(list(events))

    def apply(self, config_json: str, version: int) -> None:
        """Hand the child a new directory (inside the configuration `config_json`, already validated); a
        restarted child starts with it."""
        self._config_json = config_json
        self._directory_version = version
        if self._inbox is not None:
            self._inbox.put(DirectoryUpdate(version, self._config_json))

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    async def supervise(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if not self.alive:
                self.connected.clear()
                self.restarts += 1
                log.error(
                    "telemetry process ended (exit code %s); restarting it",
                    self._process.exitcode if self._process else None,
                )
                self.start(asyncio.get_running_loop())

    def _status(self, status: dict[str, Any]) -> None:
        if status["connected"]:
            self.connected.set()
        else:
            self.connected.clear()
        self._on_status(status)

    def _unbound(self, wire: dict[str, Any]) -> None:
        if self._on_unbound is not None:
            self._on_unbound(Drained.from_wire(wire))

    async def taken(self, version: int, limit_s: float) -> bool:
        """Wait until the child has taken directory `version` (or a later one); False after `limit_s`."""
        if self.directory_version >= version:
            return True
        if not self.alive:
            return False  # not started, or restarting: a child started from now on begins with it
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._version_waiters.append((version, future))
        try:
            await asyncio.wait_for(asyncio.shield(future), limit_s)
        except TimeoutError:
            return False
        finally:
            self._version_waiters = [(v, f) for v, f in self._version_waiters if f is not future]
        return True

    def _directory_taken(self, version: int) -> None:
        self.directory_version = version
        for wanted, future in self._version_waiters:
            if wanted <= version and not future.done():
                future.set_result(None)

    def _dispatch(self, generation: int, kind: str, payload: Any) -> None:
        # A dead child's last status must not mark its successor connected; its decisions still count.
        if kind in (STATUS, DIRECTORY) and generation != self._generation:
            return
        self._handlers[kind](payload)

    def _read_outbox(self, outbox: Any, loop: asyncio.AbstractEventLoop, generation: int) -> None:
        process = self._process
        while process is not None and (process.is_alive() or not outbox.empty()):
            try:
                kind, payload = outbox.get(timeout=0.5)
            except queue.Empty:
                continue
            if kind == RULE_STATE:
                # Here, not on the loop: the last snapshot arrives while `stop` holds the loop, and the
                # gateway saves it right after.
                self.rule_state = payload
                continue
            try:
                loop.call_soon_threadsafe(self._dispatch, generation, kind, payload)
            except RuntimeError:
                return  # the gateway's loop has closed: it is shutting down

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        self._inbox.put(None)
        process.join(timeout_s)
        if process.is_alive():
            process.terminate()
            process.join(5)
        for reader in self._readers:
            # What the child said last (its final snapshot) is read before the gateway saves it.
            reader.join(2.0)
