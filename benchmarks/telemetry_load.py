"""Telemetry under load: sustained MQTT → InfluxDB msgs/s, and the SOS latency measured during that load.

Real Mosquitto, real InfluxDB 1.6.7 (backend influxdb1; or VictoriaMetrics with backend influxdb2 through
`--backend influxdb2`), the real gateway as its own process (`python -m careline run`) configured with
`--residents` residents, each with a vitals monitor (telemetry) and a pendant (SOS). Telemetry comes from
`--workers` paho publisher processes (QoS 0, TCP_NODELAY, native `heart_rate` events, paced in 2 ms ticks),
one phase per rate in `--rates`, `--duration` seconds each; DURING every phase an SOS is pressed every
`--sos-interval` seconds on rotating pendants (the first round opens incidents, later rounds join them)
and timed from publish to the incident frame on a logged-in WebSocket. After each phase: points that
reached the store (InfluxQL `count(value)` over the phase's time window), what the gateway received and
dropped (`/metrics`), the writer's status (`/api/health/details`), and CPU of every process involved.
Prints a JSON summary, writes benchmarks/results/telemetry_load.json and the table in docs/benchmarks.md.

    .venv/bin/python benchmarks/telemetry_load.py [--rates 2000,5000,7500,10000] [--duration 15]
                                                  [--backend influxdb1|influxdb2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections import defaultdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import Publisher  # noqa: E402
from services import InfluxDB1, Mosquitto, VictoriaMetrics, free_port  # noqa: E402
from support import prometheus_values, start_gateway  # noqa: E402

from devices.model import EventKind  # noqa: E402
from simulators.payloads import careline_event  # noqa: E402

try:
    import psutil
except ImportError:  # pragma: no cover - /proc is read instead
    psutil = None
#: What reading a process's figures may raise when it has just gone away.
PROC_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, *((psutil.Error,) if psutil else ()))

PASSWORD = "benchmark-operator-pw"
SITE = "bench"
DATABASE = "bench"
TOKEN_ENV = "BENCH_INFLUX_TOKEN"
TICK_S = 0.002
SOS_WAIT_S = 10.0
SETTLE_MAX_S = 20.0
WARMUP_RATE, WARMUP_S, IDLE_S = 1000, 3.0, 5.0
#: Bytes of one telemetry PUBLISH on the wire (fixed header, topic, payload), to turn bytes into messages.
WIRE_BYTES = 4 + len(
    f"careline/{SITE}/v100/telemetry".encode()
    + careline_event(EventKind.HEART_RATE, 72, event_id=f"w0-{0:012d}", ts_ms=time.time() * 1000)
)
RESULTS = ROOT / "benchmarks" / "results" / "telemetry_load.json"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- telemetry-load:begin -->", "<!-- telemetry-load:end -->"


# --- configuration and processes -------------------------------------------------------------------------


def _config(
    broker_url: str, workdir: Path, http_port: int, residents: int, telemetry: dict[str, Any]
) -> dict[str, Any]:
    rooms = (residents + 1) // 2
    devices: list[dict[str, Any]] = []
    for n in range(residents):
        common = {"site": SITE, "room": f"room-{n // 2}", "resident": f"r{n}"}
        devices += [{"id": f"v{n}", "type": "vitals_monitor", **common}]
        devices += [{"id": f"p{n}", "type": "sos_button", **common}]
    return {
        "broker": {"url": broker_url, "client_id": "careline-bench-load"},
        "storage": {"url": f"sqlite:///{workdir / 'careline.db'}"},
        "http": {"host": "127.0.0.1", "port": http_port},
        "sites": [
            {"id": SITE, "name": "Benchmark Care Home", "rooms": [{"id": f"room-{n}"} for n in range(rooms)]}
        ],
        "residents": [
            {"id": f"r{n}", "name": f"Resident {n}", "site": SITE, "room": f"room-{n // 2}"}
            for n in range(residents)
        ],
        "devices": devices,
        "telemetry": {**telemetry, "spool_dir": str(workdir / "spool")},
    }


def _telemetry_worker(port: int, worker: int, workers: int, residents: int, conn: Connection) -> None:
    """A publisher process: on ("run", rate, duration, start_at) publish paced heart_rate readings."""
    publisher = Publisher(port)
    devices = [f"v{n}" for n in range(worker, residents, workers)]
    topics = [f"careline/{SITE}/{device}/telemetry" for device in devices]
    last_ts = [0] * len(devices)
    seq = 0
    conn.send("ready")
    try:
        while (command := conn.recv()) is not None:
            rate, duration, start_at = command
            total = int(rate * duration)
            time.sleep(max(0.0, start_at - time.time()))
            cpu0 = time.process_time()
            mono0 = time.monotonic() - (time.time() - start_at)
            deadline = mono0 + duration * 1.5 + 1
            sent, behind_s, info = 0, 0.0, None
            first_ms = last_ms = int(time.time() * 1000)
            while sent < total and (now := time.monotonic()) < deadline:
                due = min(total, int((now - mono0) * rate) + 1)
                behind_s = max(behind_s, (due - sent - 1) / rate)
                wall_ms = int(time.time() * 1000)
                while sent < due:
                    i = seq % len(devices)
                    # InfluxDB keeps one point per series and timestamp: never reuse a millisecond.
                    last_ts[i] = ts = max(wall_ms, last_ts[i] + 1)
                    last_ms = max(last_ms, ts)
                    payload = careline_event(
                        EventKind.HEART_RATE, 60 + seq % 30, event_id=f"w{worker}-{seq:012d}", ts_ms=ts
                    )
                    info = publisher.send(topics[i], payload, qos=0)
                    seq += 1
                    sent += 1
                time.sleep(max(0.0, mono0 + sent / rate - time.monotonic() + TICK_S))
            elapsed = time.monotonic() - mono0
            if info is not None:
                with contextlib.suppress(Exception):
                    info.wait_for_publish(10)
            conn.send(
                {
                    "sent": sent,
                    "target": total,
                    "elapsed_s": elapsed,
                    "flushed_s": time.monotonic() - mono0,
                    "max_behind_ms": behind_s * 1000,
                    "cpu_s": time.process_time() - cpu0,
                    "first_ms": first_ms,
                    "last_ms": last_ms,
                }
            )
    finally:
        publisher.close()


# --- measurements ----------------------------------------------------------------------------------------


def _proc_cpu(path: str) -> float:
    with open(path) as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> dict[str, Any]:
    """CPU seconds of a process (psutil, else /proc) and of each of its threads (from /proc)."""
    try:
        if psutil is not None:
            times = psutil.Process(pid).cpu_times()
            total = times.user + times.system
        else:
            total = _proc_cpu(f"/proc/{pid}/stat")
        threads = {}
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                threads[int(task)] = _proc_cpu(f"/proc/{pid}/task/{task}/stat")
    except PROC_ERRORS:
        return {"total": 0.0, "threads": {}}
    return {"total": total, "threads": threads}


def _cpu_use(before: dict[str, Any], after: dict[str, Any], wall_s: float, pid: int) -> dict[str, Any]:
    """Percent of one core: the whole process, its main thread, and its busiest other threads."""
    pct = round((after["total"] - before["total"]) / wall_s * 100, 1)
    threads = {
        tid: (t - before["threads"].get(tid, 0.0)) / wall_s * 100 for tid, t in after["threads"].items()
    }
    others = sorted((v for tid, v in threads.items() if tid != pid), reverse=True)
    return {
        "pct": pct,
        "main_thread_pct": round(threads.get(pid, 0.0), 1),
        "busiest_other_threads_pct": [round(v, 1) for v in others[:3]],
    }


def _socket_backlog(gateway_pid: int, broker_port: int) -> int:
    """Bytes from the broker not yet read by the gateway: its sockets' receive queues plus the broker's
    send queues towards them (kernel buffers on loopback, from /proc/net/tcp)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{gateway_pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{gateway_pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
    rows = []
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            f = line.split()
            tx, rx = (int(v, 16) for v in f[4].split(":"))
            rows.append((int(f[1].split(":")[1], 16), int(f[2].split(":")[1], 16), tx, rx, int(f[9])))
    mine = [r for r in rows if r[4] in inodes and r[1] == broker_port]
    ports = {r[0] for r in mine}
    return sum(r[3] for r in mine) + sum(r[2] for r in rows if r[0] == broker_port and r[1] in ports)


def _rss_mb(pid: int) -> int | None:
    try:
        if psutil is not None:
            return round(psutil.Process(pid).memory_info().rss / 2**20)
        with open(f"/proc/{pid}/statm") as statm:
            return round(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20)
    except PROC_ERRORS:
        return None


class Gauges:
    """What the gateway says about itself: `/metrics` and `/api/health/details`."""

    RECEIVED = 'careline_messages_received_total{lane="telemetry"}'
    DROPPED = "careline_telemetry_dropped_total"
    DEAD = 'careline_dead_letters_total{lane="telemetry"}'
    DEPTH = 'careline_lane_queue_depth{lane="telemetry"}'

    def __init__(self, http: httpx.AsyncClient, gateway_pid: int, broker_port: int) -> None:
        self.http = http
        self.gateway_pid = gateway_pid
        self.broker_port = broker_port

    async def read(self) -> dict[str, Any]:
        metrics = prometheus_values((await self.http.get("/metrics")).text)
        # The writer's state is among the health details, which need the login this client holds.
        writer = (await self.http.get("/api/health/details")).json().get("telemetry") or {}
        return {
            "t": time.monotonic(),
            "received": metrics.get(self.RECEIVED, 0.0),
            "dropped": metrics.get(self.DROPPED, 0.0),
            "dead_letters": metrics.get(self.DEAD, 0.0),
            "queue_depth": metrics.get(self.DEPTH, 0.0),
            "commit_sum": metrics.get("careline_alarm_commit_seconds_sum", 0.0),
            "commit_count": metrics.get("careline_alarm_commit_seconds_count", 0.0),
            "writer": writer,
            "socket_bytes": _socket_backlog(self.gateway_pid, self.broker_port),
        }

    async def sample(self, timeline: list[dict[str, Any]], stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                timeline.append(await self.read())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


def _unaccounted(g: dict[str, Any]) -> float:
    """Telemetry messages the gateway received but has neither stored, dropped nor dead-lettered yet."""
    w = g["writer"]
    done = w.get("written_points", 0) + w.get("dropped_points", 0)
    return g["received"] - g["dropped"] - g["dead_letters"] - done


class Store:
    """Counts the heart_rate points in the telemetry store within a time window."""

    def __init__(self, server: InfluxDB1 | VictoriaMetrics) -> None:
        self.server = server

    def count(self, lo_ms: int, hi_ms: int) -> int:
        if isinstance(self.server, InfluxDB1):
            q = f"SELECT count(value) FROM heart_rate WHERE time >= {lo_ms}ms AND time < {hi_ms}ms"
            series = self.server.query(q, db=DATABASE)["results"][0].get("series")  # type: ignore[index]
            return int(series[0]["values"][0][1]) if series else 0
        self.server.flush()
        query = urllib.parse.urlencode(
            {"match[]": "heart_rate_value", "start": lo_ms / 1000, "end": (hi_ms - 1) / 1000}
        )
        with urllib.request.urlopen(f"{self.server.url}/api/v1/export?{query}", timeout=30) as response:
            lines = response.read().decode().splitlines()
        return sum(len(json.loads(line)["values"]) for line in lines if line.strip())


class SosProbe:
    """Presses rotating pendants and times each press to its incident frame on the WebSocket."""

    def __init__(self, ws: websockets.ClientConnection, device: Publisher, residents: int) -> None:
        self.ws = ws
        self.device = device
        self.residents = residents
        self.presses = 0
        self.count: dict[str, int] = defaultdict(int)
        self.pending: dict[tuple[str, int], float] = {}
        self.latency: dict[tuple[str, int], float] = {}
        self.arrived = asyncio.Event()
        self.closed: str | None = None

    async def receive(self) -> None:
        try:
            while True:
                frame = json.loads(await self.ws.recv())
                if frame.get("type") != "incident":
                    continue
                incident = frame["incident"]
                key = (incident["device_id"], incident["trigger_count"])
                sent = self.pending.pop(key, None)
                if sent is not None:
                    self.latency[key] = (time.time() - sent) * 1000
                    self.arrived.set()
        except websockets.ConnectionClosed as exc:
            self.closed = repr(exc)

    def press(self) -> tuple[str, int]:
        device_id = f"p{self.presses % self.residents}"
        self.presses += 1
        self.count[device_id] += 1
        key = (device_id, self.count[device_id])
        sent_at = time.time()
        self.pending[key] = sent_at
        self.device.send(
            f"careline/{SITE}/{device_id}/alarm",
            careline_event(EventKind.SOS, event_id=uuid.uuid4().hex, ts_ms=sent_at * 1000),
        )
        return key

    async def press_for(self, duration: float, interval: float) -> list[tuple[str, int]]:
        keys = []
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < duration:
            keys.append(self.press())
            n += 1
            await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))
        return keys

    async def wait(self, keys: list[tuple[str, int]], limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while any(k not in self.latency for k in keys) and time.monotonic() < deadline and not self.closed:
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), max(0.01, deadline - time.monotonic()))

    def summary(self, keys: list[tuple[str, int]]) -> dict[str, Any]:
        values = [self.latency[k] for k in keys if k in self.latency]
        result: dict[str, Any] = {
            "sent": len(keys),
            "new_incidents": sum(1 for k in keys if k[1] == 1),
            "joins": sum(1 for k in keys if k[1] > 1),
            "missing": len(keys) - len(values),
        }
        if values:
            array = np.asarray(values)
            for p in (50, 90, 99):
                result[f"p{p}_ms"] = round(float(np.percentile(array, p)), 2)
            result["max_ms"] = round(float(array.max()), 2)
        return result


