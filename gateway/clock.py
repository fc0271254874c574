"""Time is injected so timers and windows are testable without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock the tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment


def zone_where_local_hour_is(hour: int, now: datetime | None = None) -> str:
    """A fixed-offset IANA zone in which the local hour is `hour` right now. The demo and the tests use it
    to put a site at night (or by day) without faking the clock."""
    utc_hour = (now or datetime.now(UTC)).hour
    offset = (hour - utc_hour + 12) % 24 - 12
    # Etc/GMT zones count the other way round: Etc/GMT-8 is UTC+8.
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"
