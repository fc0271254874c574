"""The async face of the incident store: every write on one dedicated thread, listeners told after
the commit, never before."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from gateway.incidents.schema import Outcome
from gateway.incidents.store import AlarmBatch, ArmedPress, BatchResult, IncidentStore, Scope
from gateway.incidents.views import IncidentView
from gateway.incidents.writer import ALARM, BOOKKEEPING, PriorityWriter

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
IncidentListener = Callable[[Sequence[IncidentView]], None]
TestListener = Callable[[ArmedPress], None]


class IncidentService:
    def __init__(self, store: IncidentStore) -> None:
        self.store = store
        self._writer = PriorityWriter()
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="incident-reads")
        # The managers' reports read for a second or more; on their own threads they never hold up the
        # reads an operator's screen and every signed-in request (its session lookup) make.
        self._reports = ThreadPoolExecutor(max_workers=2, thread_name_prefix="incident-reports")
        self._listeners: list[IncidentListener] = []
        self._test_listeners: list[TestListener] = []

    def start(self) -> None:
        """Start the writer thread; writes submitted before this fail loudly instead of waiting forever."""
        self._writer.start()

    @property
    def started(self) -> bool:
        return self._writer.started

    def subscribe(self, listener: IncidentListener) -> None:
        self._listeners.append(listener)

    def subscribe_tests(self, listener: TestListener) -> None:
        """Told, after the commit, of each press taken as a test by test mode (docs/duty.md)."""
        self._test_listeners.append(listener)

    async def write(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store function on the single writer thread (every write goes through here)."""
        return await asyncio.wrap_future(self._writer.submit(lambda: fn(*args, **kwargs), ALARM))

    async def bookkeeping(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A write that yields to alarms waiting for the writer (escalation steps and records)."""
        return await asyncio.wrap_future(self._writer.submit(lambda: fn(*args, **kwargs), BOOKKEEPING))

    async def read(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Reads run beside the writer (SQLite WAL lets them), so a slow report never delays an alarm."""
        return await asyncio.get_running_loop().run_in_executor(self._readers, lambda: fn(*args, **kwargs))

    async def report(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A long read for the managers' office (reports, history, device board, sensor-log alarms)."""
        return await asyncio.get_running_loop().run_in_executor(self._reports, lambda: fn(*args, **kwargs))

    async def apply(self, batch: AlarmBatch) -> BatchResult:
        result = await self.write(self.store.apply, batch)
        self.announce(result.changed)
        for press in result.test_presses:
            for listener in self._test_listeners:
                try:
                    listener(press)
                except Exception:
                    log.exception("test listener failed")
        return result

    async def acknowledge(self, incident_id: int, actor: str, scope: Scope = None) -> IncidentView:
        view = await self.write(self.store.acknowledge, incident_id, actor, scope)
        self.announce([view])
        return view

    async def resolve(
        self, incident_id: int, actor: str, outcome: Outcome, note: str, scope: Scope = None
    ) -> IncidentView:
        view = await self.write(self.store.resolve, incident_id, actor, outcome, note, scope)
        self.announce([view])
        return view

    async def change(self, fn: Callable[P, IncidentView], *args: P.args, **kwargs: P.kwargs) -> IncidentView:
        """A write that changes one incident (taken, released, noted, someone sent): committed on the
        writer thread, then announced like an alarm, so every screen sees it."""
        view = await self.write(fn, *args, **kwargs)
        self.announce([view])
        return view

    def announce(self, changed: Sequence[IncidentView]) -> None:
        if not changed:
            return
        for listener in self._listeners:
            try:
                listener(changed)
            except Exception:
                # One broken listener must never stop the others from hearing about an alarm.
                log.exception("incident listener failed")

    def close(self) -> None:
        self._writer.shutdown()
        self._readers.shutdown(wait=True)
        self._reports.shutdown(wait=True)
