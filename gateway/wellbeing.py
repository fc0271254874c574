"""The wellbeing monitor: quiet-emergency rules fed by the telemetry lane, ticking on their own.

Its decisions become incidents through the alarm lane's commit (durable, audited, escalated); nothing
here is awaited by the alarm lane itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from devices.model import DeviceEvent
from gateway.clock import Clock
from rules.engine import RuleEngine
from rules.model import Decision

log = logging.getLogger(__name__)

TICK_S = 30.0


class WellbeingMonitor:
    def __init__(
        self, engine: RuleEngine, commit: Callable[[Sequence[Decision]], Awaitable[None]], clock: Clock
    ) -> None:
        self._engine = engine
        self._commit = commit
        self._clock = clock
        self._pending: list[Decision] = []
        self._ready = asyncio.Event()

    def __call__(self, events: Sequence[DeviceEvent]) -> None:
        """Telemetry sink (runs on the event loop, so it only computes and hands over)."""
        now = self._clock.now()
        for event in events:
            self._pending += self._engine.handle(event, now)
        if self._pending:
            self._ready.set()

    async def run(self) -> None:
        # At once, not a period later: timers restored from before a restart may be overdue already.
        self._pending += self._engine.tick(self._clock.now())
        self._ready.set()
        while True:
            try:
                async with asyncio.timeout(TICK_S):
                    await self._ready.wait()
            except TimeoutError:
                self._pending += self._engine.tick(self._clock.now())
            self._ready.clear()
            decisions, self._pending = self._pending, []
            if decisions:
                await self._commit(decisions)
