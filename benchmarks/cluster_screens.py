"""Alarm latency with one and with two gateway instances on PostgreSQL, seen on every instance's screen.

SOS presses (one per pendant, `--rate` a second for `--seconds`) go through a real Mosquitto to
`careline run` processes sharing one real PostgreSQL 15 (cluster mode, `$share/careline/...`). An
operator's console is open on each instance. For each press: publish → its incident frame on the
screen of the instance that committed it ("own": the first frame) and on the other instance's screen
("other": pushed through PostgreSQL LISTEN/NOTIFY). Escalation is off, so the figures are the alarm
path's. Writes benchmarks/results/cluster_screens.json and its section of docs/benchmarks.md.

    .venv/bin/python benchmarks/cluster_screens.py [--rate 20] [--seconds 20] [--no-write]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from cluster_fixtures import (  # noqa: E402
    PASSWORD,
    Instance,
    add_operator,
    cluster_database,
    instance_config,
    pendants_directory,
    running,
)
from harness import Publisher  # noqa: E402
from services import Mosquitto  # noqa: E402
from stores import stop_server  # noqa: E402
from support import replace_section  # noqa: E402

from devices.model import EventKind  # noqa: E402
from simulators.payloads import careline_event  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "cluster_screens.json"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- cluster-screens:begin -->", "<!-- cluster-screens:end -->"
WARM_UP = 20


async def _screen(instance: Instance, arrivals: dict[str, list[float]]) -> asyncio.Task[None]:
    async with httpx.AsyncClient(base_url=instance.url) as http:
        response = await http.post("/api/login", json={"username": "operator", "password": PASSWORD})
        response.raise_for_status()
        cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    ws = await websockets.connect(
        f"ws://127.0.0.1:{instance.port}/api/ws", additional_headers={"Cookie": cookie}, max_queue=None
    )
    await ws.recv()  # hello

    async def read() -> None:
        async with ws:
            async for text in ws:
                frame = json.loads(text)
                if frame.get("type") == "incident" and frame["incident"]["trigger_count"] == 1:
                    arrivals.setdefault(frame["incident"]["device_id"], []).append(time.time())

    return asyncio.create_task(read())


async def _run(
    instances: tuple[Instance, ...], port: int, presses: int, rate: float, *, first: int = 0
) -> dict[str, Any]:
    arrivals: dict[str, list[float]] = {}
    readers = [await _screen(instance, arrivals) for instance in instances]
    device = Publisher(port)
    sent: dict[str, float] = {}
    start = time.monotonic()
    try:
        for n in range(first, first + presses):
            pendant = f"pendant{n:04d}"
            sent[pendant] = time.time()
            device.send(
                f"careline/home{n // 100:02d}/{pendant}/alarm",
                careline_event(EventKind.SOS, event_id=uuid.uuid4().hex, ts_ms=sent[pendant] * 1000),
            )
            await asyncio.sleep(max(0.0, start + (n - first + 1) / rate - time.monotonic()))
        await _all_seen(arrivals, presses, len(instances))
    finally:
        device.close()
        for reader in readers:
            reader.cancel()
    own = [(min(seen) - sent[d]) * 1000 for d, seen in arrivals.items()]
    other = [(max(seen) - sent[d]) * 1000 for d, seen in arrivals.items() if len(seen) == len(instances) > 1]
    return {
        "presses": presses,
        "rate_per_s": rate,
        "frames_own": len(own),
        "frames_other": len(other),
        "own_ms": _summary(own),
        "other_ms": _summary(other) if other else None,
        "other_minus_own_ms": _summary([o - w for o, w in zip(other, own, strict=False)]) if other else None,
    }


async def _all_seen(
    arrivals: dict[str, list[float]], presses: int, screens: int, limit_s: float = 60
) -> None:
    """Until every press's frame has reached every screen (or `limit_s`: what is missing is reported)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if len(arrivals) >= presses and all(len(seen) >= screens for seen in arrivals.values()):
            return
        await asyncio.sleep(0.2)


def _summary(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {
        "p50": round(float(np.percentile(a, 50)), 1),
        "p95": round(float(np.percentile(a, 95)), 1),
        "p99": round(float(np.percentile(a, 99)), 1),
        "max": round(float(a.max()), 1),
    }


async def _phase(count: int, presses: int, rate: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, Mosquitto() as broker, cluster_database() as store:
        add_operator(store)
        directory = pendants_directory(presses + WARM_UP)
        instances = tuple(
            Instance(instance_config(f"gw-{n}", broker.url, store, directory), Path(tmp))
            for n in range(count)
        )
        with running(*instances):
            await asyncio.sleep(2)  # both joined, subscriptions settled
            # Not counted: the first presses of a fresh process pay for its first connections and caches.
            await _run(instances, broker.port, WARM_UP, rate, first=presses)
            result = await _run(instances, broker.port, presses, rate)
    return {"instances": count, **result}


def _table(results: list[dict[str, Any]], command: str) -> str:
    rows = []
    for r in results:
        other = r["other_ms"] or {}
        gap = r["other_minus_own_ms"] or {}
        rows.append(
            f"| {r['instances']} | {r['presses']} at {r['rate_per_s']:g}/s "
            f"| {r['own_ms']['p50']} / {r['own_ms']['p99']} / {r['own_ms']['max']} "
            f"| {other.get('p50', '–')} / {other.get('p99', '–')} / {other.get('max', '–')} "
            f"| {gap.get('p50', '–')} / {gap.get('p99', '–')} |"
        )
    return "\n".join(
        [
            BEGIN,
            f"`{command}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}; PostgreSQL 15 and Mosquitto 2 on loopback, escalation "
            "off). SOS publish → its incident's frame "
            "on the console of the instance that committed it (own) and of the other instance (through "
            "LISTEN/NOTIFY), ms p50 / p99 / max:",
            "",
            "| instances | presses | own screen | other instance's screen | other − own (p50 / p99) |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            END,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    presses = int(args.rate * args.seconds)
    try:
        results = [asyncio.run(_phase(count, presses, args.rate)) for count in (1, 2)]
    finally:
        stop_server()
    command = "python benchmarks/cluster_screens.py" + "".join(
        f" {a}" for a in sys.argv[1:] if a != "--no-write"
    )
    table = _table(results, command)
    print(table)
    if not args.no_write:
        RESULTS.write_text(json.dumps({"when": time.time(), "results": results}, indent=2) + "\n")
        replace_section(DOC, BEGIN, END, table)


if __name__ == "__main__":
    main()