# --- the run ---------------------------------------------------------------------------------------------


class Bench:
    def __init__(
        self,
        args: argparse.Namespace,
        gauges: Gauges,
        store: Store,
        probe: SosProbe,
        pipes: list[Connection],
        pids: dict[str, int],
    ) -> None:
        self.args = args
        self.gauges = gauges
        self.store = store
        self.probe = probe
        self.pipes = pipes
        self.pids = pids

    async def phase(self, name: str, rate: float, duration: float) -> dict[str, Any]:
        start_at = time.time() + 0.5
        for conn in self.pipes if rate else []:
            conn.send((rate / len(self.pipes), duration, start_at))
        before = await self.gauges.read()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        cpu_before = {proc: _cpu(pid) for proc, pid in self.pids.items()}
        t0 = time.monotonic()
        timeline: list[dict[str, Any]] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(self.gauges.sample(timeline, stop))
        keys = await self.probe.press_for(duration, self.args.sos_interval)
        workers = [await asyncio.to_thread(_recv, conn, duration + 30) for conn in self.pipes] if rate else []
        wall = time.monotonic() - t0
        cpu_after = {proc: _cpu(pid) for proc, pid in self.pids.items()}
        rss = {proc: _rss_mb(self.pids[proc]) for proc in ("gateway", "mosquitto")}
        stop.set()
        await sampler
        at_end = await self.gauges.read()
        await self.probe.wait(keys, SOS_WAIT_S)
        settled_after, after = await self._settle(before)
        published = sum(w["sent"] for w in workers)
        socket_max = max((g["socket_bytes"] for g in timeline), default=0)
        hi_ms = max((w["last_ms"] for w in workers), default=int(time.time() * 1000)) + 1000
        stored = self.store.count(int(start_at * 1000) - 500, hi_ms) if rate else 0
        received = after["received"] - before["received"]
        dropped = after["dropped"] - before["dropped"]
        publish_s = max((w["elapsed_s"] for w in workers), default=duration)
        result: dict[str, Any] = {
            "phase": name,
            "target_per_s": rate,
            "duration_s": round(publish_s, 2),
            "published": published,
            "published_per_s": round(published / publish_s) if rate else 0,
            "publisher_max_behind_ms": round(max((w["max_behind_ms"] for w in workers), default=0.0), 1),
            "received": int(received),
            "received_by_phase_end": int(at_end["received"] - before["received"]),
            "dropped_queue_full": int(dropped),
            "dead_letters": int(after["dead_letters"] - before["dead_letters"]),
            "stored": stored,
            "stored_per_s": round(stored / publish_s) if rate else 0,
            "written_by_phase_end": _written(at_end) - _written(before),
            "backlog_at_phase_end": published - int(_done(at_end) - _done(before)),
            "settle_s": settled_after,
            "telemetry_queue_depth_max": int(max((g["queue_depth"] for g in timeline), default=0)),
            "broker_to_gateway_socket_bytes_max": socket_max,
            "broker_to_gateway_socket_msgs_max": round(socket_max / WIRE_BYTES),
            "writer_buffered_max": max((g["writer"].get("buffered_points", 0) for g in timeline), default=0),
            "writer": _writer_delta(before["writer"], after["writer"]),
            "steady_rates_per_s": _steady(timeline),
            "sos": self.probe.summary(keys),
            "alarm_receipt_to_commit_mean_ms": _mean_commit(before, after),
            "websocket_closed": self.probe.closed,
            "cpu_pct_of_one_core": {
                proc: _cpu_use(cpu_before[proc], cpu_after[proc], wall, pid)
                for proc, pid in self.pids.items()
            },
        }
        result["rss_mb_at_phase_end"] = rss
        result["kept_up"] = (
            None
            if not rate
            else bool(
                published >= 0.99 * rate * duration
                and received == published
                and dropped == 0
                and stored == published
                and result["backlog_at_phase_end"] <= rate * 1.5
            )
        )
        return result

    async def _settle(self, before: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """Wait until the gateway has stored (or dropped) everything it received and nothing moves."""
        start = time.monotonic()
        last = await self.gauges.read()
        while time.monotonic() - start < SETTLE_MAX_S:
            await asyncio.sleep(0.5)
            now = await self.gauges.read()
            quiet = now["received"] == last["received"]
            writer = now["writer"]
            idle = not writer.get("buffered_points") and not writer.get("spool_points")
            last = now
            if quiet and idle and _unaccounted(now) <= _unaccounted(before):
                return round(time.monotonic() - start, 1), now
        return round(time.monotonic() - start, 1), last


def _recv(conn: Connection, limit_s: float) -> Any:
    if not conn.poll(limit_s):
        raise RuntimeError("a telemetry publisher did not report in time")
    return conn.recv()


def _done(g: dict[str, Any]) -> float:
    """Telemetry messages dealt with for good: stored, dropped anywhere, or dead-lettered."""
    w = g["writer"]
    return w.get("written_points", 0) + w.get("dropped_points", 0) + g["dropped"] + g["dead_letters"]


def _written(g: dict[str, Any]) -> int:
    return int(g["writer"].get("written_points", 0))


def _writer_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    counters = ("written_points", "spooled_points", "dropped_points", "failed_writes")
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in counters}
    keep = ("backend", "healthy", "buffered_points", "spool_points", "last_error")
    return {**delta, **{k: after.get(k) for k in keep}}


