"""Alarm latency, end to end: SOS published → incident committed → WebSocket frame at an operator.

Real Mosquitto, the real gateway as its own process (`careline run`), real SQLite (synchronous=FULL),
a paho publisher and a WebSocket client on loopback. Two phases, 1,000 alarms each:
  sequential  one SOS at a time, each from a different resident (each opens an incident);
  paced       the same 1,000 pendants pressed again at a steady rate (each joins its incident).
Prints the figures, writes benchmarks/results/alarm_latency.json and the table in docs/benchmarks.md.

    .venv/bin/python benchmarks/alarm_latency.py [--alarms 1000] [--rate 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import Publisher  # noqa: E402
from services import Mosquitto, free_port  # noqa: E402
from support import replace_section, start_gateway  # noqa: E402

from devices.model import EventKind  # noqa: E402
from simulators.payloads import careline_event  # noqa: E402

PASSWORD = "benchmark-operator-pw"


def _config(broker_url: str, db: Path, http_port: int, residents: int) -> dict[str, Any]:
    return {
        "broker": {"url": broker_url, "client_id": "careline-bench"},
        "storage": {"url": f"sqlite:///{db}"},
        "http": {"host": "127.0.0.1", "port": http_port},
        "sites": [{"id": "bench", "name": "Benchmark Care Home", "rooms": [{"id": "ward"}]}],
        "residents": [
            {"id": f"r{n}", "name": f"Resident {n}", "site": "bench", "room": "ward"}
            for n in range(residents)
        ],
        "devices": [
            {"id": f"p{n}", "type": "sos_button", "site": "bench", "resident": f"r{n}"}
            for n in range(residents)
        ],
    }


async def _phase(
    ws: websockets.ClientConnection, device: Publisher, alarms: int, rate: float | None, expect_count: int
) -> list[float]:
    """Publish `alarms` SOS (one per pendant); latency of the WebSocket frame for each, in ms."""
    sent: dict[str, float] = {}
    latencies: list[float] = []
    arrived = asyncio.Event()

    async def receive() -> None:
        while len(latencies) < alarms:
            frame = json.loads(await ws.recv())
            if frame.get("type") != "incident":
                continue
            incident = frame["incident"]
            if incident["trigger_count"] == expect_count and incident["device_id"] in sent:
                latencies.append((time.time() - sent.pop(incident["device_id"])) * 1000)
                arrived.set()

    receiver = asyncio.create_task(receive())
    start = time.monotonic()
    for n in range(alarms):
        device_id = f"p{n}"
        event_id = uuid.uuid4().hex
        sent_at = time.time()
        sent[device_id] = sent_at
        device.send(
            f"careline/bench/{device_id}/alarm",
            careline_event(EventKind.SOS, event_id=event_id, ts_ms=sent_at * 1000),
        )
        if rate is None:
            arrived.clear()
            async with asyncio.timeout(30):
                await arrived.wait()
        else:
            await asyncio.sleep(max(0.0, start + (n + 1) / rate - time.monotonic()))
    async with asyncio.timeout(60):
        await receiver
    return latencies


def _summary(values: list[float]) -> dict[str, float]:
    array = np.asarray(values)
    return {
        "n": int(array.size),
        "p50_ms": round(float(np.percentile(array, 50)), 2),
        "p90_ms": round(float(np.percentile(array, 90)), 2),
        "p99_ms": round(float(np.percentile(array, 99)), 2),
        "max_ms": round(float(array.max()), 2),
    }


async def _run(alarms: int, rate: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="careline-bench-"))
    http_port = free_port()
    db = workdir / "careline.db"
    with Mosquitto() as broker:
        config_path = workdir / "careline.yaml"
        config_path.write_text(yaml.safe_dump(_config(broker.url, db, http_port, alarms)))
        gateway = start_gateway(config_path, http_port, workdir, PASSWORD)
        device = Publisher(broker.port)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
                (
                    await http.post("/api/login", json={"username": "operator", "password": PASSWORD})
                ).raise_for_status()
                cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
            async with websockets.connect(
                f"ws://127.0.0.1:{http_port}/api/ws", additional_headers={"Cookie": cookie}, max_queue=None
            ) as ws:
                await ws.recv()
                sequential = await _phase(ws, device, alarms, None, expect_count=1)
                paced = await _phase(ws, device, alarms, rate, expect_count=2)
            async with httpx.AsyncClient() as http:
                metrics = (await http.get(f"http://127.0.0.1:{http_port}/metrics")).text
        finally:
            device.close()
            gateway.terminate()
            gateway.wait(20)
    return {
        "sequential_publish_to_websocket": _summary(sequential),
        f"paced_{int(rate)}_per_s_publish_to_websocket": _summary(paced),
        "gateway_receipt_to_commit_histogram": [
            line for line in metrics.splitlines() if line.startswith("careline_alarm_commit_seconds_")
        ],
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "alarms_per_phase": alarms,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _write(results: dict[str, Any]) -> None:
    out = ROOT / "benchmarks" / "results" / "alarm_latency.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    doc = ROOT / "docs" / "benchmarks.md"
    begin, end = "<!-- alarm-latency:begin -->", "<!-- alarm-latency:end -->"
    rows = [
        "| "
        + " | ".join(
            [name.replace("_", " ")] + [str(s[k]) for k in ("n", "p50_ms", "p90_ms", "p99_ms", "max_ms")]
        )
        + " |"
        for name, s in results.items()
        if isinstance(s, dict) and "p50_ms" in s
    ]
    table = "\n".join(
        [
            begin,
            f"Measured {results['when']} on {results['machine']['cpus']} cores, "
            f"Python {results['machine']['python']}.",
            "",
            "| phase | alarms | p50 ms | p90 ms | p99 ms | max ms |",
            "|---|---|---|---|---|---|",
            *rows,
            end,
        ]
    )
    replace_section(doc, begin, end, table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alarms", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="alarms per second in the paced phase")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    results = asyncio.run(_run(args.alarms, args.rate))
    print(
        json.dumps({k: v for k, v in results.items() if k != "gateway_receipt_to_commit_histogram"}, indent=2)
    )
    if not args.no_write:
        _write(results)


if __name__ == "__main__":
    main()
