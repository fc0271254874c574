"""Side by side (issue 12): a bare paho subscriber, Node-RED 4 and Careline on the same Zigbee2MQTT stream.

One Mosquitto on 127.0.0.1, one load generator (`--workers` paho publisher processes for the telemetry,
one probe process for the SOS presses and the one-hop subscriber), and each processor in turn, fresh for
every repeat, at each offered rate for `--duration` seconds. Per processor and rate: sustained msg/s over
the steady window, backlog and loss, SOS latency, one hop through the broker, CPU per message of every
process, RSS. Writes benchmarks/results/peers.json, its section of docs/benchmarks.md and the plots.

    .venv/bin/python benchmarks/peers/run.py [--rates 5000,10000,15000,20000] [--duration 20]
        [--repeats 2] [--processors paho,nodered,careline]
    quick: .venv/bin/python benchmarks/peers/run.py --rates 5000 --duration 5 --repeats 1 --no-write
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
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import report  # noqa: E402
from careline_peer import Careline  # noqa: E402
from generator import probe_process, telemetry_worker  # noqa: E402
from nodered import NodeRed  # noqa: E402
from observe import CpuWindow, percentiles, rss_mb  # noqa: E402
from peer import BarePaho, Peer, PhaseLoad  # noqa: E402
from services import Mosquitto  # noqa: E402

NODE_RED_CACHE = ROOT / "var" / "peers" / "node-red"
#: Every run's raw figures, also with --no-write (for development).
LAST = ROOT / "var" / "peers" / "last.json"
WARMUP_RATE, WARMUP_S = 1000.0, 3.0
SAMPLE_S = 0.5
SETTLE_MAX_S = 15.0
#: The steady window leaves out the first quarter of a phase (connections warming, a start-up burst).
STEADY_FROM = 0.25


def _recv(conn: Connection, limit_s: float) -> Any:
    if not conn.poll(limit_s):
        raise RuntimeError("a generator process did not report in time")
    return conn.recv()


async def _recv_async(conn: Connection, limit_s: float) -> Any:
    """Polled rather than waited for in a thread: Ctrl-C must not wait for a thread stuck in poll()."""
    deadline = time.monotonic() + limit_s
    while not conn.poll(0):
        if time.monotonic() > deadline:
            raise RuntimeError("a generator process did not report in time")
        await asyncio.sleep(0.02)
    return conn.recv()


class Generator:
    """The telemetry publishers (for the whole run) and a probe (fresh for each processor)."""

    def __init__(self, broker_port: int, workers: int, homes: int, publisher: str) -> None:
        self.port, self.homes = broker_port, homes
        self.spawn = mp.get_context("spawn")
        self.workers: list[Any] = []
        self.pipes: list[Connection] = []
        for k in range(workers):
            parent, child = self.spawn.Pipe()
            process = self.spawn.Process(
                target=telemetry_worker, args=(broker_port, k, workers, homes, publisher, child), daemon=True
            )
            process.start()
            self.workers.append(process)
            self.pipes.append(parent)
        for conn in self.pipes:
            if _recv(conn, 30) != "ready":
                raise RuntimeError("a telemetry publisher failed to start")
        self.probe: Any = None
        self.probe_pipe: Connection | None = None

    def new_probe(self) -> None:
        self.close_probe()
        parent, child = self.spawn.Pipe()
        self.probe = self.spawn.Process(
            target=probe_process, args=(self.port, self.homes, child), daemon=True
        )
        self.probe.start()
        self.probe_pipe = parent
        if _recv(parent, 30) != "ready":
            raise RuntimeError("the probe failed to start")

    def pids(self) -> dict[str, int]:
        pids = {f"generator-telemetry{k}": w.pid for k, w in enumerate(self.workers)}
        return {**pids, "generator-probe": self.probe.pid, "bench (this process)": os.getpid()}

    def run(
        self, telemetry_rate: float, sos_rate: float, duration: float, start_at: float, alarms: bool
    ) -> None:
        assert self.probe_pipe is not None
        for conn in self.pipes:
            conn.send(("run", telemetry_rate / len(self.pipes), duration, start_at))
        self.probe_pipe.send(("run", sos_rate, duration, start_at, alarms))

    async def collect(self, limit_s: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        assert self.probe_pipe is not None
        workers = [await _recv_async(conn, limit_s) for conn in self.pipes]
        return workers, await _recv_async(self.probe_pipe, limit_s)

    def close_probe(self) -> None:
        if self.probe is not None:
            with contextlib.suppress(OSError):
                self.probe_pipe.send(None)  # type: ignore[union-attr]
            self.probe.join(10)
            if self.probe.is_alive():
                self.probe.terminate()
                self.probe.join(5)
            self.probe = None

    def close(self) -> None:
        self.close_probe()
        for conn in self.pipes:
            with contextlib.suppress(OSError):
                conn.send(None)
        for process in self.workers:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)


async def _settle(peer: Peer, base: float, expected: int) -> tuple[float, float]:
    """Wait until the processor has handled everything or its counter stands still; (handled, seconds)."""
    start = last_move = time.monotonic()
    last = await peer.handled() - base
    while time.monotonic() - start < SETTLE_MAX_S and last < expected - 0.5:
        await asyncio.sleep(SAMPLE_S)
        now = await peer.handled() - base
        if now > last:
            last_move = time.monotonic()
        elif time.monotonic() - last_move >= peer.settle_quiet_s():
            break
        last = now
    return last, round(time.monotonic() - start, 1)


def _steady(samples: list[tuple[float, float]], duration: float) -> float:
    """Messages per second handled over the steady window (least squares over its samples)."""
    window = [(t, h) for t, h in samples if STEADY_FROM * duration <= t <= duration + 0.01]
    if len(window) < 2:
        return 0.0
    n = len(window)
    mt, mh = sum(t for t, _ in window) / n, sum(h for _, h in window) / n
    var = sum((t - mt) ** 2 for t, _ in window)
    return sum((t - mt) * (h - mh) for t, h in window) / var if var else 0.0


async def phase(
    peer: Peer, gen: Generator, rate: float, duration: float, args: argparse.Namespace
) -> dict[str, Any]:
    # 1% of 20k/s would be 200 SOS commits a second: the alarm lane, not the telemetry, under test.
    sos_rate = min(rate * args.sos_share, args.sos_max)
    telemetry_rate = rate - sos_rate
    planned = {"motion": telemetry_rate * duration / 2, "climate": telemetry_rate * duration / 2}
    await peer.begin_phase(PhaseLoad({**planned, "pendant": sos_rate * duration}))  # type: ignore[dict-item]
    base = await peer.handled()
    start_at = time.time() + 0.5
    gen.run(telemetry_rate, sos_rate, duration, start_at, peer.alarms_on_mqtt)
    own = peer.processes()
    cpu = CpuWindow({**own, **peer.services(), "mosquitto": gen_broker_pid[0], **gen.pids()})
    await asyncio.sleep(max(0.0, start_at - time.time()))
    cpu.start()
    t0 = time.monotonic()
    samples: list[tuple[float, float]] = []
    rss_max = 0.0
    while (t := time.monotonic() - t0) < duration:
        samples.append((t, await peer.handled() - base))
        rss_max = max(rss_max, rss_mb(own.values()))
        await asyncio.sleep(max(0.0, SAMPLE_S - (time.monotonic() - t0 - t)))
    samples.append((time.monotonic() - t0, await peer.handled() - base))
    cpu_s = cpu.stop()
    wall = time.monotonic() - t0
    handled_in_window = samples[-1][1]
    workers, probe = await gen.collect(duration + 30)
    kinds = Counter[str]()
    for w in workers:
        kinds.update(w["kinds"])
    kinds["pendant"] = probe["sent"]
    last_ms = max([w["last_ms"] for w in workers] + [probe["last_ms"]])
    load = PhaseLoad(dict(kinds), first_ms=int(start_at * 1000) - 100, last_ms=last_ms)
    handled, settle_s = await _settle(peer, base, load.messages)
    accounting = await peer.account(load, handled)
    publish_s = max(w["elapsed_s"] for w in workers)
    sustained = _steady(samples, duration)
    careline_sos = peer.sos_latencies_ms(probe["presses"])
    sos_ms = probe["alarm_ms"] if peer.alarms_on_mqtt else careline_sos
    own_cpu = sum(cpu_s.get(name, 0.0) for name in own)
    offered = load.messages / publish_s
    backlog_end = load.messages * min(1.0, duration / publish_s) - handled_in_window
    result = {
        "rate": rate,
        "offered_per_s": round(offered),
        "published": load.messages,
        "published_by_kind": dict(kinds),
        "publisher_max_behind_ms": round(max(w["max_behind_ms"] for w in workers), 1),
        "publisher_cpu_s": round(sum(w["cpu_s"] for w in workers), 2),
        "sos_per_s": round(sos_rate, 1),
        "sustained_per_s": round(sustained),
        "handled_in_window": round(handled_in_window),
        "handled_after_settle": round(handled),
        "backlog_at_end": max(0, round(backlog_end)),
        "backlog_growth_per_s": round(offered - sustained),
        "settle_s": settle_s,
        **accounting,
        "sos": percentiles(sos_ms) if sos_ms is not None else None,
        "sos_missing": (probe["sent"] - len(sos_ms)) if sos_ms is not None else None,
        "one_hop": percentiles(probe["hop_ms"]),
        "cpu_s": cpu_s,
        "window_s": round(wall, 2),
        "cpu_s_other_work_on_the_machine": cpu.others_s,
        "processor_cpu_pct_of_one_core": round(own_cpu / wall * 100, 1),
        "cpu_us_per_msg": round(own_cpu / handled_in_window * 1e6, 1) if handled_in_window else None,
        "cpu_us_per_msg_by_process": {
            name: round(s / handled_in_window * 1e6, 1) for name, s in cpu_s.items() if handled_in_window
        },
        "rss_mb": rss_max,
        "handled_timeline": [(round(t, 2), round(h)) for t, h in samples],
    }
    result["kept_up"] = bool(
        result["lost"] == 0
        and sustained >= 0.97 * offered
        and result["backlog_at_end"] <= 1.5 * rate
        and offered >= 0.98 * rate
    )
    return result


#: Mosquitto's pid, set once the broker runs (every phase lists its CPU).
gen_broker_pid: list[int] = [0]


def _peer(name: str, broker: Mosquitto, workdir: Path, args: argparse.Namespace) -> Peer:
    homes, extra, decode = args.homes, args.careline_config, args.nodered_decode
    if name == "paho":
        return BarePaho(broker.port)
    if name == "nodered":
        return NodeRed(broker.port, NODE_RED_CACHE, workdir, decode)
    if name == "careline":
        return Careline(broker.url, workdir, homes, extra)
    raise SystemExit(f"unknown processor {name!r} (paho, nodered, careline)")


async def run_peer(name: str, args: argparse.Namespace, broker: Mosquitto, gen: Generator) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"careline-peers-{name}-"))
    peer = _peer(name, broker, workdir, args)
    started = time.monotonic()
    phases = []
    try:
        await peer.start()
        gen.new_probe()
        start_s = round(time.monotonic() - started, 1)
        warm = await phase(peer, gen, WARMUP_RATE, WARMUP_S, args)
        print(f"  {name} warm-up: handled {warm['handled_after_settle']} of {warm['published']}", flush=True)
        for rate in args.rates:
            phases.append(await phase(peer, gen, rate, args.duration, args))
            print("  " + report.phase_line(name, phases[-1]), flush=True)
        extra = {"node_red_version": peer.version} if isinstance(peer, NodeRed) else {}
    finally:
        await peer.stop()
        gen.close_probe()
        shutil.rmtree(workdir, ignore_errors=True)
    return {"processor": name, "label": peer.label, "start_s": start_s, "phases": phases, **extra}


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    began = time.monotonic()
    with Mosquitto() as broker:
        gen_broker_pid[0] = broker._process.pid  # type: ignore[union-attr]  # the helper's own process
        gen = Generator(broker.port, args.workers, args.homes, args.publisher)
        try:
            for repeat in range(args.repeats):
                for name in args.processors:
                    print(f"repeat {repeat + 1}/{args.repeats}: {name}", flush=True)
                    runs.append({"repeat": repeat + 1, **await run_peer(name, args, broker, gen)})
        finally:
            gen.close()
    return {
        "command": report.command(sys.argv[1:]),
        "rates": args.rates,
        "duration_s": args.duration,
        "repeats": args.repeats,
        "homes": args.homes,
        "devices": args.homes * 3,
        "sos_share": args.sos_share,
        "sos_max_per_s": args.sos_max,
        "careline_config_extra": args.careline_config,
        "nodered_decode_function": args.nodered_decode,
        "publisher_processes": args.workers,
        "publisher": args.publisher,
        "runs": runs,
        "total_s": round(time.monotonic() - began),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "careline_commit": _commit(),
    }


def _commit() -> str:
    """The code measured: the last commit touching Careline itself, and whether it has changes on top."""
    git = ["git", "-C", str(ROOT)]
    packages = ["common", "gateway", "devices", "rules", "dashboard", "careline"]
    try:
        rev = subprocess.run(
            [*git, "log", "-1", "--format=%h", "--", *packages], capture_output=True, text=True
        )
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", *packages], capture_output=True, text=True
        )
    except OSError:
        return "?"
    return rev.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="5000,10000,15000,20000", help="offered msg/s, one phase each")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--processors", default="paho,nodered,careline")
    parser.add_argument("--homes", type=int, default=1000, help="each with motion, climate sensor, pendant")
    parser.add_argument("--workers", type=int, default=2, help="telemetry publisher processes")
    parser.add_argument(
        "--publisher", choices=("raw", "paho"), default="raw", help="how the telemetry workers publish"
    )
    parser.add_argument("--sos-share", type=float, default=0.01, help="share of the offered rate that is SOS")
    parser.add_argument("--sos-max", type=float, default=100.0, help="SOS presses per second at most")
    parser.add_argument(
        "--careline-config",
        type=Path,
        help="YAML merged into Careline's generated configuration (e.g. telemetry: {batch_size: 10000})",
    )
    parser.add_argument(
        "--nodered-decode", action="store_true", help="a decode function before Node-RED's switches"
    )
    parser.add_argument(
        "--from-results", type=Path, help="measure nothing: summarise and write from a saved results JSON"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; keep results and docs")
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    args.processors = [p.strip() for p in args.processors.split(",") if p.strip()]
    args.careline_config = yaml.safe_load(args.careline_config.read_text()) if args.careline_config else {}
    if args.from_results:
        saved = json.loads(args.from_results.read_text())
        results = saved.get("results", saved)
        summary = report.summarise(results)
        print(report.summary_text(summary), flush=True)
        if not args.no_write:
            report.write(results, summary)
        return
    # SIGTERM ends a run as Ctrl-C does: through every `finally`, so nothing it started outlives it.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        results = asyncio.run(run_all(args))
    except KeyboardInterrupt:
        raise SystemExit("interrupted: everything the run started is stopped") from None
    LAST.parent.mkdir(parents=True, exist_ok=True)
    LAST.write_text(json.dumps(results, indent=2) + "\n")
    summary = report.summarise(results)
    print(report.summary_text(summary), flush=True)
    if not args.no_write:
        report.write(results, summary)


if __name__ == "__main__":
    main()