def _steady(timeline: list[dict[str, Any]]) -> dict[str, int]:
    """Received and written per second over the second half of the phase (after any start-up burst)."""
    if len(timeline) < 4:
        return {}
    a, b = timeline[len(timeline) // 2], timeline[-1]
    dt = b["t"] - a["t"]
    return {
        "received": round((b["received"] - a["received"]) / dt),
        "written": round((_written(b) - _written(a)) / dt),
    }


def _mean_commit(before: dict[str, Any], after: dict[str, Any]) -> float | None:
    count = after["commit_count"] - before["commit_count"]
    return round((after["commit_sum"] - before["commit_sum"]) / count * 1000, 2) if count else None


async def _measure(args: argparse.Namespace, broker: Mosquitto, server: InfluxDB1 | VictoriaMetrics) -> Any:
    workdir = Path(tempfile.mkdtemp(prefix="careline-load-"))
    http_port = free_port()
    if args.backend == "influxdb1":
        assert isinstance(server, InfluxDB1)
        server.create_database(DATABASE)
        telemetry = {"backend": "influxdb1", "url": server.url, "database": DATABASE}
    else:
        telemetry = {
            "backend": "influxdb2",
            "url": server.url,
            "org": DATABASE,
            "bucket": DATABASE,
            "token_env": TOKEN_ENV,
        }
    config_path = workdir / "careline.yaml"
    config_path.write_text(yaml.safe_dump(_config(broker.url, workdir, http_port, args.residents, telemetry)))
    spawn = mp.get_context("spawn")
    pipes, workers = [], []
    for k in range(args.workers):
        parent, child = spawn.Pipe()
        worker = spawn.Process(
            target=_telemetry_worker, args=(broker.port, k, args.workers, args.residents, child), daemon=True
        )
        worker.start()
        pipes.append(parent)
        workers.append(worker)
    gateway = start_gateway(config_path, http_port, workdir, PASSWORD, {TOKEN_ENV: "benchmark-token"})
    device = Publisher(broker.port)
    try:
        for conn in pipes:
            if _recv(conn, 30) != "ready":
                raise RuntimeError("telemetry publisher failed to start")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as http:
            (
                await http.post("/api/login", json={"username": "operator", "password": PASSWORD})
            ).raise_for_status()
            cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
            async with websockets.connect(
                f"ws://127.0.0.1:{http_port}/api/ws", additional_headers={"Cookie": cookie}, max_queue=None
            ) as ws:
                await ws.recv()
                probe = SosProbe(ws, device, args.residents)
                receiver = asyncio.create_task(probe.receive())
                pids = {
                    "gateway": gateway.pid,
                    "mosquitto": broker._process.pid,  # type: ignore[union-attr]  # test helper's own process
                    "store": server._process.pid,  # type: ignore[union-attr]
                    **{f"publisher{k}": w.pid for k, w in enumerate(workers)},
                    "bench": os.getpid(),
                }
                gauges = Gauges(http, gateway.pid, broker.port)
                bench = Bench(args, gauges, Store(server), probe, pipes, pids)
                warmup = await bench.phase("warm-up", WARMUP_RATE, WARMUP_S)
                print(f"warm-up: stored {warmup['stored']} of {warmup['published']}", flush=True)
                phases = [await bench.phase("idle", 0, IDLE_S)]
                print("idle: SOS", phases[-1]["sos"], flush=True)
                for rate in args.rates:
                    phases.append(await bench.phase(f"{rate:,.0f}/s", rate, args.duration))
                    p = phases[-1]
                    print(
                        f"{p['phase']}: published {p['published']}, received {p['received']}, "
                        f"dropped {p['dropped_queue_full']}, stored {p['stored']} ({p['stored_per_s']}/s), "
                        f"gateway CPU {p['cpu_pct_of_one_core']['gateway']}, SOS {p['sos']}",
                        flush=True,
                    )
                receiver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiver
    finally:
        device.close()
        for conn in pipes:
            with contextlib.suppress(OSError):
                conn.send(None)
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.terminate()
                worker.join(5)
        # Warnings up to here are the run's; the lanes' "disconnected" at shutdown are not.
        log = (workdir / "gateway.log").read_text(errors="replace").splitlines()
        gateway.terminate()
        try:
            gateway.wait(20)
        except subprocess.TimeoutExpired:
            gateway.kill()
            gateway.wait()
    problems = [line for line in log if " WARNING " in line or " ERROR " in line or " CRITICAL " in line]
    shutil.rmtree(workdir, ignore_errors=True)  # kept (gateway.log, config) only when the run failed
    return phases, problems


def _run(args: argparse.Namespace) -> dict[str, Any]:
    with Mosquitto() as broker:
        server: InfluxDB1 | VictoriaMetrics
        with InfluxDB1() if args.backend == "influxdb1" else VictoriaMetrics() as server:
            phases, problems = asyncio.run(_measure(args, broker, server))
    return {
        "backend": args.backend,
        "store": "InfluxDB 1.6.7"
        if args.backend == "influxdb1"
        else "VictoriaMetrics 1.79.5 (/api/v2/write)",
        "residents": args.residents,
        "publisher_processes": args.workers,
        "sos_interval_s": args.sos_interval,
        "phases": phases,
        "gateway_log_warnings": len(problems),
        "gateway_log_warning_examples": problems[:5],
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


# --- output ----------------------------------------------------------------------------------------------


def _table(run: dict[str, Any]) -> list[str]:
    rows = []
    for p in run["phases"]:
        sos = p["sos"]
        cpu = p["cpu_pct_of_one_core"]["gateway"]
        rate = p["target_per_s"]
        cells = [
            p["phase"],
            f"{p['published_per_s']:,}" if rate else "–",
            f"{p['received_by_phase_end']:,} / {p['published']:,}" if rate else "–",
            f"{p['dropped_queue_full']:,}" if rate else "–",
            f"{p['stored']:,}" if rate else "–",
            f"{p['stored_per_s']:,}" if rate else "–",
            ("yes" if p["kept_up"] else "**no**") if rate else "–",
            f"{sos.get('p50_ms', '–')} / {sos.get('p90_ms', '–')} / {sos.get('p99_ms', '–')} / "
            f"{sos.get('max_ms', '–')} (n={sos['sent'] - sos['missing']}"
            + (f", {sos['missing']} missing)" if sos["missing"] else ")"),
            f"{cpu['pct']} ({cpu['main_thread_pct']})",
        ]
        rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines = [
        f"**{run['store']}** (backend `{run['backend']}`), {run['residents']} residents, "
        f"{run['publisher_processes']} publisher processes. Measured {run['when']} on "
        f"{run['machine']['cpus']} cores, Python {run['machine']['python']}.",
        "",
        "| phase | published msg/s | received by phase end / published | dropped (queue full) "
        "| points in store | stored msg/s | kept up | SOS → WebSocket p50 / p90 / p99 / max ms "
        "| gateway CPU % (event loop) |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    behind = next((p for p in run["phases"] if p["kept_up"] is False), None)
    if behind is not None:
        steady = behind["steady_rates_per_s"]
        lines += [
            "",
            f"Falls behind at {behind['phase']}: over the second half of the phase the gateway took in "
            f"{steady.get('received', 0):,} msg/s and wrote {steady.get('written', 0):,} points/s; "
            f"{behind['backlog_at_phase_end']:,} messages were not yet stored when publishing stopped "
            f"(all stored {behind['settle_s']} s later). Up to "
            f"{behind['broker_to_gateway_socket_bytes_max'] / 1e6:.1f} MB "
            f"(≈ {behind['broker_to_gateway_socket_msgs_max']:,} messages) waited in the broker → gateway "
            f"TCP buffers while the telemetry lane's queue showed depth "
            f"{behind['telemetry_queue_depth_max']} and {behind['dropped_queue_full']} were dropped: the "
            "backlog builds up before the bounded queue, where `telemetry_queue_max` does not see it.",
        ]
    return lines


_INTRO = """
## Telemetry load: sustained MQTT → InfluxDB, with SOS latency under that load

Command: `.venv/bin/python benchmarks/telemetry_load.py` (about 1.5 minutes; `--backend influxdb2` runs
the same against VictoriaMetrics through `/api/v2/write`; raw figures, per-thread CPU, socket backlog and
the writer's status in `benchmarks/results/telemetry_load.json`).

Set-up: a real Mosquitto 2.0.11 and a real InfluxDB 1.6.7 on loopback; the gateway as its own process
(`python -m careline run`, telemetry backend `influxdb1` with the default batch of 5,000 points / 1 s flush
and the default telemetry queue of 50,000) with 200 residents, each with a vitals monitor and a pendant.
Two paho publisher processes (QoS 0, TCP_NODELAY) send native `heart_rate` events at a steady rate, paced
in 2 ms ticks, 15 s per phase; during every phase (and a 5 s *idle* phase without telemetry) an SOS is
pressed every 100 ms on rotating pendants (QoS 1; the first round opens incidents, later ones join them)
and timed from `publish()` to the incident frame on a logged-in WebSocket.

- *received by phase end*: `careline_messages_received_total{lane="telemetry"}` when publishing stopped;
  *dropped*: `careline_telemetry_dropped_total`.
- *points in store*: InfluxQL `count(value)` over the phase's time window once the gateway has settled;
  *stored msg/s* is that count over the phase's duration, so it includes points written after the end.
- *kept up*: everything published was received and stored, none dropped, and less than 1.5 s of traffic
  was still unstored when publishing stopped.
- CPU in % of one core (100 = one core busy) for the whole gateway process and, in brackets, its main
  thread (the asyncio event loop). Publishers, broker, InfluxDB and gateway share the two cores.
"""


def _write(run: dict[str, Any]) -> None:
    previous: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        previous = json.loads(RESULTS.read_text()).get("runs", {})
    runs = {**previous, run["backend"]: run}
    RESULTS.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    body = [BEGIN]
    for name in ("influxdb1", "influxdb2"):
        if name in runs:
            body += [*_table(runs[name]), ""]
    body[-1:] = [END]
    block = "\n".join(body)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n" + _INTRO + "\n" + block + "\n"
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="2000,5000,7500,10000", help="telemetry msg/s, one phase each")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase")
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="telemetry publisher processes")
    parser.add_argument("--sos-interval", type=float, default=0.1, help="seconds between SOS presses")
    parser.add_argument("--backend", choices=("influxdb1", "influxdb2"), default="influxdb1")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    results = _run(args)
    print(json.dumps(results, indent=2))
    if not args.no_write:
        _write(results)


if __name__ == "__main__":
    main()
