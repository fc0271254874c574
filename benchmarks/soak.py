"""Soak with chaos: steady load on the real gateway while its neighbours fail, and every alarm accounted for.

Real Mosquitto (persistence on), real InfluxDB 1.6.7, a local webhook receiver standing for the notified
systems, and the gateway as its OWN process (`python -m careline run --config <file>`, its telemetry child
under it), all on 127.0.0.1 in one temporary directory. `--homes` simulated homes, each with a pendant
(sos_button), a motion sensor and a climate sensor. While the load runs:

  load      telemetry at `--telemetry-rate` msg/s (QoS 0, motion + temperature, unique timestamps) and SOS
            at `--sos-rate` presses/s (QoS 1, a unique event_id each, recorded with its publish time and
            counted as published only once the broker's PUBACK arrived; the paho session is persistent
            and queues while the broker is away);
  responder acknowledges every incident with an even id through the REST API (then resolves it); the
            others run their escalation (two webhook tiers, `--tier-wait` s each, repeat: stop) until it
            is exhausted;
  chaos     the faults below in turn, a steady `--gap` s between them, the cycle repeated while time
            remains; each fault's recovery is timed from the END of the fault:
    broker_restart   Mosquitto stopped and started again (same port, same persistence);
                     recovered = a probe SOS published at the fault's end is committed in the store;
    gateway_kill     the gateway SIGKILLed, down `--down` s (alarms queue in its persistent session),
                     started again; recovered = the probe SOS is committed and /api/healthz says ok;
    influx_outage    InfluxDB stopped for `--down` x 2 s (telemetry is spooled to disk), then started;
                     recovered = the writer reports healthy with an empty spool (drained);
    notifier_outage  the webhook receiver answers 503, then is gone (connection refused), then returns;
                     recovered = the first notification it answers 200 after the fault;
    spool_full       InfluxDB stopped long enough to pass `telemetry.spool_max_points`: the OLDEST points
                     are dropped (and counted); recovered as influx_outage. Alarms keep being committed.
After the load a drain (at most `--drain` s): every published SOS must be an alarm event of exactly one
incident (message key `careline:<device>:<event_id>`, read from the SQLite store read-only) whose
escalation was acknowledged or exhausted. Telemetry: published (accepted while connected), stored
(InfluxQL count), dropped as the gateway counts it (/metrics, the writer's status). RSS of the gateway
and its telemetry child every `--sample` s: start/end/max and the growth per 10 minutes over the steady
parts (a line fitted to the samples after the last gateway start, outside faults).

Exit status 1 when an alarm is lost or duplicated, an escalation is neither acknowledged nor exhausted,
a fault is not recovered within `--recovery-bound` s, or the RSS grows more than `--rss-bound` MB per
10 minutes. Prints the figures, writes benchmarks/results/soak-<duration>.json and (unless --no-write)
the figures in docs/reliability.md. Every process it starts is stopped at the end, also on failure or
Ctrl-C (and killed by the kernel should this script die: PR_SET_PDEATHSIG).

    .venv/bin/python benchmarks/soak.py --duration 180     # CI (tests/test_soak.py)
    .venv/bin/python benchmarks/soak.py --duration 3600    # one hour
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import paho.mqtt.client as mqtt
import psutil
import yaml
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from services import InfluxDB1, Mosquitto  # noqa: E402
from support import replace_section  # noqa: E402

from careline.services import dies_with_this_process, free_port  # noqa: E402
from devices.model import EventKind  # noqa: E402
from simulators.payloads import careline_event  # noqa: E402

SITE = "soak"
DATABASE = "soak"
PASSWORD = "soak-operator-pw"
WEBHOOK_SECRET_ENV = "SOAK_WEBHOOK_SECRET"
PROBE = "probe"
RESULTS_DIR = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"
FAULTS = ("broker_restart", "gateway_kill", "influx_outage", "notifier_outage", "spool_full")
KILL_AFTER_PRESS_S = 0.004
#: Telemetry measurements the soak publishes (and counts in InfluxDB).
MEASUREMENTS = ("motion", "temperature")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- configuration -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    duration_s: float
    homes: int
    telemetry_rate: float
    sos_rate: float
    gap_s: float
    down_s: float
    tier_wait_s: int
    spool_max_points: int
    drain_s: float
    sample_s: float
    recovery_bound_s: float
    rss_flag_mb: float
    rss_bound_mb: float
    faults: tuple[str, ...] = FAULTS
    keep: bool = False


def gateway_config(
    s: Settings, workdir: Path, broker_url: str, influx_url: str, http_port: int, hook: str
) -> dict[str, Any]:
    homes = [f"h{n}" for n in range(s.homes)] + [PROBE]
    devices: list[dict[str, Any]] = []
    for home in homes:
        place = {"site": SITE, "room": home, "resident": f"r-{home}"}
        devices.append({"id": f"p-{home}", "type": "sos_button", **place})
        if home != PROBE:
            devices.append({"id": f"m-{home}", "type": "motion_sensor", **place})
            devices.append({"id": f"c-{home}", "type": "other", **place})
    tier = {"targets": [{"webhook": "receiver"}], "channels": ["webhook"], "wait_s": s.tier_wait_s}
    return {
        # Short reconnect back-off, so recovery times measure the gateway rather than its waiting.
        "broker": {
            "url": broker_url,
            "client_id": "careline-soak",
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 2,
        },
        "storage": {"url": f"sqlite:///{workdir / 'careline.db'}"},
        "http": {"host": "127.0.0.1", "port": http_port},
        "sites": [{"id": SITE, "name": "Soak Homes", "rooms": [{"id": h} for h in homes]}],
        "residents": [{"id": f"r-{h}", "name": f"Resident {h}", "site": SITE, "room": h} for h in homes],
        "devices": devices,
        "escalation": {
            "public_url": f"http://127.0.0.1:{http_port}",
            "webhooks": {"receiver": {"url": hook, "secret_env": WEBHOOK_SECRET_ENV}},
            "policies": [{"id": "soak", "tiers": [tier, tier], "repeat": "stop"}],
            "min_interval_per_responder_s": 0,
            "send_attempts": 2,
        },
        "telemetry": {
            "backend": "influxdb1",
            "url": influx_url,
            "database": DATABASE,
            "batch_size": 500,
            "flush_interval_ms": 500,
            "retry_min_s": 0.5,
            "retry_max_s": 2,
            "buffer_max_points": 1000,
            "spool_dir": str(workdir / "spool"),
            "spool_max_points": s.spool_max_points,
        },
    }


# --- the processes -----------------------------------------------------------------------------------------


class SoakMosquitto(Mosquitto):
    """The tests' Mosquitto, killed by the kernel should the soak die (the tests' one has its own guard)."""

    def __init__(self) -> None:
        super().__init__()
        self._die_with_parent = True


class GatewayProcess:
    """`python -m careline run` as its own process; SIGKILL and start again; its processes' RSS."""

    def __init__(self, config_path: Path, http_port: int, workdir: Path, env: dict[str, str]) -> None:
        self.config_path, self.http_port, self.workdir, self.env = config_path, http_port, workdir, env
        self.process: subprocess.Popen[bytes] | None = None
        self.starts: list[float] = []

    def add_user(self) -> None:
        command = ["user", "add", "--config", str(self.config_path), "operator", "--role", "operator"]
        subprocess.run(
            [sys.executable, "-m", "careline", *command, "--password-env", "SOAK_PW"],
            check=True,
            env=self.env,
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
        )

    def start(self, timeout_s: float = 60.0) -> None:
        """Start and wait until /api/healthz answers (call from the main thread: see PR_SET_PDEATHSIG)."""
        with (self.workdir / "gateway.log").open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "careline", "run", "--config", str(self.config_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.workdir,
                preexec_fn=dies_with_this_process(),
            )
        self.starts.append(time.time())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/healthz", timeout=1).status_code in (200, 503):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"gateway did not answer within {timeout_s:g} s: {self.log_tail()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def wait_healthy(self, timeout_s: float = 60.0) -> None:
        """Until /api/healthz says ok: both lanes connected (the telemetry child subscribes last)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"gateway not healthy within {timeout_s:g} s: {self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL, as a power cut or the OOM killer would; its telemetry child follows (PDEATHSIG)."""
        if self.process is not None and self.process.poll() is None:
            children = self._children()
            self.process.kill()
            self.process.wait()
            psutil.wait_procs(children, timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        children = self._children()
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()

    def _children(self) -> list[psutil.Process]:
        if self.process is None:
            return []
        with contextlib.suppress(psutil.Error):
            return psutil.Process(self.process.pid).children(recursive=True)
        return []

    def rss_mb(self) -> tuple[float, float] | None:
        """RSS of the gateway and of its children (the telemetry process), in MiB."""
        if self.process is None or self.process.poll() is not None:
            return None
        try:
            main = psutil.Process(self.process.pid).memory_info().rss
            children = sum(c.memory_info().rss for c in self._children())
        except psutil.Error:
            return None
        return main / 2**20, children / 2**20

    def log_tail(self, lines: int = 30) -> str:
        text = (self.workdir / "gateway.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


class Receiver:
    """The notified systems: a local HTTP server taking the gateway's signed webhook POSTs.

    `mode` "ok" answers 200, "503" answers 503; `stop()` closes the socket (connection refused)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mode = "ok"
        self.ok_times: list[float] = []
        self.refused = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/careline"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                code = 200 if receiver.mode == "ok" else 503
                if code == 200:
                    receiver.ok_times.append(time.time())
                else:
                    receiver.refused += 1
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="receiver", daemon=True).start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def first_ok_after(self, t: float) -> float | None:
        return next((x for x in self.ok_times if x >= t), None)


# --- the simulated homes ---------------------------------------------------------------------------------


def _nodelay(client: mqtt.Client) -> None:
    import socket

    sock = client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass
class Sos:
    device: str
    event_id: str
    published_at: float
    acked_at: float | None = None
    sent_at: float = 0.0

    @property
    def key(self) -> str:
        return f"careline:{self.device}:{self.event_id}"


class AlarmPublisher:
    """QoS 1 SOS presses from the pendants: a persistent paho session that queues while the broker is away
    and resends unacknowledged presses when it is back; a press counts once its PUBACK arrived."""

    RESEND_AFTER_S = 60.0

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"soak-pendants-{uuid.uuid4().hex[:6]}",
            clean_session=False,
        )
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, *_: _nodelay(c)
        self.client.on_publish = lambda _c, _u, mid, *_: self._pubacks.put((mid, time.time()))
        self._pubacks: queue.SimpleQueue[tuple[int, float]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._by_mid: dict[int, Sos] = {}
        self.presses: list[Sos] = []
        self.resent = 0
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def press(self, device: str, event_id: str | None = None) -> Sos:
        sos = Sos(device, event_id or uuid.uuid4().hex, time.time())
        with self._lock:
            self.presses.append(sos)
            self._send(sos)
        return sos

    def _send(self, sos: Sos) -> None:
        payload = careline_event(EventKind.SOS, event_id=sos.event_id, ts_ms=sos.published_at * 1000)
        info = self.client.publish(f"careline/{SITE}/{sos.device}/alarm", payload, qos=1)
        self._by_mid[info.mid] = sos
        sos.sent_at = time.time()

    def settle(self) -> None:
        """Note the PUBACKs that arrived; send again what has waited too long (same event_id: the gateway
        keeps one alarm event per message key, so a resend can never make a second incident)."""
        with self._lock:
            while True:
                try:
                    mid, at = self._pubacks.get_nowait()
                except queue.Empty:
                    break
                sos = self._by_mid.pop(mid, None)
                if sos is not None and sos.acked_at is None:
                    sos.acked_at = at
            now = time.time()
            for sos in {id(s): s for s in self._by_mid.values() if s.acked_at is None}.values():
                if now - sos.sent_at > self.RESEND_AFTER_S:
                    self.resent += 1
                    self._send(sos)

    @property
    def acked(self) -> list[Sos]:
        with self._lock:
            return [s for s in self.presses if s.acked_at is not None]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class TelemetryPublisher(threading.Thread):
    """Motion and climate readings at a steady rate, QoS 0 (lost while the broker is away, as real ones)."""

    TICK_S = 0.01

    def __init__(self, port: int, homes: int, rate: float) -> None:
        super().__init__(name="telemetry", daemon=True)
        self.rate = rate
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"soak-sensors-{uuid.uuid4().hex[:6]}"
        )
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, *_: _nodelay(c)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.devices = [(f"m-h{n}", EventKind.MOTION) for n in range(homes)]
        self.devices += [(f"c-h{n}", EventKind.TEMPERATURE) for n in range(homes)]
        self.offered = self.published = 0
        self.first_ms = self.last_ms = 0
        self._halt = threading.Event()

    def run(self) -> None:
        last_ts = [0] * len(self.devices)
        start = time.monotonic()
        self.first_ms = int(time.time() * 1000)
        while not self._halt.is_set():
            due = int((time.monotonic() - start) * self.rate)
            wall_ms = int(time.time() * 1000)
            while self.offered < due:
                i = self.offered % len(self.devices)
                device, kind = self.devices[i]
                # InfluxDB keeps one point per series and timestamp: never reuse a millisecond.
                last_ts[i] = ts = max(wall_ms, last_ts[i] + 1)
                value: float | bool = (self.offered % 7 == 0) if kind is EventKind.MOTION else 20 + i % 5
                # event_id: eight characters at least (the native profile's schema).
                event_id = f"t{self.offered:011d}"
                payload = careline_event(kind, value, event_id=event_id, ts_ms=ts)
                info = self.client.publish(f"careline/{SITE}/{device}/telemetry", payload, qos=0)
                self.offered += 1
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    self.published += 1
                    self.last_ms = max(self.last_ms, ts)
            time.sleep(self.TICK_S)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
        self.client.disconnect()
        self.client.loop_stop()


class Pendants(threading.Thread):
    """Presses the homes' pendants in turn at `rate` per second."""

    def __init__(self, publisher: AlarmPublisher, homes: int, rate: float) -> None:
        super().__init__(name="pendants", daemon=True)
        self.publisher, self.homes, self.rate = publisher, homes, rate
        self._halt = threading.Event()

    def run(self) -> None:
        n, start = 0, time.monotonic()
        while not self._halt.is_set():
            if time.monotonic() - start >= n / self.rate:
                self.publisher.press(f"p-h{n % self.homes}")
                n += 1
            self.publisher.settle()
            time.sleep(0.02)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


# --- the gateway seen from outside ----------------------------------------------------------------------


class Api:
    """A signed-in operator's session on the REST API (signs in again after a gateway restart if needed)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=5)
        self._lock = threading.Lock()

    def login(self) -> None:
        response = self.http.post("/api/login", json={"username": "operator", "password": PASSWORD})
        response.raise_for_status()
        self.http.headers["X-CSRF-Token"] = response.json()["csrf_token"]

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._lock:
            response = self.http.request(method, path, **kwargs)
            if response.status_code == 401:
                self.login()
                response = self.http.request(method, path, **kwargs)
            return response

    def close(self) -> None:
        self.http.close()


def parse_metrics(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                values[name] = float(value)
    return values


class Store:
    """The incident store, read-only (never a writer beside the gateway's)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            yield db
        finally:
            db.close()

    def events(self) -> dict[str, list[tuple[int, datetime]]]:
        """message key → [(incident id, recorded at)] of every alarm event."""
        with self._db() as db:
            rows = db.execute("SELECT message_key, incident_id, recorded_at FROM alarm_events").fetchall()
        events: dict[str, list[tuple[int, datetime]]] = {}
        for key, incident, recorded in rows:
            events.setdefault(key, []).append((incident, _utc(recorded)))
        return events

    def has_event(self, key: str) -> bool:
        with contextlib.suppress(sqlite3.Error), self._db() as db:
            return (
                db.execute("SELECT 1 FROM alarm_events WHERE message_key = ?", (key,)).fetchone() is not None
            )
        return False

    def escalations(self) -> dict[int, str]:
        """incident id → acknowledged | exhausted | active | stopped:<reason>."""
        with self._db() as db:
            rows = db.execute("SELECT incident_id, state, stop_reason FROM escalations").fetchall()
        return {
            incident: "acknowledged"
            if reason == "acknowledged"
            else state
            if state != "stopped"
            else f"stopped:{reason}"
            for incident, state, reason in rows
        }

    def other_incidents(self) -> list[tuple[str, str]]:
        """(rule, opened at) of the incidents no press opened: technical alarms such as channel_failing."""
        with self._db() as db:
            rows = db.execute(
                "SELECT rule, opened_at FROM incidents WHERE rule != 'sos' ORDER BY id"
            ).fetchall()
        return [(rule, _utc(opened).strftime("%H:%M:%S")) for rule, opened in rows]

    def incidents_by_rule(self) -> dict[str, int]:
        with self._db() as db:
            return dict(db.execute("SELECT rule, COUNT(*) FROM incidents GROUP BY rule").fetchall())


def _utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Responder(threading.Thread):
    """The operators: acknowledge every SOS incident with an even id and resolve it a moment later; leave
    the others to escalate until their policy is exhausted, then resolve them too (an open incident would
    keep its pendant's later presses joining it: no new incidents, no new notifications)."""

    RESOLVE_AFTER_S = 2.0

    def __init__(self, api: Api, store: Store) -> None:
        super().__init__(name="responder", daemon=True)
        self.api, self.store = api, store
        self.acknowledged: set[int] = set()
        self.resolved: set[int] = set()
        self.errors = 0
        self._acked_at: dict[int, float] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(1.0):
            try:
                self._round()
            except (httpx.HTTPError, sqlite3.Error, ValueError, KeyError):
                self.errors += 1  # the gateway may be down right now (a fault): try again next round

    def _round(self) -> None:
        listing = self.api.request("GET", "/api/incidents", params={"status": "active", "limit": 1000})
        if listing.status_code != 200:
            self.errors += 1
            return
        escalations = self.store.escalations()
        for incident in listing.json()["incidents"]:
            ident, status = incident["id"], incident["status"]
            if incident["rule"] != "sos":
                continue
            if status == "open" and ident % 2 == 0 and ident not in self.acknowledged:
                if self.api.request("POST", f"/api/incidents/{ident}/ack").status_code == 200:
                    self.acknowledged.add(ident)
                    self._acked_at[ident] = time.time()
            elif (
                status == "acknowledged" and time.time() - self._acked_at.get(ident, 0) > self.RESOLVE_AFTER_S
            ) or (status == "open" and escalations.get(ident) == "exhausted"):
                self._resolve(ident)

    def _resolve(self, ident: int) -> None:
        body = {"outcome": "false_alarm", "note": "soak"}
        if self.api.request("POST", f"/api/incidents/{ident}/resolve", json=body).status_code == 200:
            self.resolved.add(ident)

    def stop(self) -> None:
        self._halt.set()
        self.join(15)


@dataclass
class Sample:
    t: float
    start: int  # which gateway start (0, 1, ...) the figures belong to
    rss_gateway_mb: float | None
    rss_children_mb: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    writer: dict[str, Any] = field(default_factory=dict)


class Sampler(threading.Thread):
    """Every `period` s: the gateway's RSS, its /metrics and its writer's status."""

    def __init__(self, gateway: GatewayProcess, api: Api, period: float) -> None:
        super().__init__(name="sampler", daemon=True)
        self.gateway, self.api, self.period = gateway, api, period
        self.samples: list[Sample] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append(self.read())
            self._halt.wait(self.period)

    def read(self) -> Sample:
        rss = self.gateway.rss_mb()
        sample = Sample(time.time(), len(self.gateway.starts) - 1, *(rss or (None, None)))
        with contextlib.suppress(httpx.HTTPError, ValueError):
            sample.metrics = parse_metrics(self.api.request("GET", "/metrics").text)
            details = self.api.request("GET", "/api/health/details").json()
            sample.writer = details.get("telemetry") or {}
        return sample

    def stop(self) -> None:
        self._halt.set()
        self.join(15)


# --- the chaos ------------------------------------------------------------------------------------------


@dataclass
class Fault:
    name: str
    started: float
    ended: float = 0.0
    recovered: float | None = None
    signal: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def recovery_s(self) -> float | None:
        return None if self.recovered is None else round(self.recovered - self.ended, 3)


class Chaos:
    def __init__(
        self,
        s: Settings,
        broker: Mosquitto,
        influx: InfluxDB1,
        gateway: GatewayProcess,
        receiver: Receiver,
        pendants: AlarmPublisher,
        api: Api,
        store: Store,
    ) -> None:
        self.s, self.broker, self.influx, self.gateway = s, broker, influx, gateway
        self.receiver, self.pendants, self.api, self.store = receiver, pendants, api, store
        self.faults: list[Fault] = []
        self._probes = 0

    def run(self, until: float) -> None:
        """Faults in turn while one more fits before `until`, a steady gap before each."""
        n = 0
        while True:
            if not self.s.faults:
                return
            name = self.s.faults[n % len(self.s.faults)]
            if time.time() + self.s.gap_s + self._length(name) + self.s.recovery_bound_s > until:
                return
            time.sleep(self.s.gap_s)
            log(f"fault: {name}")
            fault = getattr(self, name)()
            self.faults.append(fault)
            log(f"  recovered in {fault.recovery_s} s ({fault.signal})")
            n += 1

    def _length(self, name: str) -> float:
        return {
            "influx_outage": 2 * self.s.down_s,
            "spool_full": self._spool_fill_s(),
            "notifier_outage": 2 * self.s.down_s,
        }.get(name, self.s.down_s)

    def _spool_fill_s(self) -> float:
        # Long enough for the spool (plus the writer's in-memory buffer) to overflow by about half again.
        return 1.5 * (self.s.spool_max_points + 1000) / self.s.telemetry_rate

    # Each fault returns when its recovery was seen (or the bound passed).

    def broker_restart(self) -> Fault:
        fault = Fault("broker_restart", time.time())
        self.broker.stop()
        time.sleep(self.s.down_s)
        self.broker.start()
        fault.ended = time.time()
        self._await_alarm_path(fault)
        return fault

    def gateway_kill(self) -> Fault:
        fault = Fault("gateway_kill", time.time())
        # Killed a few milliseconds after a press, while its commit is likely under way: the window that
        # commit-before-ack must cover (the broker redelivers what was not acknowledged).
        self._probe()
        time.sleep(KILL_AFTER_PRESS_S)
        self.gateway.kill()
        time.sleep(self.s.down_s)
        fault.detail["presses_while_down"] = sum(
            1 for p in self.pendants.presses if fault.started <= p.published_at
        )
        fault.ended = time.time()
        self.gateway.start()
        fault.detail["process_answering_s"] = round(time.time() - fault.ended, 3)
        self._await_alarm_path(fault, healthy=True)
        return fault

    def influx_outage(self) -> Fault:
        return self._influx_down("influx_outage", 2 * self.s.down_s)

    def spool_full(self) -> Fault:
        return self._influx_down("spool_full", self._spool_fill_s())

    def _influx_down(self, name: str, seconds: float) -> Fault:
        before = self._writer()
        fault = Fault(name, time.time())
        self.influx.stop()
        time.sleep(seconds)
        during = self._writer()
        self.influx.start()
        fault.ended = time.time()
        fault.detail["spool_points_at_end"] = during.get("spool_points")
        fault.detail["spool_dropped_during"] = during.get("spool_dropped_total", 0) - before.get(
            "spool_dropped_total", 0
        )
        fault.signal = "writer healthy, spool drained"
        fault.recovered = self._until(lambda: self._drained(self._writer()))
        after = self._writer()
        fault.detail["spool_dropped_total"] = after.get("spool_dropped_total")
        return fault

    def notifier_outage(self) -> Fault:
        fault = Fault("notifier_outage", time.time())
        self.receiver.mode = "503"
        time.sleep(self.s.down_s)
        self.receiver.stop()
        time.sleep(self.s.down_s)
        self.receiver.mode = "ok"
        self.receiver.start()
        fault.ended = time.time()
        fault.signal = "first webhook answered 200 after the fault"
        # A notification comes when an escalation step falls due: press a probe so one is on its way.
        self._probe()
        fault.recovered = self._until(lambda: self.receiver.first_ok_after(fault.ended) is not None)
        if fault.recovered is not None:
            fault.recovered = self.receiver.first_ok_after(fault.ended)
        return fault

    def _await_alarm_path(self, fault: Fault, *, healthy: bool = False) -> None:
        probe = self._probe()
        fault.signal = "probe SOS committed" + (" and /api/healthz ok" if healthy else "")
        committed = self._until(lambda: self.store.has_event(probe.key))
        ok = self._until(self._healthy) if healthy else committed
        fault.detail["probe_committed_s"] = None if committed is None else round(committed - fault.ended, 3)
        if healthy:
            fault.detail["healthz_ok_s"] = None if ok is None else round(ok - fault.ended, 3)
        fault.recovered = None if committed is None or ok is None else max(committed, ok)

    def _probe(self) -> Sos:
        self._probes += 1
        return self.pendants.press(f"p-{PROBE}", f"probe-{self._probes}-{uuid.uuid4().hex[:8]}")

    def _until(self, done: Callable[[], bool], poll_s: float = 0.05) -> float | None:
        deadline = time.time() + self.s.recovery_bound_s
        while time.time() < deadline:
            with contextlib.suppress(httpx.HTTPError, sqlite3.Error, ValueError):
                if done():
                    return time.time()
            time.sleep(poll_s)
        return None

    def _healthy(self) -> bool:
        return httpx.get(f"{self.gateway.url}/api/healthz", timeout=1).status_code == 200

    def _writer(self) -> dict[str, Any]:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            return dict(self.api.request("GET", "/api/health/details").json().get("telemetry") or {})
        return {}

    @staticmethod
    def _drained(writer: dict[str, Any]) -> bool:
        return bool(writer.get("healthy")) and writer.get("spool_points") == 0


# --- the figures ----------------------------------------------------------------------------------------


def account_alarms(presses: list[Sos], store: Store) -> dict[str, Any]:
    """Every PUBACKed press: its alarm event, its incident, that incident's escalation."""
    events = store.events()
    escalations = store.escalations()
    acked = [p for p in presses if p.acked_at is not None]
    lost = [p.key for p in acked if p.key not in events]
    duplicates = [p.key for p in acked if len(events.get(p.key, ())) > 1]
    incidents = {events[p.key][0][0] for p in acked if p.key in events}
    states: dict[str, int] = {}
    for incident in incidents:
        state = escalations.get(incident, "none")
        states[state] = states.get(state, 0) + 1
    latencies = [(events[p.key][0][1].timestamp() - p.published_at) * 1000 for p in acked if p.key in events]
    return {
        "pressed": len(presses),
        "published_pubacked": len(acked),
        "never_pubacked": len(presses) - len(acked),
        "accounted": len(acked) - len(lost),
        "lost": len(lost),
        "lost_keys": lost[:20],
        "duplicates": len(duplicates),
        "duplicate_keys": duplicates[:20],
        "incidents": len(incidents),
        "escalations": states,
        "escalations_acknowledged": states.get("acknowledged", 0),
        "escalations_exhausted": states.get("exhausted", 0),
        "escalations_unsettled": sum(v for k, v in states.items() if k not in ("acknowledged", "exhausted")),
        "publish_to_commit_ms": _percentiles(latencies),
        "incidents_by_rule": store.incidents_by_rule(),
        "other_incidents_opened": store.other_incidents()[:50],
    }


def alarms_during(
    fault: Fault, presses: list[Sos], store_events: dict[str, list[tuple[int, datetime]]]
) -> dict[str, Any]:
    """Presses published during a fault and its recovery: how long each took to be committed."""
    end = fault.recovered or fault.ended
    inside = [p for p in presses if fault.started <= p.published_at <= end and p.key in store_events]
    waits = [(store_events[p.key][0][1].timestamp() - p.published_at) * 1000 for p in inside]
    return {"presses": len(inside), "max_publish_to_commit_ms": round(max(waits), 1) if waits else None}


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    a = np.asarray(values)
    return {k: round(float(np.percentile(a, q)), 1) for k, q in (("p50", 50), ("p99", 99))} | {
        "max": round(float(a.max()), 1)
    }


def count_points(influx: InfluxDB1, lo_ms: int, hi_ms: int) -> dict[str, int]:
    counts = {}
    for measurement in MEASUREMENTS:
        q = f"SELECT count(value) FROM {measurement} WHERE time >= {lo_ms}ms AND time <= {hi_ms}ms"
        series = influx.query(q, db=DATABASE)["results"][0].get("series")  # type: ignore[index]
        counts[measurement] = int(series[0]["values"][0][1]) if series else 0
    return counts


def telemetry_figures(
    tele: TelemetryPublisher, influx: InfluxDB1, samples: list[Sample], load_s: float
) -> dict[str, Any]:
    """Telemetry published vs stored vs dropped; each gateway start counts from zero, so its last sample
    is summed with the others' (what a start had not reported when it was killed is not in the figures)."""
    last: dict[int, Sample] = {}
    for sample in samples:
        if sample.metrics:
            last[sample.start] = sample
    received = sum(
        s.metrics.get('careline_messages_received_total{lane="telemetry"}', 0) for s in last.values()
    )
    dead = sum(s.metrics.get('careline_dead_letters_total{lane="telemetry"}', 0) for s in last.values())
    queue_dropped = sum(s.metrics.get("careline_telemetry_dropped_total", 0) for s in last.values())
    writer_dropped = sum(s.writer.get("dropped_points", 0) for s in last.values())
    written = sum(s.writer.get("written_points", 0) for s in last.values())
    final = samples[-1].writer if samples else {}
    stored = count_points(influx, tele.first_ms, tele.last_ms)
    return {
        "offered": tele.offered,
        "offered_per_s": round(tele.offered / load_s, 1),
        "published": tele.published,
        "received_by_gateway": int(received),
        "handled_per_s": round(received / load_s, 1),
        "written_by_gateway": int(written),
        "stored_in_influxdb": sum(stored.values()),
        "stored_by_measurement": stored,
        "dropped_queue_full": int(queue_dropped),
        "dropped_by_writer": int(writer_dropped),
        "dead_letters": int(dead),
        "spool_dropped_total": final.get("spool_dropped_total"),
        "spool_points_at_end": final.get("spool_points"),
        "not_stored": tele.published - sum(stored.values()),
        # QoS 0 is not queued for a gateway that is down (or for its telemetry child, still starting);
        # approximate: a killed start's last counters are up to one sample period old.
        "not_received": int(tele.published - received),
    }


def rss_figures(samples: list[Sample], faults: list[Fault], s: Settings) -> dict[str, Any]:
    """Start/end/max of the gateway + child RSS, and its growth per 10 minutes over the steady parts.

    Steady: from 15 s after a start of the gateway, outside every fault and the 10 s after its recovery.
    A restart begins again from a fresh process, so each start's steady samples are a segment of their
    own and the growth is the slope the segments share (least squares, each around its own mean). Under
    `MIN_STEADY_S` of steady samples in all, no growth is claimed (None)."""
    starts: dict[int, float] = {}
    points: list[tuple[int, float, float]] = []
    for x in samples:
        if x.rss_gateway_mb is not None:
            starts.setdefault(x.start, x.t)
            points.append((x.start, x.t, x.rss_gateway_mb + (x.rss_children_mb or 0)))
    if not points:
        return {}
    quiet = [
        (start, t, v)
        for start, t, v in points
        if t >= starts[start] + 15
        and not any(f.started - 1 <= t <= (f.recovered or f.ended) + 10 for f in faults)
    ]
    num = den = span = 0.0
    for segment in {start for start, _, _ in quiet}:
        ts = np.asarray([t for start, t, _ in quiet if start == segment])
        vs = np.asarray([v for start, _, v in quiet if start == segment])
        if ts.size >= 3:
            num += float(((ts - ts.mean()) * (vs - vs.mean())).sum())
            den += float(((ts - ts.mean()) ** 2).sum())
            span += float(ts.max() - ts.min())
    growth = round(num / den * 600, 1) if den and span >= MIN_STEADY_S else None
    children = [x.rss_children_mb for x in samples if x.rss_children_mb is not None]
    return {
        "start_mb": round(points[0][2], 1),
        "end_mb": round(points[-1][2], 1),
        "max_mb": round(max(v for _, _, v in points), 1),
        "telemetry_child_max_mb": round(max(children), 1) if children else None,
        "steady_samples": len(quiet),
        "steady_span_s": round(span, 1),
        "growth_mb_per_10min": growth,
        "flagged": growth is not None and growth > s.rss_flag_mb,
    }


#: Steady seconds (summed over the gateway's starts) below which the soak claims no RSS growth figure.
MIN_STEADY_S = 60.0


# --- the run --------------------------------------------------------------------------------------------


def run(s: Settings) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="careline-soak-"))
    http_port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SOAK_PW": PASSWORD,
        WEBHOOK_SECRET_ENV: "soak-webhook-secret",
    }
    stack = contextlib.ExitStack()
    with stack:
        broker = SoakMosquitto()
        stack.enter_context(broker)
        influx = InfluxDB1(die_with_parent=True)
        stack.enter_context(influx)
        influx.create_database(DATABASE)
        receiver = Receiver()
        receiver.start()
        stack.callback(receiver.stop)
        config_path = workdir / "careline.yaml"
        config = gateway_config(s, workdir, broker.url, influx.url, http_port, receiver.url)
        config_path.write_text(yaml.safe_dump(config))
        gateway = GatewayProcess(config_path, http_port, workdir, env)
        gateway.add_user()
        stack.callback(gateway.stop)
        gateway.start()
        gateway.wait_healthy()
        api = Api(gateway.url)
        stack.callback(api.close)
        api.login()
        store = Store(workdir / "careline.db")
        pendants = AlarmPublisher(broker.port)
        stack.callback(pendants.close)
        telemetry = TelemetryPublisher(broker.port, s.homes, s.telemetry_rate)
        presser = Pendants(pendants, s.homes, s.sos_rate)
        responder = Responder(api, store)
        sampler = Sampler(gateway, api, s.sample_s)
        for thread in (sampler, telemetry, presser, responder):
            thread.start()
            stack.callback(thread.stop)
        log(f"load: {s.telemetry_rate:g} telemetry msg/s, {s.sos_rate:g} SOS/s, {s.homes} homes")
        load_start = time.time()
        chaos = Chaos(s, broker, influx, gateway, receiver, pendants, api, store)
        chaos.run(until=load_start + s.duration_s)
        time.sleep(max(0.0, load_start + s.duration_s - time.time()))
        presser.stop()
        telemetry.stop()
        load_s = time.time() - load_start
        log("load stopped; draining")
        drained = _drain(s, pendants, store, api)
        responder.stop()
        sampler.stop()
        sampler.samples.append(sampler.read())
        alarms = account_alarms(pendants.presses, store)
        events = store.events()
        results = {
            "duration_s": s.duration_s,
            "load_s": round(load_s, 1),
            "settings": asdict(s),
            "drained_in_s": drained,
            "alarms": alarms,
            "sos_offered_per_s": round(len(pendants.presses) / load_s, 2),
            "sos_resent": pendants.resent,
            "faults": [
                {
                    "name": f.name,
                    "start": _clock(f.started),
                    "end": _clock(f.ended),
                    "length_s": round(f.ended - f.started, 2),
                    "recovery_s": f.recovery_s,
                    "recovered_when": f.signal,
                    **f.detail,
                    "alarms_during": alarms_during(f, pendants.presses, events),
                }
                for f in chaos.faults
            ],
            "telemetry": telemetry_figures(telemetry, influx, sampler.samples, load_s),
            "notifications": {"answered_200": len(receiver.ok_times), "refused_503": receiver.refused},
            "responder": {"acknowledged": len(responder.acknowledged), "resolved": len(responder.resolved)},
            "rss": rss_figures(sampler.samples, chaos.faults, s),
            "gateway_starts": len(gateway.starts),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(load_start)),
        }
        results["failures"] = failures(results, s)
    if results["failures"] or s.keep:
        log(f"kept for inspection: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def _drain(s: Settings, pendants: AlarmPublisher, store: Store, api: Api) -> float | None:
    """Until every PUBACKed press is committed and every escalation has settled (or `drain` s passed)."""
    start = time.time()
    while time.time() - start < s.drain_s:
        pendants.settle()
        with contextlib.suppress(sqlite3.Error):
            a = account_alarms(pendants.presses, store)
            if not a["never_pubacked"] and not a["lost"] and not a["escalations_unsettled"]:
                return round(time.time() - start, 1)
        time.sleep(1)
    return None


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S.%f")[:-3]


def failures(r: dict[str, Any], s: Settings) -> list[str]:
    problems = []
    a = r["alarms"]
    if a["lost"]:
        problems.append(f"{a['lost']} alarms lost")
    if a["duplicates"]:
        problems.append(f"{a['duplicates']} alarms duplicated")
    if a["never_pubacked"]:
        problems.append(f"{a['never_pubacked']} presses never acknowledged by the broker")
    if a["escalations_unsettled"]:
        problems.append(f"{a['escalations_unsettled']} escalations neither acknowledged nor exhausted")
    for f in r["faults"]:
        if f["recovery_s"] is None:
            problems.append(f"{f['name']} at {f['start']}: not recovered within {s.recovery_bound_s:g} s")
    names = {f["name"] for f in r["faults"]}
    if missing := [n for n in s.faults if n not in names]:
        problems.append(f"faults not injected (duration too short?): {', '.join(missing)}")
    growth = r["rss"].get("growth_mb_per_10min")
    if growth is not None and growth > s.rss_bound_mb:
        problems.append(f"RSS grew {growth} MB per 10 min (bound {s.rss_bound_mb:g})")
    return problems


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: tuple[str, ...], rows: list[str]) -> list[str]:
    return [_row(*header), _row(*("---" for _ in header)), *rows, ""]


