"""Fixtures and helpers shared by the telemetry tests.

pytest only collects fixtures from conftest.py and the test module itself, so a test module imports the
fixture functions it needs (`influxdb1_fixture`, `victoria_fixture`); they are registered under the
names `influxdb1` and `victoria`.

One real server per test module (module scope), each test in its own database or with its own
timestamps, so tests do not see each other's points.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from services import InfluxDB1, VictoriaMetrics, free_port

from devices.model import DeviceEvent, DeviceType, EventKind
from gateway.telemetry.backends import LineProtocolBackend
from gateway.telemetry.config import TelemetryConfig

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
_unique = itertools.count()


@pytest.fixture(scope="module", name="influxdb1")
def influxdb1_fixture() -> Iterator[InfluxDB1]:
    """A real InfluxDB 1.6.7 on a free port of 127.0.0.1, shared by the tests of one module."""
    with InfluxDB1() as server:
        yield server


@pytest.fixture(scope="module", name="victoria")
def victoria_fixture() -> Iterator[VictoriaMetrics]:
    """A real VictoriaMetrics (v2 write API) on a free port, shared by the tests of one module."""
    with VictoriaMetrics() as server:
        yield server


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until `condition()` holds (polling; machines under load are slow), or fail."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def new_database(server: InfluxDB1) -> str:
    name = f"t{uuid.uuid4().hex[:12]}"
    server.create_database(name)
    return name


def dead_url() -> str:
    """An http URL where nothing listens: connection refused, like a server that is down."""
    return f"http://127.0.0.1:{free_port()}"


def v1_config(url: str, database: str, spool_dir: Path, **overrides: Any) -> TelemetryConfig:
    settings: dict[str, Any] = {
        "backend": "influxdb1",
        "url": url,
        "database": database,
        "spool_dir": spool_dir,
        "batch_size": 100,
        "flush_interval_ms": 20,
        "retry_min_s": 0.05,
        "retry_max_s": 0.3,
        "request_timeout_s": 5,
    }
    return TelemetryConfig(**(settings | overrides))


def event(
    seq: int,
    *,
    kind: EventKind = EventKind.HEART_RATE,
    value: float | bool | str | None = None,
    device: str = "vitals-1",
    site: str = "site-a",
    room: str | None = "101",
    resident: str | None = "res-1",
    extra: dict[str, float | bool | str] | None = None,
    ts: datetime | None = None,
) -> DeviceEvent:
    """Event number `seq`: one millisecond after number seq-1, value = seq unless given."""
    moment = ts if ts is not None else T0 + timedelta(milliseconds=seq)
    return DeviceEvent(
        device_id=device,
        device_type=DeviceType.VITALS_MONITOR,
        site=site,
        room=room,
        resident=resident,
        kind=kind,
        value=float(seq) if value is None and kind is EventKind.HEART_RATE else value,
        ts=moment,
        received_at=moment,
        message_key=f"m{next(_unique)}",
        extra=extra or {},
    )


def count_points(server: InfluxDB1, database: str, measurement: str = "heart_rate") -> int:
    answer: Any = server.query(f'SELECT count("value") FROM "{measurement}"', db=database)
    series = answer["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def values(server: InfluxDB1, database: str, measurement: str = "heart_rate") -> list[Any]:
    answer: Any = server.query(f'SELECT "value" FROM "{measurement}"', db=database)
    series = answer["results"][0].get("series")
    return [row[1] for row in series[0]["values"]] if series else []


class RecordingBackend:
    """Wraps a real backend and remembers, in order, every batch the server accepted."""

    def __init__(self, inner: LineProtocolBackend) -> None:
        self.inner = inner
        self.name = inner.name
        self.accepted: list[str] = []
        self.calls = 0

    def write(self, lines: Sequence[str]) -> None:
        self.calls += 1
        self.inner.write(lines)
        self.accepted.extend(lines)

    def close(self) -> None:
        self.inner.close()


class GatedBackend:
    """A fake server: records what it was given; `fail` makes writes fail, `gate` holds them."""

    name = "fake"

    def __init__(self) -> None:
        self.accepted: list[str] = []
        self.fail: Exception | None = None
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.closed = False

    def write(self, lines: Sequence[str]) -> None:
        self.entered.set()
        self.gate.wait(10)
        if self.fail is not None:
            raise self.fail
        self.accepted.extend(lines)

    def close(self) -> None:
        self.closed = True
