"""Login throttling per user name and per client address, in bounded memory.

The first `free_failures` wrong passwords of a key (a user name, or an address) cost nothing; from then
on each one locks the key for 1 s, 2 s, 4 s ... up to `max_lock_s`. Attempts during a lock are refused
without checking the password, so guessing is slow and costs the gateway no hashing. Past the free
failures a key gets one attempt at a time, so parallel requests cannot all slip in before the first
failure is known. A key quiet for `quiet_s` after its lock is forgotten; each scope keeps at most
`capacity` keys, the least recently failing (and unlocked) forgotten first.
"""

from __future__ import annotations

import enum
import itertools
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

QUIET_MIN_S = 15 * 60.0
#: How many of the oldest keys are looked at for an unlocked one to forget when a scope is full.
EVICTION_SCAN = 64


class Scope(enum.StrEnum):
    USER = "user"
    ADDRESS = "address"


@dataclass(slots=True)
class _Record:
    failures: int = 0
    pending: int = 0
    locked_until: float = 0.0
    last_failure: float = 0.0


@dataclass(frozen=True, slots=True)
class LockStarted:
    scope: Scope
    key: str
    failures: int
    seconds: float


class ThrottledError(Exception):
    def __init__(self, scope: Scope, retry_after_s: float) -> None:
        super().__init__(f"too many failed logins for this {scope.value}")
        self.scope = scope
        self.retry_after_s = retry_after_s

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))


class LoginThrottle:
    def __init__(
        self,
        free_failures: int = 5,
        max_lock_s: float = 300.0,
        *,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._free = free_failures
        self._max_lock_s = max_lock_s
        self._quiet_s = max(max_lock_s, QUIET_MIN_S)
        self._capacity = capacity
        self._clock = clock
        self._records: dict[Scope, OrderedDict[str, _Record]] = {scope: OrderedDict() for scope in Scope}

    def begin(self, username: str, address: str) -> None:
        """Admit one login attempt, or raise `ThrottledError` with how long to wait."""
        now = self._clock()
        keys = self._keys(username, address)
        for scope, key in keys:
            record = self._live(scope, key, now)
            if record is None:
                continue
            if record.locked_until > now:
                raise ThrottledError(scope, record.locked_until - now)
            if record.pending and record.failures + record.pending >= self._free:
                raise ThrottledError(scope, 1.0)
        for scope, key in keys:
            self._record(scope, key, now).pending += 1

    def succeeded(self, username: str, address: str) -> None:
        """The user name starts afresh; the address keeps its failures (one good account must not
        wash away guesses at others)."""
        user_key, address_key = self._keys(username, address)
        self._records[Scope.USER].pop(user_key[1], None)
        self._settle(*address_key)

    def failed(self, username: str, address: str) -> list[LockStarted]:
        """Count a wrong password; the locks this failure starts (the first of a streak)."""
        now = self._clock()
        started = []
        for scope, key in self._keys(username, address):
            record = self._settle(scope, key)
            record.failures += 1
            record.last_failure = now
            if record.failures >= self._free:
                seconds = min(2.0 ** (record.failures - self._free), self._max_lock_s)
                record.locked_until = now + seconds
                if record.failures == self._free:
                    started.append(LockStarted(scope, key, record.failures, seconds))
        return started

    def abandoned(self, username: str, address: str) -> None:
        """The attempt ended without an answer (the store failed): it counts neither way."""
        for scope, key in self._keys(username, address):
            self._settle(scope, key)

    def __len__(self) -> int:
        return sum(len(records) for records in self._records.values())

    @staticmethod
    def _keys(username: str, address: str) -> tuple[tuple[Scope, str], tuple[Scope, str]]:
        return (Scope.USER, username.strip().casefold()), (Scope.ADDRESS, address)

    def _settle(self, scope: Scope, key: str) -> _Record:
        record = self._record(scope, key, self._clock())
        record.pending = max(0, record.pending - 1)
        return record

    def _live(self, scope: Scope, key: str, now: float) -> _Record | None:
        records = self._records[scope]
        record = records.get(key)
        if record is not None and self._expired(record, now):
            del records[key]
            return None
        return record

    def _record(self, scope: Scope, key: str, now: float) -> _Record:
        records = self._records[scope]
        record = self._live(scope, key, now)
        if record is None:
            self._make_room(records, now)
            record = records[key] = _Record(last_failure=now)
        records.move_to_end(key)
        return record

    def _make_room(self, records: OrderedDict[str, _Record], now: float) -> None:
        # Oldest first: expired records go; if still full, the least recently touched one that is not
        # locked, so spraying made-up names cannot push a locked user name out and lift its lock.
        while records and self._expired(next(iter(records.values())), now):
            records.popitem(last=False)
        if len(records) < self._capacity:
            return
        oldest = itertools.islice(records.items(), EVICTION_SCAN)
        victim = next((key for key, record in oldest if record.locked_until <= now), None)
        if victim is None:
            records.popitem(last=False)
        else:
            del records[victim]

    def _expired(self, record: _Record, now: float) -> bool:
        return not record.pending and now - max(record.last_failure, record.locked_until) > self._quiet_s