def write_doc(r: dict[str, Any]) -> None:
    """This run's figures as a section of docs/reliability.md (one section per duration)."""
    a, t, rss, m = r["alarms"], r["telemetry"], r["rss"], r["machine"]
    faults = [
        _row(
            f["name"].replace("_", " "),
            f["start"],
            f["length_s"],
            f["recovery_s"],
            f["recovered_when"],
            f["alarms_during"]["presses"],
            f["alarms_during"]["max_publish_to_commit_ms"],
        )
        for f in r["faults"]
    ]
    commit = a["publish_to_commit_ms"] or {}
    alarms = _row(
        a["published_pubacked"],
        a["accounted"],
        a["lost"],
        a["duplicates"],
        a["incidents"],
        a["escalations_acknowledged"],
        a["escalations_exhausted"],
        a["escalations_unsettled"],
        " / ".join(str(commit.get(k)) for k in ("p50", "p99", "max")),
    )
    telemetry = _row(
        t["published"],
        t["received_by_gateway"],
        t["stored_in_influxdb"],
        t["dropped_queue_full"],
        t["dropped_by_writer"],
        t["not_stored"],
        t["not_received"],
    )
    minutes = round(r["duration_s"] / 60)
    begin, end = f"<!-- soak-{minutes}min:begin -->", f"<!-- soak-{minutes}min:end -->"
    verdict = "PASS" if not r["failures"] else "FAIL: " + "; ".join(r["failures"])
    lines = [
        begin,
        f"### {minutes}-minute soak, {r['when']} ({m['cpus']} cores, Python {m['python']})",
        "",
        f"Load held: telemetry {t['offered_per_s']} msg/s offered, {t['handled_per_s']} msg/s received "
        f"by the gateway; SOS {r['sos_offered_per_s']}/s; the gateway started {r['gateway_starts']} times.",
        "",
        *_table(FAULT_HEADER, faults),
        *_table(ALARM_HEADER, [alarms]),
        *_table(TELEMETRY_HEADER, [telemetry]),
        f"RSS of the gateway and its telemetry process: start {rss.get('start_mb')} MB, end "
        f"{rss.get('end_mb')} MB, max {rss.get('max_mb')} MB; growth over the steady parts "
        f"{rss.get('growth_mb_per_10min')} MB per 10 min ({rss.get('steady_samples')} samples over "
        f"{rss.get('steady_span_s')} s){' — FLAGGED' if rss.get('flagged') else ''}.",
        "",
        f"Result: {verdict}.",
        end,
    ]
    replace_section(DOC, begin, end, "\n".join(lines))


