"""Telemetry writer throughput, and what it costs the event loop the alarm lane shares.

Real InfluxDB 1.6.7 (v1 `/write`) and real VictoriaMetrics (influxdb-client, `/api/v2/write`), each on a
free port. The events are fed to `InfluxWriter` the way the telemetry lane does (chunks of 1,000, on the
event loop) at a steady rate while a 1 ms ticker measures how late the loop wakes up: that lateness is what
an alarm arriving at the same moment would wait. Then the same with the server stopped for the middle third
(everything goes through the spool) to show catch-up speed.

    .venv/bin/python benchmarks/telemetry_throughput.py [--events 200000] [--rate 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from services import InfluxDB1, VictoriaMetrics  # noqa: E402

from devices.model import DeviceEvent, DeviceType, EventKind  # noqa: E402
from gateway.telemetry.config import TelemetryConfig  # noqa: E402
from gateway.telemetry.points import to_line  # noqa: E402
from gateway.telemetry.writer import InfluxWriter  # noqa: E402

CHUNK = 1000


def _events(n: int) -> list[DeviceEvent]:
    start = datetime.now(UTC) - timedelta(minutes=30)
    return [
        DeviceEvent(
            device_id=f"vitals-{i % 500}",
            device_type=DeviceType.VITALS_MONITOR,
            site="bench",
            room=f"room-{i % 100}",
            resident=f"r{i % 500}",
            kind=EventKind.HEART_RATE,
            value=60.0 + i % 40,
            ts=start + timedelta(microseconds=i * 7),
            received_at=start,
            message_key=str(i),
            extra={"rssi": -50.0},
        )
        for i in range(n)
    ]


async def _loop_lag(stop: asyncio.Event, lags: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.001)
        lags.append((loop.time() - before - 0.001) * 1000)


async def _feed(
    writer: InfluxWriter, events: list[DeviceEvent], rate: int, outage: Callable[[int], Any]
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    for n, i in enumerate(range(0, len(events), CHUNK)):
        await outage(n)
        writer(events[i : i + CHUNK])
        delay = started + (i + CHUNK) / rate - loop.time()
        await asyncio.sleep(max(0.0, delay))


async def _run(config: TelemetryConfig, events: list[DeviceEvent], rate: int, outage: Any) -> dict[str, Any]:
    writer = InfluxWriter(config)
    task = asyncio.create_task(writer.run())
    stop = asyncio.Event()
    lags: list[float] = []
    ticker = asyncio.create_task(_loop_lag(stop, lags))
    started = time.perf_counter()
    await _feed(writer, events, rate, outage)
    fed = time.perf_counter() - started
    drained = await writer.drain(300)
    elapsed = time.perf_counter() - started
    stop.set()
    await ticker
    await writer.close()
    await task
    status = writer.status()
    lag = np.array(lags)
    return {
        "points": len(events),
        "drained": drained,
        "feed_s": round(fed, 2),
        "total_s": round(elapsed, 2),
        "points_per_s": round(len(events) / elapsed),
        "loop_lag_ms_p50": round(float(np.percentile(lag, 50)), 2),
        "loop_lag_ms_p99": round(float(np.percentile(lag, 99)), 2),
        "loop_lag_ms_max": round(float(lag.max()), 2),
        "written": status["written_points"],
        "spooled": status["spooled_points"],
        "dropped": status["dropped_points"],
    }


def _outage(server: InfluxDB1 | VictoriaMetrics, chunks: int) -> Callable[[int], Any]:
    async def maybe(n: int) -> None:
        if n == chunks // 3:
            await asyncio.to_thread(server.stop)
        elif n == 2 * chunks // 3:
            await asyncio.to_thread(server.start)

    return maybe


async def _none(_: int) -> None:
    return None


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=20_000, help="events per second fed to the writer")
    args = parser.parse_args()
    events = _events(args.events)
    started = time.perf_counter()
    for event in events[:20_000]:
        to_line(event)
    results: dict[str, Any] = {"to_line_us": round((time.perf_counter() - started) / 20_000 * 1e6, 1)}
    chunks = (len(events) + CHUNK - 1) // CHUNK
    with tempfile.TemporaryDirectory() as tmp, InfluxDB1() as influx, VictoriaMetrics() as victoria:
        influx.create_database("bench")
        v1 = {"backend": "influxdb1", "url": influx.url, "database": "bench"}
        v2 = {"backend": "influxdb2", "url": victoria.url, "org": "bench", "bucket": "bench"}
        for name, settings, server in (("influxdb1", v1, influx), ("victoria_v2", v2, victoria)):
            for label, outage in (("steady", _none), ("outage", _outage(server, chunks))):
                spool = Path(tmp) / f"{name}-{label}"
                config = TelemetryConfig.model_validate({**settings, "spool_dir": spool, "retry_max_s": 1})
                results[f"{name}_{label}"] = await _run(config, events, args.rate, outage)
                print(name, label, results[f"{name}_{label}"], flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
