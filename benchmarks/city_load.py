"""A city's homes on one machine: `careline run` (one instance, or two on PostgreSQL) under the device mix of
benchmarks/city_inputs.yaml, on a real Mosquitto and InfluxDB 1.6.7, to check benchmarks/city_model.py.

The directory is `--homes` homes (250 to a site) of one resident each with the mix's devices (a pendant, a
door sensor, a PIR, a smoke detector; a bed sensor in some), all native Careline JSON. Phases, each
`--seconds` long after an idle one:

  telemetry  heartbeats, motion, bed and battery reports (QoS 0, `careline/<site>/<device>/telemetry`)
             in the mix's proportions, at `--telemetry-rate` messages a second;
  doors      door opened / closed on the alarm lane (QoS 1) at `--door-rate`: daytime, no one at risk of
             wandering, so no incident (what most alarm-lane traffic of a city is);
  sos        SOS presses (QoS 1) at `--sos-rate`, each on a pendant not pressed before (a new incident
             with its escalation);
  city       all three at once in the mix's own proportions at the city's busiest hour, scaled so the
             telemetry is `--telemetry-rate` (SOS at least 1 a second, so there is a latency to read).

Each phase's CPU (psutil, user + system) per process over the phase, minus what the same process used
idle, divided by what it handled, is the measured cost; the city phase's CPU is compared with what the
single phases predict for its rates. SOS latency is publish → the committed incident's frame on an
operator's WebSocket (on the first instance; with two, an SOS the second took reaches it through
PostgreSQL's LISTEN/NOTIFY). Two instances share the alarm lane (`cluster.share_group`) on one
PostgreSQL 15 (fsync on, as benchmarks/pg_writes.py starts it).

    .venv/bin/python benchmarks/city_load.py [--instances 1|2] [--homes 2250] [--seconds 20]
Writes benchmarks/results/city_load-<instances>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import websockets
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks"), str(ROOT / "benchmarks" / "peers")]

from generator import RawPublisher, connect  # noqa: E402
from pg_writes import postgres  # noqa: E402
from services import InfluxDB1, Mosquitto, free_port  # noqa: E402
from support import prometheus_values  # noqa: E402

INPUTS = ROOT / "benchmarks" / "city_inputs.yaml"
PASSWORD = "benchmark-operator-pw"
PER_SITE = 250
DATABASE = "city"
DAY_S = 86_400.0


def _inputs() -> dict[str, Any]:
    inputs: dict[str, Any] = yaml.safe_load(INPUTS.read_text())
    return inputs


def _has_bed(home: int, share: float) -> bool:
    return (home * 7919) % 100 < share * 100


def directory(homes: int, mix: dict[str, Any]) -> dict[str, Any]:
    share = mix["bed_sensor_share"]
    sites = [
        {
            "id": f"area-{s}",
            "name": f"Area {s}",
            "kind": "district",
            "rooms": [{"id": f"home-{n}"} for n in range(s * PER_SITE, min(homes, (s + 1) * PER_SITE))],
        }
        for s in range((homes + PER_SITE - 1) // PER_SITE)
    ]
    residents, devices = [], []
    for n in range(homes):
        place = {"site": f"area-{n // PER_SITE}", "room": f"home-{n}"}
        residents.append({"id": f"r{n}", "name": f"Resident {n}", **place})
        kinds = [
            ("pendant", "sos_button"),
            ("door", "door_sensor"),
            ("pir", "motion_sensor"),
            ("smoke", "smoke_detector"),
        ]
        if _has_bed(n, share):
            kinds.append(("bed", "bed_sensor"))
        devices += [{"id": f"{name}-{n}", "type": kind, "resident": f"r{n}", **place} for name, kind in kinds]
    return {"sites": sites, "residents": residents, "devices": devices}


def _config(
    broker_url: str,
    store_url: str,
    influx_url: str,
    workdir: Path,
    http_port: int,
    instance: int,
    instances: int,
    homes: int,
    mix: dict[str, Any],
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker": {"url": broker_url, "client_id": f"careline-city-{instance}"},
        "storage": {"url": store_url},
        "http": {"host": "127.0.0.1", "port": http_port},
        **directory(homes, mix),
        "telemetry": {
            "backend": "influxdb1",
            "url": influx_url,
            "database": DATABASE,
            "spool_dir": str(workdir / f"spool-{instance}"),
        },
    }
    if instances > 1:
        config["cluster"] = {"share_group": "careline"}
    return config


# -- the load ------------------------------------------------------------------------------------------


def telemetry_schedule(homes: int, mix: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(topic, kind, value JSON) in the mix's proportions: each device as often as it reports a day."""
    per_day = mix["telemetry_per_device_per_day"]
    unit = min(v["messages"] for v in per_day.values())
    entries: list[tuple[str, str, str]] = []
    for n in range(homes):
        site = f"area-{n // PER_SITE}"
        for device, spec in per_day.items():
            if device == "bed" and not _has_bed(n, mix["bed_sensor_share"]):
                continue
            for k in range(round(spec["messages"] / unit)):
                kind, value = spec["kinds"][k % len(spec["kinds"])]
                entries.append((f"careline/{site}/{device}-{n}/telemetry", kind, json.dumps(value)))
    random.Random(13).shuffle(entries)
    return entries


