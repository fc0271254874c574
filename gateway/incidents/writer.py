"""One writer thread for the incident store, serving alarms before bookkeeping.

SQLite has a single writer, and the audit chain a single tail, so every write runs on this one thread.
Jobs wait in a priority queue: an alarm's commit goes ahead of any queued escalation bookkeeping, so a
burst of escalation work delays an alarm by at most the one job already running.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

ALARM, BOOKKEEPING = 0, 1
_STOP = 2


class PriorityWriter:
    def __init__(self, name: str = "incident-store") -> None:
        self._jobs: queue.PriorityQueue[tuple[int, int, Callable[[], Any] | None, Future[Any] | None]] = (
            queue.PriorityQueue()
        )
        self._order = itertools.count()
        self._name = name
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def submit(self, job: Callable[[], Any], priority: int = ALARM) -> Future[Any]:
        if self._thread is None:
            raise RuntimeError(f"writer {self._name!r} is not started")
        future: Future[Any] = Future()
        self._jobs.put((priority, next(self._order), job, future))
        return future

    def _work(self) -> None:
        while True:
            _, _, job, future = self._jobs.get()
            if job is None or future is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as exc:
                future.set_exception(exc)

    def shutdown(self) -> None:
        """Finish every queued job, then stop."""
        if self._thread is None:
            return
        self._jobs.put((_STOP, next(self._order), None, None))
        self._thread.join()
        self._thread = None
