"""The influxdb2 backend (influxdb-client's write API) against a real server speaking ``/api/v2/write``:
VictoriaMetrics, read back through its export API (metric = ``<measurement>_<field>``, times in ms)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services import VictoriaMetrics
from telemetry_fixtures import (
    RecordingBackend,
    event,
    eventually,
    victoria_fixture,  # noqa: F401 - the `victoria` fixture
)

from devices.model import EventKind
from gateway.telemetry.backends import make_backend
from gateway.telemetry.config import TelemetryConfig
from gateway.telemetry.writer import InfluxWriter

ENVIRON = {"CARELINE_INFLUX_TOKEN": "not-checked-by-victoria"}


def _config(server: VictoriaMetrics, spool_dir: Path, **overrides: Any) -> TelemetryConfig:
    settings: dict[str, Any] = {
        "backend": "influxdb2",
        "url": server.url,
        "org": "careline",
        "bucket": "telemetry",
        "token_env": "CARELINE_INFLUX_TOKEN",
        "spool_dir": spool_dir,
        "batch_size": 100,
        "flush_interval_ms": 20,
        "retry_min_s": 0.05,
        "retry_max_s": 0.3,
    }
    return TelemetryConfig(**(settings | overrides))


def _samples(server: VictoriaMetrics, match: str, expected: int, timeout_s: float = 10.0) -> list[Any]:
    """(timestamp ms, value, labels) of every sample of `match`, once `expected` of them are searchable."""
    deadline = time.monotonic() + timeout_s
    while True:
        server.flush()  # VictoriaMetrics makes fresh data searchable within about a second
        exported: list[Any] = server.export(match)
        samples = sorted(
            (ts, value, series["metric"])
            for series in exported
            for ts, value in zip(series["timestamps"], series["values"], strict=True)
        )
        if len(samples) >= expected or time.monotonic() > deadline:
            return samples
        time.sleep(0.1)


def _recent(site: str) -> tuple[datetime, str]:
    # VictoriaMetrics refuses points older than its retention: write around now; a site per test.
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5), site


async def test_influxdb_client_writes_arrive_with_tags_and_fields(
    victoria: VictoriaMetrics, tmp_path: Path
) -> None:
    start, site = _recent("v2-roundtrip")
    writer = InfluxWriter(_config(victoria, tmp_path), environ=ENVIRON)
    task = asyncio.create_task(writer.run())
    writer(
        [
            event(i, site=site, ts=start + timedelta(milliseconds=i), extra={"rssi": -40 - i})
            for i in range(500)
        ]
    )
    writer([event(0, kind=EventKind.SOS, site=site, ts=start, device="pendant-7", room=None)])
    assert await writer.drain(10)
    await writer.close()
    await task
    assert writer.written_points == 501

    samples = _samples(victoria, f'{{__name__="heart_rate_value",site="{site}"}}', 500)
    start_ms = int(start.timestamp() * 1000)
    assert [(ts, value) for ts, value, _ in samples] == [(start_ms + i, float(i)) for i in range(500)]
    labels = samples[0][2]
    assert labels == {
        "__name__": "heart_rate_value",
        "site": site,
        "room": "101",
        "resident": "res-1",
        "device": "vitals-1",
        "device_type": "vitals_monitor",
    }
    rssi = _samples(victoria, f'{{__name__="heart_rate_x_rssi",site="{site}"}}', 500)
    assert [value for _, value, _ in rssi] == [-40.0 - i for i in range(500)]
    [(_, occurred, sos_labels)] = _samples(victoria, f'{{__name__="sos_value",site="{site}"}}', 1)
    assert occurred == 1.0
    assert "room" not in sos_labels


async def test_v2_writes_survive_a_server_restart_in_order(victoria: VictoriaMetrics, tmp_path: Path) -> None:
    start, site = _recent("v2-outage")
    config = _config(victoria, tmp_path, batch_size=50)
    backend = RecordingBackend(make_backend(config, ENVIRON))
    writer = InfluxWriter(config, backend=backend)
    task = asyncio.create_task(writer.run())
    total = 1500
    for i in range(0, total, 25):
        writer([event(j, site=site, ts=start + timedelta(milliseconds=j)) for j in range(i, i + 25)])
        if i == 500:
            await asyncio.to_thread(victoria.stop)
        if i == 1000:
            await eventually(lambda: not writer.status()["healthy"])
            await asyncio.to_thread(victoria.start)
        await asyncio.sleep(0.002)
    assert await writer.drain(20)
    await writer.close()
    await task

    samples = _samples(victoria, f'{{__name__="heart_rate_value",site="{site}"}}', total)
    assert [value for _, value, _ in samples] == [float(i) for i in range(total)]
    accepted = [float(line.split("value=")[1].split(" ")[0]) for line in backend.accepted]
    assert accepted == [float(i) for i in range(total)]
    assert writer.spooled_points > 0
    assert writer.dropped_points == 0