def telemetry_worker(port: int, worker: int, workers: int, homes: int, conn: Connection) -> None:
    publisher = RawPublisher(port, f"city-telemetry{worker}")
    entries = telemetry_schedule(homes, _inputs()["mix"])[worker::workers]
    cycle = itertools.cycle(entries)
    conn.send("ready")
    try:
        while (command := conn.recv()) is not None:
            rate, duration, start_at = command
            time.sleep(max(0.0, start_at - time.time()))
            total, sent, t0 = int(rate * duration), 0, time.monotonic()
            while sent < total and time.monotonic() < t0 + duration * 1.5 + 1:
                due = min(total, int((time.monotonic() - t0) * rate) + 1)
                while sent < due:
                    topic, kind, value = next(cycle)
                    ms = int(time.time() * 1000)
                    payload = (
                        f'{{"v":1,"event_id":"{uuid.uuid4().hex}","ts":{ms},"kind":"{kind}","value":{value}}}'
                    )
                    publisher.publish(topic, payload.encode())
                    sent += 1
                publisher.flush()
                time.sleep(max(0.0, t0 + sent / rate - time.monotonic() + 0.002))
            conn.send({"sent": sent, "elapsed_s": time.monotonic() - t0})
            while not conn.poll(1.0):
                publisher.keep_alive()
    finally:
        publisher.close()


def alarm_worker(port: int, homes: int, conn: Connection) -> None:
    """Door events and SOS presses at QoS 1 (paho, its own network thread)."""
    client = connect(port, "city-alarms")
    doors = itertools.cycle(range(homes))
    door_open: dict[int, bool] = {}
    pendants = iter(range(homes))
    conn.send("ready")
    while (command := conn.recv()) is not None:
        door_rate, sos_rate, duration, start_at = command
        time.sleep(max(0.0, start_at - time.time()))
        t0 = time.monotonic()
        doors_sent, sos_sent = 0, {}
        next_door, next_sos = t0, t0
        while (now := time.monotonic()) < t0 + duration:
            while door_rate and next_door <= now:
                n = next(doors)
                kind = "door_closed" if door_open.get(n) else "door_open"
                door_open[n] = not door_open.get(n)
                ms = int(time.time() * 1000)
                payload = f'{{"v":1,"event_id":"{uuid.uuid4().hex}","ts":{ms},"kind":"{kind}"}}'
                client.publish(f"careline/area-{n // PER_SITE}/door-{n}/alarm", payload.encode(), qos=1)
                doors_sent += 1
                next_door += 1 / door_rate
            while sos_rate and next_sos <= now:
                n = next(pendants)
                device = f"pendant-{n}"
                sent_at = time.time()
                payload = f'{{"v":1,"event_id":"{uuid.uuid4().hex}","ts":{int(sent_at * 1000)},"kind":"sos"}}'
                client.publish(f"careline/area-{n // PER_SITE}/{device}/alarm", payload.encode(), qos=1)
                sos_sent[device] = sent_at
                next_sos += 1 / sos_rate
            time.sleep(
                max(
                    0.0,
                    min(next_door if door_rate else 1e18, next_sos if sos_rate else 1e18, t0 + duration)
                    - time.monotonic(),
                )
            )
        conn.send({"doors": doors_sent, "sos": sos_sent})
    client.loop_stop()
    client.disconnect()


