"""Careline as its own processes (`careline run` and its telemetry child) writing to a real InfluxDB 1.6.7.

The directory binds every home's three devices through the zigbee2mqtt profile; escalation is off, so
nothing leaves the machine. What it handled is what reached InfluxDB: `httpd.pointsWrittenOK` from
`/debug/vars` (cheap, sampled every half second) divided by the points the mix makes per message; after a
phase each kind of message is counted in its own measurement (`count(value)` per measurement: InfluxDB
1.6 leaves a boolean measurement out of a regex count) over the devices' time window. SOS latency is
publish → the incident frame on a logged-in operator WebSocket (new incident or a join, by trigger count).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import paho.mqtt.client as mqtt
import websockets
import yaml
from observe import command_line, family, process_name
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from peer import Peer, PhaseLoad
from services import InfluxDB1
from support import prometheus_values
from workload import MEASUREMENT_OF, MEASUREMENTS, careline_directory

from careline.services import dies_with_this_process, free_port

ROOT = Path(__file__).resolve().parents[2]

PASSWORD = "benchmark-operator-pw"
DATABASE = "bench"
RECEIVED = 'careline_messages_received_total{lane="telemetry"}'
DROPPED = "careline_telemetry_dropped_total"
DEAD = 'careline_dead_letters_total{lane="telemetry"}'


def config(
    broker_url: str, influx_url: str, workdir: Path, http_port: int, homes: int, client_id: str
) -> dict[str, Any]:
    return {
        "broker": {"url": broker_url, "client_id": client_id},
        "storage": {"url": f"sqlite:///{workdir / 'careline.db'}"},
        "http": {"host": "127.0.0.1", "port": http_port},
        **careline_directory(homes),
        "escalation": {"enabled": False},
        "telemetry": {
            "backend": "influxdb1",
            "url": influx_url,
            "database": DATABASE,
            "spool_dir": str(workdir / "spool"),
        },
    }


def _no_session() -> Properties:
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 0
    return properties


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` laid over it, mapping by mapping (lists and values are replaced)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def _child_label(pid: int, taken: dict[str, int]) -> str:
    """The gateway's children are multiprocessing processes: the telemetry child (one, or more if the
    telemetry is ever split into workers) and the resource tracker."""
    line = " ".join(command_line(pid))
    if "resource_tracker" in line:
        return "careline-resource-tracker"
    base = "careline-telemetry" if "spawn_main" in line or "forkserver" in line else process_name(pid)
    n = sum(1 for name in taken if name.startswith(base))
    return base if n == 0 else f"{base}-{n + 1}"


class Careline(Peer):
    name = "careline"
    label = "Careline (decode → rules → InfluxDB 1.6.7)"

    def __init__(
        self, broker_url: str, workdir: Path, homes: int, extra: dict[str, Any] | None = None
    ) -> None:
        self.broker_url = broker_url
        #: Settings merged into the generated configuration (`--careline-config`), e.g. telemetry knobs.
        self.extra = extra or {}
        # Its own per run: the alarm lane's session outlives the gateway at the broker (by design), and
        # the next repeat's gateway must not inherit the presses queued for it meanwhile.
        self.client_id = f"careline-bench-{uuid.uuid4().hex[:8]}"
        self.workdir = workdir / "careline"
        self.homes = homes
        self.http_port = free_port()
        self.influx = InfluxDB1(die_with_parent=True)
        self.gateway: subprocess.Popen[bytes] | None = None
        self.http: httpx.AsyncClient | None = None
        self.ws: Any = None
        self.receiver: asyncio.Task[None] | None = None
        self.frames: dict[tuple[str, int], float] = {}
        self.ratio = 3.5
        self.before: dict[str, float] = {}

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.influx.start()
        self.influx.create_database(DATABASE)
        path = self.workdir / "careline.yaml"
        generated = config(
            self.broker_url, self.influx.url, self.workdir, self.http_port, self.homes, self.client_id
        )
        path.write_text(yaml.safe_dump(merged(generated, self.extra)))
        await self._add_operator(path)
        self.gateway = self._launch(path)
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.http_port}", timeout=10)
        await self._healthy()
        login = {"username": "operator", "password": PASSWORD}
        (await self.http.post("/api/login", json=login)).raise_for_status()
        cookie = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        self.ws = await websockets.connect(
            f"ws://127.0.0.1:{self.http_port}/api/ws", additional_headers={"Cookie": cookie}, max_queue=None
        )
        await self.ws.recv()
        self.receiver = asyncio.create_task(self._receive())

    async def _add_operator(self, path: Path) -> None:
        command = [sys.executable, "-m", "careline", "user", "add", "--config", str(path), "operator"]
        command += ["--role", "operator", "--password-env", "BENCH_PW"]
        adding = await asyncio.create_subprocess_exec(
            *command, env=self._env(), cwd=self.workdir, stdout=subprocess.DEVNULL
        )
        try:
            status = await adding.wait()
        except asyncio.CancelledError:
            adding.kill()
            raise
        if status != 0:
            raise RuntimeError("careline user add failed")

    def _env(self) -> dict[str, str]:
        return {**os.environ, "BENCH_PW": PASSWORD, "PYTHONPATH": str(ROOT)}

    def _launch(self, path: Path) -> subprocess.Popen[bytes]:
        """`careline run`, like benchmarks/support.start_gateway, but it dies with the benchmark (SIGKILL
        when this process dies, `PR_SET_PDEATHSIG`) and its telemetry child dies with it."""
        with (self.workdir / "gateway.log").open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "careline", "run", "--config", str(path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env(),
                cwd=self.workdir,
                preexec_fn=dies_with_this_process(),
            )

    async def _healthy(self) -> None:
        assert self.gateway is not None
        assert self.http is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.gateway.poll() is None:
            with contextlib.suppress(httpx.TransportError, ValueError):
                if (await self.http.get("/api/healthz")).json().get("status") == "ok":
                    return
            await asyncio.sleep(0.2)
        log = (self.workdir / "gateway.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the gateway did not start: {log}")

    async def _receive(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                frame = json.loads(await self.ws.recv())
                if frame.get("type") == "incident":
                    incident = frame["incident"]
                    self.frames.setdefault((incident["device_id"], incident["trigger_count"]), time.time())

    async def stop(self) -> None:
        if self.receiver is not None:
            self.receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.receiver
        if self.ws is not None:
            await self.ws.close()
        if self.http is not None:
            await self.http.aclose()
        if self.gateway is not None and self.gateway.poll() is None:
            self.gateway.terminate()
            try:
                self.gateway.wait(20)
            except subprocess.TimeoutExpired:
                self.gateway.kill()
                self.gateway.wait()
        self.influx.cleanup()
        await asyncio.to_thread(self._forget_sessions)

    def _forget_sessions(self) -> None:
        """End the lanes' persistent sessions at the broker, so it stops queueing SOS presses for them."""
        port = urlsplit(self.broker_url).port or 1883
        for lane in ("alarm", "telemetry"):
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=f"{self.client_id}-{lane}",
                protocol=MQTTProtocolVersion.MQTTv5,
            )
            with contextlib.suppress(OSError):
                client.connect("127.0.0.1", port, clean_start=True, properties=_no_session())
                client.loop_start()
                time.sleep(0.3)
                client.disconnect()
                client.loop_stop()

    def processes(self) -> dict[str, int]:
        assert self.gateway is not None
        found = {"careline-gateway": self.gateway.pid}
        for pid in family(self.gateway.pid)[1:]:
            found[_child_label(pid, found)] = pid
        return found

    def services(self) -> dict[str, int]:
        return {"influxd": self.influx._process.pid}  # type: ignore[union-attr]  # the helper's own process

    async def points_written(self) -> float:
        async with httpx.AsyncClient(timeout=5) as client:
            stats = (await client.get(f"{self.influx.url}/debug/vars")).json()
        # One "httpd:<bind address>" entry per HTTP listener.
        return float(
            sum(v["values"].get("pointsWrittenOK", 0) for k, v in stats.items() if k.startswith("httpd"))
        )

    async def handled(self) -> float:
        return await self.points_written() / self.ratio

    def settle_quiet_s(self) -> float:
        return 3.0  # the writer flushes a partial batch every second

    async def gauges(self) -> dict[str, float]:
        assert self.http is not None
        metrics = prometheus_values((await self.http.get("/metrics")).text)
        return {
            "received": metrics.get(RECEIVED, 0),
            "dropped": metrics.get(DROPPED, 0),
            "dead": metrics.get(DEAD, 0),
        }

    async def begin_phase(self, load: PhaseLoad) -> None:
        self.ratio = load.points_per_message()
        self.before = {**await self.gauges(), "points": await self.points_written()}

    def count(self, measurement: str, lo_ms: int, hi_ms: int) -> int:
        q = f'SELECT count(value) FROM "{measurement}" WHERE time >= {lo_ms}ms AND time <= {hi_ms}ms'
        series = self.influx.query(q, db=DATABASE)["results"][0].get("series")  # type: ignore[index]
        return int(series[0]["values"][0][1]) if series else 0

    async def account(self, load: PhaseLoad, handled: float) -> dict[str, Any]:
        lo, hi = load.first_ms, load.last_ms
        counts = {m: await asyncio.to_thread(self.count, m, lo, hi) for m in MEASUREMENTS}
        after = await self.gauges()
        stored = {kind: counts[MEASUREMENT_OF[kind]] for kind in load.kinds}
        points = await self.points_written() - self.before["points"]
        return {
            "lost": sum(max(0, n - stored.get(kind, 0)) for kind, n in load.kinds.items()),
            "stored_messages_by_kind": stored,
            "stored_points": sum(counts.values()),
            "points_written_ok": int(points),
            "expected_points": load.points,
            "points_by_measurement": counts,
            "received_telemetry": int(after["received"] - self.before["received"]),
            # Never reached the gateway by the end of the settle time: dropped by the broker (its queue for
            # a slow QoS 0 subscriber is bounded) or still waiting there and in the TCP buffers.
            "not_received_by_gateway": max(
                0, int(load.messages - (after["received"] - self.before["received"]))
            ),
            "dropped_queue_full": int(after["dropped"] - self.before["dropped"]),
            "dead_letters": int(after["dead"] - self.before["dead"]),
        }

    def sos_latencies_ms(self, presses: list[tuple[str, int, float]]) -> list[float] | None:
        latencies = []
        for friendly_name, number, sent_at in presses:
            answered = self.frames.get((friendly_name.replace("/", "-"), number))
            if answered is not None:
                latencies.append((answered - sent_at) * 1000)
        return latencies
