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
import logging
import multiprocessing
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from multiprocessing.context import SpawnProcess
from typing import Any

from devices.model import DeviceEvent, Lane
from gateway.clock import SystemClock
from gateway.config import CarelineConfig
from gateway.directory import active_devices, device_registry, rule_context
from gateway.ingest import MqttLane
from gateway.metrics import Metrics
from gateway.telemetry.writer import create_writer
from gateway.telemetry_lane import DeadLetterItem, DeviceHealth, TelemetryLane
from gateway.wellbeing import WellbeingMonitor
from rules import RuleEngine
from rules.model import Decision
from rules.wellbeing import wellbeing_rules

log = logging.getLogger(__name__)

STATUS_PERIOD_S = 1.0
DECISIONS, DEAD_LETTERS, STATUS = "decisions", "dead_letters", "status"


# -- the child process ---------------------------------------------------------------------------------


def telemetry_main(config_json: str, inbox: Any, outbox: Any) -> None:
    """Entry point of the child process."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s telemetry %(name)s: %(message)s"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run_child(CarelineConfig.model_validate_json(config_json), inbox, outbox))


async def _run_child(config: CarelineConfig, inbox: Any, outbox: Any) -> None:
    loop = asyncio.get_running_loop()
    clock, metrics, health = SystemClock(), Metrics(), DeviceHealth()

    async def send_decisions(decisions: Sequence[Decision]) -> None:
        outbox.put((DECISIONS, list(decisions)))

    async def send_dead_letters(letters: list[DeadLetterItem]) -> None:
        outbox.put((DEAD_LETTERS, letters))

    context = rule_context(config)
    wellbeing = WellbeingMonitor(
        RuleEngine(
            wellbeing_rules(
                context,
                lambda site: context.site(site).wellbeing,
                clock.now(),
                devices=active_devices(config),
            )
        ),
        send_decisions,
        clock,
    )
    writer = create_writer(config.telemetry)
    sinks = [s for s in (health, wellbeing, writer) if s is not None]
    lane = TelemetryLane(
        device_registry(config), send_dead_letters, metrics, config.broker.telemetry_queue_max, sinks
    )
    mqtt = MqttLane(config.broker, Lane.TELEMETRY, list(config.broker.telemetry_topics), lane.submit, metrics)
    stopped = asyncio.Event()
    threading.Thread(target=_read_inbox, args=(inbox, loop, sinks, stopped), daemon=True).start()
    workers = [
        lane.run(),
        lane.flush_dead_letters_forever(),
        wellbeing.run(),
        _report(outbox, metrics, health, writer, mqtt),
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
        await lane.flush_dead_letters()
        if writer is not None:
            await writer.close()


def _read_inbox(
    inbox: Any,
    loop: asyncio.AbstractEventLoop,
    sinks: list[Callable[[Sequence[DeviceEvent]], None]],
    stopped: asyncio.Event,
) -> None:
    while (events := inbox.get()) is not None:
        loop.call_soon_threadsafe(_feed, sinks, events)
    loop.call_soon_threadsafe(stopped.set)


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
                    "queue_depth": metrics.queue_depth.labels("telemetry")._value.get(),
                    "lag_s": metrics.telemetry_lag._value.get(),
                    "devices": [asdict(state) for state in health.devices.values()],
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
    ) -> None:
        self._config_json = config.model_dump_json()
        self._on_status = on_status
        self._handlers: dict[str, Callable[[Any], None]] = {
            DECISIONS: on_decisions,
            DEAD_LETTERS: on_dead_letters,
            STATUS: self._status,
        }
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
            args=(self._config_json, self._inbox, outbox),
        )
        self._process.start()
        self._generation += 1
        threading.Thread(
            target=self._read_outbox,
            args=(outbox, loop, self._generation),
            daemon=True,
            name="telemetry-outbox",
        ).start()

    def observe(self, events: Sequence[DeviceEvent]) -> None:
        """Alarm-lane events, for signs of life and the sensor log (never blocks: a feeder thread sends)."""
        if self._inbox is not None:
            self._inbox.put(list(events))

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

    def _dispatch(self, generation: int, kind: str, payload: Any) -> None:
        # A dead child's last status must not mark its successor connected; its decisions still count.
        if kind == STATUS and generation != self._generation:
            return
        self._handlers[kind](payload)

    def _read_outbox(self, outbox: Any, loop: asyncio.AbstractEventLoop, generation: int) -> None:
        process = self._process
        while process is not None and (process.is_alive() or not outbox.empty()):
            try:
                kind, payload = outbox.get(timeout=0.5)
            except queue.Empty:
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