# -- watching ------------------------------------------------------------------------------------------


def _cpu(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    except psutil.Error:
        return 0.0


def _tree(pid: int) -> list[int]:
    try:
        return [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return []


class Watch:
    """CPU seconds of the processes that matter, each named."""

    def __init__(self, named: dict[str, int | list[int]]) -> None:
        self.named = named

    def sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, pids in self.named.items():
            out[name] = sum(_cpu(p) for p in (pids if isinstance(pids, list) else [pids]))
        return out

    def rss_mb(self, names: list[str]) -> float:
        total = 0
        for name in names:
            pids = self.named[name]
            for pid in pids if isinstance(pids, list) else [pids]:
                with contextlib.suppress(psutil.Error):
                    total += psutil.Process(pid).memory_info().rss
        return round(total / 2**20, 1)


def _gateway_processes(pid: int, label: str) -> dict[str, int]:
    """The gateway and its telemetry child (the child whose command line is not the resource tracker's)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = [
            p for p in psutil.Process(pid).children() if "resource_tracker" not in " ".join(p.cmdline())
        ]
        if children:
            return {f"{label}-gateway": pid, f"{label}-telemetry": children[0].pid}
        time.sleep(0.2)
    return {f"{label}-gateway": pid}


async def _metrics(ports: list[int]) -> dict[str, float]:
    totals: dict[str, float] = {}
    async with httpx.AsyncClient() as http:
        for port in ports:
            values = prometheus_values((await http.get(f"http://127.0.0.1:{port}/metrics")).text)
            for key, value in values.items():
                if key.startswith(
                    ("careline_messages_received_total", "careline_incidents_opened_total")
                ) or (key == "careline_telemetry_dropped_total"):
                    name = key.split("{rule=")[0] if key.startswith("careline_incidents") else key
                    totals[name] = totals.get(name, 0.0) + value
    return totals


def _points(influx: InfluxDB1) -> float:
    stats = httpx.get(f"{influx.url}/debug/vars").json()
    return float(
        sum(v["values"].get("pointsWrittenOK", 0) for k, v in stats.items() if k.startswith("httpd"))
    )


def _start(
    config_path: Path, workdir: Path, http_port: int, env: dict[str, str], log: str
) -> subprocess.Popen[bytes]:
    with (workdir / log).open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "careline", "run", "--config", str(config_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"http://127.0.0.1:{http_port}/api/readyz").status_code == 200:
                return process
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"gateway did not start: {(workdir / log).read_text()[-3000:]}")


def _commit() -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    )
    return out.stdout.strip()


def _add_operator(config_path: Path, workdir: Path, env: dict[str, str]) -> None:
    command = ["user", "add", "--config", str(config_path), "operator", "--role", "operator"]
    subprocess.run(
        [sys.executable, "-m", "careline", *command, "--password-env", "BENCH_PW"],
        check=True,
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def _store(instances: int, workdir: Path) -> Iterator[tuple[str, int | None]]:
    if instances == 1:
        yield f"sqlite:///{workdir / 'careline.db'}", None
        return
    with postgres() as (port, pid):
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", pid


# -- the run -------------------------------------------------------------------------------------------


async def _listen(ws: websockets.ClientConnection, arrived: dict[str, float]) -> None:
    while True:
        try:
            frame = json.loads(await ws.recv())
        except websockets.ConnectionClosed:
            return
        if frame.get("type") == "incident":
            incident = frame["incident"]
            if incident.get("trigger_count") == 1:
                arrived.setdefault(incident["device_id"], time.time())


def _per_home_peak(inputs: dict[str, Any]) -> dict[str, float]:
    mix = inputs["mix"]
    peak = inputs["peak_hour_factor"]["value"]
    telemetry = sum(
        spec["messages"] * (mix["bed_sensor_share"] if device == "bed" else 1.0)
        for device, spec in mix["telemetry_per_device_per_day"].items()
    )
    return {
        "telemetry": telemetry / DAY_S * peak,
        "doors": mix["door_events_per_home_per_day"]["value"] / DAY_S * peak,
        "sos": inputs["alarms_per_home_per_day"]["value"] / DAY_S * peak,
    }


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    inputs = _inputs()
    workdir = Path(tempfile.mkdtemp(prefix="careline-city-"))
    env = {**os.environ, "BENCH_PW": PASSWORD, "PYTHONPATH": str(ROOT)}
    peak = _per_home_peak(inputs)
    homes_equivalent = args.telemetry_rate / peak["telemetry"]
    city = {
        "telemetry": args.telemetry_rate,
        "doors": homes_equivalent * peak["doors"],
        "sos_model": homes_equivalent * peak["sos"],
    }
    city["sos"] = max(1.0, city["sos_model"])
    phases = [
        ("idle", 0.0, 0.0, 0.0),
        ("telemetry", args.telemetry_rate, 0.0, 0.0),
        ("doors", 0.0, args.door_rate, 0.0),
        ("sos", 0.0, 0.0, args.sos_rate),
        ("city", city["telemetry"], city["doors"], city["sos"]),
    ]
    if args.idle_only:
        phases = phases[:1]
    elif args.phases:
        phases = [p for p in phases if p[0] == "idle" or p[0] in args.phases.split(",")]
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "commit": _commit(),
        "instances": args.instances,
        "homes": args.homes,
        "seconds": args.seconds,
        "city_rates": city,
        "homes_equivalent_at_peak": round(homes_equivalent),
        "argv": sys.argv[1:],
        "load_average_at_start": os.getloadavg(),
        "phases": {},
    }
    with Mosquitto() as broker, InfluxDB1() as influx, _store(args.instances, workdir) as (store_url, pg_pid):
        influx.create_database(DATABASE)
        ports = [free_port() for _ in range(args.instances)]
        paths = []
        for i, port in enumerate(ports):
            path = workdir / f"careline-{i + 1}.yaml"
            path.write_text(
                yaml.safe_dump(
                    _config(
                        broker.url,
                        store_url,
                        influx.url,
                        workdir,
                        port,
                        i + 1,
                        args.instances,
                        args.homes,
                        inputs["mix"],
                    )
                )
            )
            paths.append(path)
        _add_operator(paths[0], workdir, env)
        gateways = []
        started = time.monotonic()
        for i, (path, port) in enumerate(zip(paths, ports, strict=True)):
            gateways.append(_start(path, workdir, port, env, f"gateway-{i + 1}.log"))
        results["start_s"] = round(time.monotonic() - started, 1)
        named: dict[str, int | list[int]] = {}
        for i, gateway in enumerate(gateways):
            named.update(_gateway_processes(gateway.pid, f"instance{i + 1}"))
        assert broker._process is not None
        assert influx._process is not None
        named["mosquitto"] = broker._process.pid
        named["influxd"] = influx._process.pid
        if pg_pid is not None:
            named["postgres"] = _tree(pg_pid)
        ctx = mp.get_context("spawn")
        workers = []
        for w in range(2):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=telemetry_worker, args=(broker.port, w, 2, args.homes, theirs), daemon=True
            )
            proc.start()
            workers.append((proc, mine))
        alarm_conn, theirs = ctx.Pipe()
        alarm_proc = ctx.Process(target=alarm_worker, args=(broker.port, args.homes, theirs), daemon=True)
        alarm_proc.start()
        for _, conn in workers:
            assert conn.recv() == "ready"
        assert alarm_conn.recv() == "ready"
        named["generators"] = [p.pid for p in (alarm_proc, *(w for w, _ in workers)) if p.pid is not None]
        watch = Watch(named)
        gateway_names = [n for n in named if n.startswith("instance")]
        results["rss_mb_after_start"] = watch.rss_mb(gateway_names)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[0]}") as http:
                (
                    await http.post("/api/login", json={"username": "operator", "password": PASSWORD})
                ).raise_for_status()
                cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
            async with websockets.connect(
                f"ws://127.0.0.1:{ports[0]}/api/ws", additional_headers={"Cookie": cookie}, max_queue=None
            ) as ws:
                arrived: dict[str, float] = {}
                listener = asyncio.create_task(_listen(ws, arrived))
                idle_per_s: dict[str, float] = {}
                for name, t_rate, d_rate, s_rate in phases:
                    start_at = time.time() + 1.0
                    m0, p0 = await _metrics(ports), _points(influx)
                    await asyncio.sleep(max(0.0, start_at - time.time()))
                    c0, w0 = watch.sample(), time.monotonic()
                    for _, conn in workers:
                        conn.send((t_rate / 2, args.seconds, start_at)) if t_rate else None
                    alarm_conn.send((d_rate, s_rate, args.seconds, start_at))
                    reports = [await asyncio.to_thread(conn.recv) for _, conn in workers if t_rate]
                    alarm_report = await asyncio.to_thread(alarm_conn.recv)
                    await asyncio.sleep(args.settle)
                    wall = time.monotonic() - w0
                    c1, m1, p1 = watch.sample(), await _metrics(ports), _points(influx)
                    rss = watch.rss_mb(gateway_names)
                    cpu = {k: c1[k] - c0[k] for k in c0}
                    if name == "idle":
                        idle_per_s = {k: v / wall for k, v in cpu.items()}
                    net = {k: max(0.0, v - idle_per_s.get(k, 0.0) * wall) for k, v in cpu.items()}
                    sos_sent = alarm_report["sos"]
                    latencies = [(arrived[d] - t) * 1000 for d, t in sos_sent.items() if d in arrived]
                    phase = {
                        "rates_offered": {"telemetry": t_rate, "doors": d_rate, "sos": s_rate},
                        "telemetry_sent": sum(r["sent"] for r in reports),
                        "doors_sent": alarm_report["doors"],
                        "sos_sent": len(sos_sent),
                        "sos_answered": len(latencies),
                        "received": {k: m1[k] - m0.get(k, 0.0) for k in m1},
                        "points_written": p1 - p0,
                        "wall_s": round(wall, 2),
                        "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
                        "cpu_s_over_idle": {k: round(v, 3) for k, v in net.items()},
                        "cpu_share_of_a_core": {k: round(v / wall, 3) for k, v in cpu.items()},
                        "rss_mb": rss,
                    }
                    if latencies:
                        a = np.asarray(latencies)
                        phase["sos_ms"] = {
                            q: round(float(np.percentile(a, int(q[1:]))), 1) for q in ("p50", "p90", "p99")
                        }
                        phase["sos_ms"]["max"] = round(float(a.max()), 1)
                    results["phases"][name] = phase
                    print(
                        name,
                        json.dumps(
                            {k: phase[k] for k in ("received", "cpu_share_of_a_core", "rss_mb")}
                            | {"sos_ms": phase.get("sos_ms")}
                        ),
                        flush=True,
                    )
                listener.cancel()
        finally:
            for _, conn in workers:
                conn.send(None)
            alarm_conn.send(None)
            for gateway in gateways:
                gateway.terminate()
            for gateway in gateways:
                try:
                    gateway.wait(30)
                except subprocess.TimeoutExpired:
                    gateway.kill()
            for proc, _ in workers:
                proc.join(5)
            alarm_proc.join(5)
    shutil.rmtree(workdir, ignore_errors=True)
    results["load_average_at_end"] = os.getloadavg()
    results["devices"] = len(directory(args.homes, inputs["mix"])["devices"])
    if not args.idle_only and not args.phases:
        results["costs"] = costs(results)
    return results


def costs(results: dict[str, Any]) -> dict[str, Any]:
    """CPU per message of each kind, from its own phase, and the city phase measured against them."""
    phases = results["phases"]
    out: dict[str, Any] = {}

    def gateway_cpu(phase: dict[str, Any], part: str) -> float:
        return float(sum(v for k, v in phase["cpu_s_over_idle"].items() if k.endswith(part)))

    t = phases["telemetry"]
    received = t["received"].get('careline_messages_received_total{lane="telemetry"}', 0.0)
    handled_t = max(1, t["telemetry_sent"])
    out["telemetry_us_per_message"] = {
        "telemetry_processes": round(gateway_cpu(t, "-telemetry") / handled_t * 1e6, 1),
        "gateway_processes": round(gateway_cpu(t, "-gateway") / handled_t * 1e6, 1),
        "mosquitto": round(t["cpu_s_over_idle"]["mosquitto"] / t["telemetry_sent"] * 1e6, 1),
        "influxd_per_point": round(t["cpu_s_over_idle"]["influxd"] / max(1.0, t["points_written"]) * 1e6, 1),
        "points_per_message": round(t["points_written"] / max(1, t["telemetry_sent"]), 2),
        "received_per_sent": round(received / handled_t, 3),
    }
    d = phases["doors"]
    out["door_event_ms"] = {
        "gateway_processes": round(gateway_cpu(d, "-gateway") / max(1, d["doors_sent"]) * 1e3, 3),
        "telemetry_processes": round(gateway_cpu(d, "-telemetry") / max(1, d["doors_sent"]) * 1e3, 3),
    }
    s = phases["sos"]
    out["sos_ms"] = {
        "gateway_processes": round(gateway_cpu(s, "-gateway") / max(1, s["sos_sent"]) * 1e3, 2),
        "telemetry_processes": round(gateway_cpu(s, "-telemetry") / max(1, s["sos_sent"]) * 1e3, 2),
        "postgres": round(s["cpu_s_over_idle"].get("postgres", 0.0) / max(1, s["sos_sent"]) * 1e3, 2),
    }
    c = phases["city"]
    predicted = (
        c["telemetry_sent"]
        * (
            out["telemetry_us_per_message"]["telemetry_processes"]
            + out["telemetry_us_per_message"]["gateway_processes"]
        )
        / 1e6
        + c["doors_sent"]
        * (out["door_event_ms"]["gateway_processes"] + out["door_event_ms"]["telemetry_processes"])
        / 1e3
        + c["sos_sent"] * (out["sos_ms"]["gateway_processes"] + out["sos_ms"]["telemetry_processes"]) / 1e3
    )
    measured = gateway_cpu(c, "-gateway") + gateway_cpu(c, "-telemetry")
    out["city_gateway_cpu_s"] = {"predicted_from_phases": round(predicted, 2), "measured": round(measured, 2)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, choices=(1, 2), default=1)
    parser.add_argument("--homes", type=int, default=2250)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--telemetry-rate", type=float, default=2000.0)
    parser.add_argument("--door-rate", type=float, default=50.0)
    parser.add_argument("--sos-rate", type=float, default=10.0)
    parser.add_argument(
        "--idle-only", action="store_true", help="only the idle phase: what a directory costs"
    )
    parser.add_argument("--phases", default="", help="only these phases (and idle), e.g. telemetry")
    parser.add_argument("--tag", default="", help="results/city_<tag>-<instances>.json instead of city_load")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(_run(args))
    print(json.dumps(results.get("costs"), indent=2))
    if not args.no_write:
        name = f"city_idle-{args.homes}" if args.idle_only else f"city_{args.tag or 'load'}-{args.instances}"
        out = ROOT / "benchmarks" / "results" / f"{name}.json"
        out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
