"""`InfluxWriter`: the telemetry sink that stores DeviceEvents in InfluxDB, batched, retried and spooled.

On the event loop only cheap things happen: `__call__` appends events to a list and `run()` decides when
to flush. Converting events to line protocol (`LineEncoder`, ~4 µs a point), HTTP and SQLite all happen on
ONE worker thread, so a slow or dead server, or a slow disk, never stalls the alarm lane. One thread also
gives a total order: whatever the thread does first happened first, which is how replay keeps order.

The path of a batch, on the worker thread (`_deliver`):
1. if the spool holds points, replay them oldest first (a bounded number of batches per turn);
2. only when the spool is empty, write the new batch directly; otherwise append it to the spool, behind
   the older points, so order is kept;
3. a transient failure (unreachable, timeout, 5xx) spools the batch and the loop backs off
   exponentially up to `retry_max_s`; a rejected batch (a 4xx that no retry can fix) is counted and dropped.
When the in-memory buffer passes `buffer_max_points` (server slow or backing off), it is handed to the
worker to be spooled rather than allowed to grow.

Two refusals, both counted: an event whose value has the wrong type for its measurement never enters the
buffer (it is handed to `on_refused`, which makes it a dead letter; see points.py), and while the spool's
filesystem is short of its headroom (gateway/headroom.py) nothing is spooled, so the incident store
keeps the space.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from devices.model import DeviceEvent
from gateway.headroom import Headroom
from gateway.telemetry.backends import (
    LineProtocolBackend,
    RejectedBatchError,
    TransientWriteError,
    make_backend,
)
from gateway.telemetry.config import TelemetryConfig
from gateway.telemetry.points import LineEncoder, extra_problems, value_problem
from gateway.telemetry.spool import Spool

log = logging.getLogger(__name__)

#: Spooled batches replayed per worker turn, so the loop regains control (and new data a place in line)
#: during a long catch-up.
REPLAY_BATCHES_PER_TURN = 10
_JITTER = (0.8, 1.0)
_T = TypeVar("_T")
#: Told of each event the writer refuses or stores only in part, and why (on the event loop).
RefusedEvent = Callable[[DeviceEvent, str], None]


class _Outcome(enum.Enum):
    DONE = "done"  # everything handed over was written (or refused for good)
    BACKLOG = "backlog"  # the server takes writes, but the spool still holds points to replay
    FAILED = "failed"  # the server could not be written to; back off


class InfluxWriter:
    """Telemetry sink: ``writer(events)`` on the event loop, ``await writer.run()`` as a task,
    ``await writer.close()`` at shutdown (flushes what it can, spools the rest)."""

    def __init__(
        self,
        config: TelemetryConfig,
        *,
        backend: LineProtocolBackend | None = None,
        environ: Mapping[str, str] | None = None,
        on_refused: RefusedEvent | None = None,
        headroom: Headroom | None = None,
    ) -> None:
        self._config = config
        self._backend = backend if backend is not None else make_backend(config, environ)
        self._spool = Spool(config.spool_dir, config.spool_max_points)
        self._on_refused = on_refused
        self._headroom = headroom
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="careline-telemetry")
        #: Used on the worker thread only (it keeps each series' serialized tags).
        self._encoder = LineEncoder()
        self._buffer: list[DeviceEvent] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._closed = False
        self._in_flight = False
        #: Events handed to the worker to spool but not spooled yet (changed from both threads).
        self._spilling = 0
        self._spilling_lock = threading.Lock()
        self._delay_s = 0.0
        self._retry_at = 0.0
        self._failing = False
        self.last_error: str | None = None
        self.last_write_at: datetime | None = None
        #: Points the server acknowledged.
        self.written_points = 0
        #: Points put in the spool (a point spooled twice, e.g. after a failed replay, is counted once).
        self.spooled_points = 0
        #: Points given up: unconvertible events, batches the server rejected, spool overflow.
        self.dropped_points = 0
        #: Write requests that failed, transiently or for good.
        self.failed_writes = 0
        #: Events refused because their value has the wrong type for the measurement (also dropped).
        self.refused_points = 0
        #: Points not spooled because the disk was short of headroom (also dropped).
        self.disk_refused_points = 0

    # --- on the event loop ------------------------------------------------------------------------------

    def __call__(self, events: Sequence[DeviceEvent]) -> None:
        """Take events; never blocks, never awaits. Call it from the event loop's thread."""
        if self._closing:
            self.dropped_points += len(events)
            log.warning("telemetry writer is closed: dropped %d events", len(events))
            return
        self._buffer.extend(self._storable(events))
        if len(self._buffer) >= self._config.batch_size:
            self._wake.set()
        if len(self._buffer) > self._config.buffer_max_points:
            self._spill()

    def _storable(self, events: Sequence[DeviceEvent]) -> list[DeviceEvent]:
        """The events whose value fits its measurement's type. A few dict look-ups each: cheap enough for
        the event loop, and a refused event never takes a place in the buffer or the spool."""
        storable = []
        for event in events:
            problem = value_problem(event)
            if problem is not None:
                self.refused_points += 1
                self.dropped_points += 1
                self._refuse(event, f"not stored in InfluxDB: {problem}")
                continue
            if event.extra:
                left_out = extra_problems(event)
                if left_out:
                    self._refuse(event, f"stored in InfluxDB without {'; '.join(left_out)}")
            storable.append(event)
        return storable

    def _refuse(self, event: DeviceEvent, reason: str) -> None:
        if self._on_refused is None:
            log.warning("telemetry event from %s: %s", event.device_id, reason)
            return
        try:
            self._on_refused(event, reason)
        except Exception:
            log.exception("could not record a refused telemetry event")

    async def run(self) -> None:
        """Flush by size or time until `close()`; run it as a task of the gateway."""
        while not self._closing:
            await self._wait_for_work()
            if self._closing:
                return
            events = self._take(self._config.batch_size)
            if not events and not self._backlog():
                continue
            self._in_flight = True
            try:
                outcome = await self._on_worker(self._deliver, events)
            except Exception:
                # A bug or a broken spool must not take the gateway down with it: log, back off, go on.
                log.exception("telemetry delivery failed unexpectedly")
                outcome = _Outcome.FAILED
            finally:
                self._in_flight = False
            self._after(outcome)

    async def close(self) -> None:
        """Write what is buffered if the server was fine last we knew, spool the rest, release everything."""
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        events, self._buffer = self._buffer, []
        server_ok = time.monotonic() >= self._retry_at
        try:
            await self._on_worker(self._final_flush, events, server_ok)
        finally:
            self._closed = True
            self._executor.shutdown(wait=False)

    async def drain(self, timeout_s: float = 10.0) -> bool:
        """Flush now and wait until nothing is buffered or spooled; False if that did not happen in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.idle:
                return True
            self._wake.set()
            await asyncio.sleep(0.01)
        return self.idle

    @property
    def idle(self) -> bool:
        return not (self._buffer or self._in_flight or self._spilling or self._spool.count)

    def status(self) -> dict[str, Any]:
        """Counters and health for the operators' status page and the logs."""
        retry_in = max(0.0, self._retry_at - time.monotonic())
        return {
            "backend": self._backend.name,
            "url": self._config.url,
            "healthy": not self._failing,
            "buffered_points": len(self._buffer) + self._spilling,
            "spool_points": self._spool.count,
            "spool_dropped_total": self._spool.dropped_total,
            "written_points": self.written_points,
            "spooled_points": self.spooled_points,
            "dropped_points": self.dropped_points,
            "failed_writes": self.failed_writes,
            "refused_points": self.refused_points,
            "disk_refused_points": self.disk_refused_points,
            "retry_in_s": round(retry_in, 3),
            "last_error": self.last_error,
            "last_write_at": self.last_write_at.isoformat() if self.last_write_at else None,
        }

    async def _wait_for_work(self) -> None:
        now = time.monotonic()
        if now < self._retry_at:
            # Backing off: new events pile up in the buffer (and spill to the spool past the cap).
            await self._sleep_or_wake(self._retry_at - now, wake_on_batch=False)
        elif not self._backlog() and len(self._buffer) < self._config.batch_size:
            await self._sleep_or_wake(self._config.flush_interval_ms / 1000, wake_on_batch=True)

    async def _sleep_or_wake(self, seconds: float, *, wake_on_batch: bool) -> None:
        self._wake.clear()
        deadline = time.monotonic() + seconds
        while not self._closing and (remaining := deadline - time.monotonic()) > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                return
            self._wake.clear()
            if wake_on_batch:
                return

    def _backlog(self) -> bool:
        return bool(self._spool.count or self._spilling)

    def _take(self, n: int) -> list[DeviceEvent]:
        batch, self._buffer = self._buffer[:n], self._buffer[n:]
        return batch

    def _spill(self) -> None:
        # The worker thread runs jobs in submission order: this chunk lands in the spool after any batch
        # already in flight (and spooled if that write fails), before any batch taken later.
        events, self._buffer = self._buffer, []
        with self._spilling_lock:
            self._spilling += len(events)
        future = self._executor.submit(self._spool_events, events)
        future.add_done_callback(_log_failure)

    def _after(self, outcome: _Outcome) -> None:
        if outcome is _Outcome.FAILED:
            ceiling = self._config.retry_max_s
            self._delay_s = min(ceiling, max(self._config.retry_min_s, self._delay_s * 2))
            # Jitter, so gateways that lost the same server do not all come back at the same instant.
            self._retry_at = time.monotonic() + self._delay_s * random.uniform(*_JITTER)
        else:
            self._delay_s = 0.0
            self._retry_at = 0.0

    async def _on_worker(self, job: Callable[..., _T], *args: Any) -> _T:
        future: Future[_T] = self._executor.submit(job, *args)
        # Shielded: cancelling the gateway's task must not cancel a queued job and lose its events.
        return await asyncio.shield(asyncio.wrap_future(future))

    # --- on the worker thread -----------------------------------------------------------------------------

    def _deliver(self, events: Sequence[DeviceEvent]) -> _Outcome:
        lines = self._convert(events)
        try:
            outcome = self._replay()
        except sqlite3.Error:
            # Keep new data flowing past a broken spool, but back off so the error is not a busy loop.
            log.exception("cannot replay the telemetry spool; writing new points directly")
            self._write_now(lines)
            return _Outcome.FAILED
        if outcome is not _Outcome.DONE:
            self._spool_lines(lines)
            return outcome
        return self._write_now(lines)

    def _write_now(self, lines: Sequence[str]) -> _Outcome:
        for start in range(0, len(lines), self._config.batch_size):
            if not self._send(lines[start : start + self._config.batch_size]):
                self._spool_lines(lines[start:])
                return _Outcome.FAILED
        return _Outcome.DONE

    def _replay(self) -> _Outcome:
        for _ in range(REPLAY_BATCHES_PER_TURN):
            points = self._spool.peek(self._config.batch_size)
            if not points:
                return _Outcome.DONE
            if not self._send([point.line for point in points]):
                return _Outcome.FAILED
            self._spool.ack([point.id for point in points])
        return _Outcome.BACKLOG if self._spool.count else _Outcome.DONE

    def _send(self, lines: Sequence[str]) -> bool:
        """Write one batch. True when the batch is dealt with (written or refused for good)."""
        try:
            self._backend.write(lines)
        except TransientWriteError as exc:
            self._note_failure(exc)
            return False
        except RejectedBatchError as exc:
            self.failed_writes += 1
            dropped = len(lines) if exc.dropped is None else min(exc.dropped, len(lines))
            self.dropped_points += dropped
            self.written_points += len(lines) - dropped
            log.error("telemetry server refused %d of %d points for good: %s", dropped, len(lines), exc)
            return True
        self.written_points += len(lines)
        self.last_write_at = datetime.now(UTC)
        if self._failing:
            self._failing = False
            log.warning(
                "telemetry server %s is back; replaying %d spooled points",
                self._config.url,
                self._spool.count,
            )
        return True

    def _note_failure(self, exc: Exception) -> None:
        self.failed_writes += 1
        self.last_error = str(exc)
        # Once per outage at WARNING, so a long outage does not flood the log with one line per retry.
        level = logging.DEBUG if self._failing else logging.WARNING
        log.log(level, "telemetry write to %s failed (%s); spooling and retrying", self._config.url, exc)
        self._failing = True

    def _convert(self, events: Sequence[DeviceEvent]) -> list[str]:
        lines: list[str] = []
        invalid: list[str] = []
        for event in events:
            try:
                lines.append(self._encoder.line(event))
            except (ValueError, TypeError) as exc:
                invalid.append(str(exc))
        if invalid:
            self.dropped_points += len(invalid)
            log.warning(
                "dropped %d telemetry events that cannot be stored, e.g. %s", len(invalid), invalid[0]
            )
        return lines

    def _spool_events(self, events: Sequence[DeviceEvent]) -> None:
        try:
            self._spool_lines(self._convert(events))
        finally:
            with self._spilling_lock:
                self._spilling -= len(events)

    def _spool_lines(self, lines: Sequence[str]) -> None:
        if not lines or self._no_headroom(len(lines)):
            return
        try:
            self.dropped_points += self._spool.push(lines)
        except sqlite3.Error:
            self.dropped_points += len(lines)
            log.exception("could not spool %d telemetry points; they are lost", len(lines))
            return
        self.spooled_points += len(lines)

    def _no_headroom(self, points: int) -> bool:
        """True (the points counted as refused) while the spool's disk is short of its headroom."""
        if self._headroom is None or not self._headroom.short():
            return False
        self.disk_refused_points += points
        self.dropped_points += points
        return True

    def _final_flush(self, events: Sequence[DeviceEvent], server_ok: bool) -> None:
        try:
            if server_ok and not self._spool.count:
                self._deliver(events)
            else:
                # No replay at shutdown: a long spool would hold the exit hostage. Keep it for next time.
                self._spool_lines(self._convert(events))
        finally:
            self._backend.close()
            self._spool.close()


def _log_failure(future: Future[None]) -> None:
    exc = future.exception()
    if exc is not None:
        log.error("telemetry spooling failed", exc_info=exc)


def create_writer(
    config: TelemetryConfig,
    environ: Mapping[str, str] | None = None,
    *,
    on_refused: RefusedEvent | None = None,
    min_free_bytes: int = 0,
) -> InfluxWriter | None:
    """The writer `config` asks for, or None when telemetry is not stored (backend ``none``)."""
    if not config.enabled:
        return None
    headroom = (
        Headroom(config.spool_dir, min_free_bytes, "telemetry is not spooled") if min_free_bytes else None
    )
    return InfluxWriter(config, environ=environ, on_refused=on_refused, headroom=headroom)