FAULT_HEADER = (
    "fault",
    "start (UTC)",
    "length s",
    "recovery s",
    "recovered when",
    "SOS during",
    "slowest of them, publish → commit ms",
)
ALARM_HEADER = (
    "alarms published (PUBACKed)",
    "accounted",
    "lost",
    "duplicates",
    "incidents",
    "escalations acknowledged",
    "exhausted",
    "unsettled",
    "publish → commit p50 / p99 / max ms",
)
TELEMETRY_HEADER = (
    "telemetry published",
    "received",
    "stored in InfluxDB",
    "dropped: queue full",
    "dropped by the writer (spool full)",
    "not stored",
    "of which never reached the gateway",
)


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=180, help="seconds of load (180 in CI, 3600 for an hour)"
    )
    parser.add_argument("--homes", type=int, default=50)
    parser.add_argument("--telemetry-rate", type=float, default=500)
    parser.add_argument("--sos-rate", type=float, default=1.5)
    parser.add_argument(
        "--gap", type=float, default=None, help="steady seconds before each fault (default: by duration)"
    )
    parser.add_argument(
        "--down", type=float, default=4, help="seconds a fault lasts (InfluxDB and notifiers: twice)"
    )
    parser.add_argument(
        "--tier-wait", type=int, default=8, help="escalation: seconds per tier (two tiers, then stop)"
    )
    parser.add_argument("--spool-max-points", type=int, default=4000)
    parser.add_argument("--drain", type=float, default=60)
    parser.add_argument("--sample", type=float, default=2)
    parser.add_argument("--recovery-bound", type=float, default=30)
    parser.add_argument(
        "--rss-flag", type=float, default=10, help="MB per 10 min of growth reported as flagged"
    )
    parser.add_argument(
        "--rss-bound", type=float, default=100, help="MB per 10 min of growth that fails the run"
    )
    parser.add_argument("--faults", default=",".join(FAULTS), help="which faults, in this order")
    parser.add_argument("--results", type=Path, help="the JSON file (default: results/soak-<duration>.json)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--no-write", action="store_true", help="print and write the JSON only, not the doc")
    args = parser.parse_args()
    gap = args.gap if args.gap is not None else max(8.0, args.duration / 40)
    settings = Settings(
        args.duration,
        args.homes,
        args.telemetry_rate,
        args.sos_rate,
        gap,
        args.down,
        args.tier_wait,
        args.spool_max_points,
        args.drain,
        args.sample,
        args.recovery_bound,
        args.rss_flag,
        args.rss_bound,
        tuple(f for f in args.faults.split(",") if f),
        args.keep,
    )
    # Ctrl-C or SIGTERM unwinds through every `finally` and the exit stack: nothing is left running.
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)  # also when started in the background (SIGINT ignored)
    results = run(settings)
    out = args.results or RESULTS_DIR / f"soak-{int(settings.duration_s)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    if not args.no_write:
        write_doc(results)
    if results["failures"]:
        log("FAIL: " + "; ".join(results["failures"]))
        return 1
    log(f"PASS; figures in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
