"""The telemetry process alone, thread by thread: CPU per message at a paced Zigbee2MQTT rate.

Real Mosquitto and InfluxDB 1.6.7 (tests/services.py), the real telemetry process
(`gateway.telemetry_process.TelemetryProcess`, as the gateway starts it) bound to the 1,000 homes of
`make bench-peers` (3,000 devices), and one paced paho publisher process sending motion and climate
state messages at `--rate` for `--duration` seconds. Per thread of the telemetry process: CPU seconds over
the window (from /proc) divided by the messages it received. No gateway process, no alarms: this is what
the telemetry lane costs.

    .venv/bin/python benchmarks/telemetry_threads.py [--rate 4000] [--duration 10] [--tree DIR]

`--tree` runs another checkout of Careline (e.g. `git worktree add /tmp/before <commit>`), so a change is
measured against what it replaced on the same machine, minutes apart. Writes
benchmarks/results/telemetry_threads.json (one entry per tree and rate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from support import zigbee2mqtt_homes  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "telemetry_threads.json"
HOMES = 1000
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def directory() -> dict[str, Any]:
    return zigbee2mqtt_homes(HOMES)


def publish(port: int, rate: float, seconds: float, go: Any) -> None:
    """Paced QoS 0 state messages, in 2 ms ticks (a process of its own)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-threads-sensors")
    client.connect("127.0.0.1", port)
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.loop_start()
    go.wait()
    rng, started, sent, total = random.Random(1), time.monotonic(), 0, int(rate * seconds)
    while sent < total:
        due = min(total, int((time.monotonic() - started) * rate) + 1)
        while sent < due:
            home = rng.randrange(HOMES)
            if sent % 2:
                topic, state = f"zigbee2mqtt/motion-{home}", {"occupancy": sent % 4 == 1, "battery": 87}
                state |= {"voltage": 2985, "linkquality": 120}
            else:
                topic, state = f"zigbee2mqtt/climate-{home}", {"temperature": 21.5, "humidity": 48.2}
                state |= {"battery": 91, "linkquality": 98}
            client.publish(topic, json.dumps(state).encode(), qos=0)
            sent += 1
        time.sleep(0.002)
    time.sleep(1)
    client.disconnect()
    client.loop_stop()


def threads(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of `pid`, by name and id."""
    seconds = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rpartition(")")[2].split()
        seconds[f"{name} ({tid})"] = (int(fields[11]) + int(fields[12])) / TICKS_PER_S
    return seconds


async def run(rate: float, seconds: float) -> dict[str, Any]:
    from services import InfluxDB1, Mosquitto

    from gateway.config import CarelineConfig
    from gateway.telemetry_process import TelemetryProcess

    with Mosquitto() as broker, InfluxDB1() as influx, tempfile.TemporaryDirectory() as tmp:
        influx.create_database("bench")
        settings = {
            "broker": {"url": broker.url, "client_id": "bench-threads"},
            "storage": {"url": f"sqlite:///{tmp}/unused.db"},
            "telemetry": {
                "backend": "influxdb1",
                "url": influx.url,
                "database": "bench",
                "spool_dir": f"{tmp}/spool",
            },
            **directory(),
        }
        statuses: list[dict[str, Any]] = []
        child = TelemetryProcess(
            CarelineConfig.model_validate(settings),
            on_decisions=lambda _decisions: None,
            on_dead_letters=lambda _letters: None,
            on_status=statuses.append,
        )
        child.start(asyncio.get_running_loop())
        try:
            await asyncio.wait_for(child.connected.wait(), 30)
            pid = child._process.pid if child._process else 0
            go = mp.Event()
            publisher = mp.Process(target=publish, args=(broker.port, rate, seconds, go))
            publisher.start()
            await asyncio.sleep(2)
            before, received_before = threads(pid), statuses[-1]["received"]
            go.set()
            await asyncio.sleep(seconds + 3)
            after, last = threads(pid), statuses[-1]
            publisher.join()
        finally:
            child.stop()
    received = last["received"] - received_before
    by_thread = {name: (after[name] - before.get(name, 0.0)) / received * 1e6 for name in after}
    return {
        "rate": rate,
        "received": received,
        "queue_depth_at_end": last["queue_depth"],
        "dropped": last["dropped"],
        "written_points": last["writer"]["written_points"],
        "us_per_message_by_thread": {k: round(v, 1) for k, v in by_thread.items() if v >= 0.5},
        "us_per_message": round(sum(by_thread.values()), 1),
    }


def _revision(tree: Path) -> str:
    answer = subprocess.run(
        ["git", "-C", str(tree), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    )
    return answer.stdout.strip()[:90]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=4000)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--tree", type=Path, default=ROOT, help="the Careline checkout to measure")
    args = parser.parse_args()
    tree = args.tree.resolve()
    # The services come from this checkout's tests; the gateway's code from the tree measured.
    sys.path[:0] = [str(tree), str(ROOT / "tests")]
    result = {"tree": _revision(tree), "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    result |= asyncio.run(run(args.rate, args.duration))
    print(json.dumps(result, indent=2))
    kept = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    RESULTS.write_text(json.dumps([*kept, result], indent=2) + "\n")


if __name__ == "__main__":
    main()
