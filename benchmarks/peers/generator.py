"""The load generator: publisher processes for the telemetry, and one probe process (paho) for the SOS.

Telemetry workers publish QoS 0 motion and climate reports, paced in 2 ms ticks so the offered rate is
even (a burst per second would measure the burst, not the rate). They frame MQTT 3.1.1 PUBLISH packets
themselves and send each tick's packets in one write (`--publisher paho` uses paho's `publish()`):
paho costs ~20 µs of CPU per message, and at 20k msg/s two paho publishers took most of a core from the
processors under test on this two-core machine. The probe presses pendants at QoS 1 and
listens with a plain paho subscriber: the pendant topics (publish → Mosquitto → paho, the broker's own
share of the latency: one hop) and Node-RED's alarm topic. Careline's answer arrives on a WebSocket in
the benchmark's own process, matched by the press number the probe reports. Every client sets
TCP_NODELAY (FACTS.md: without it a ~40 ms delayed-send stall).
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from workload import ALARM_TOPIC_ROOT, PENDANT_FILTER, Home, climate_state, homes, motion_state, sos_state

TICK_S = 0.002
#: How long the probe waits after the last press for the answers still under way.
ANSWER_WAIT_S = 5.0


def connect(port: int, name: str, *, threaded: bool = True) -> mqtt.Client:
    """A paho client, connected, with TCP_NODELAY on its socket. Threaded: on its own network thread.
    Not threaded, `publish()` writes to the socket at once and the caller runs `client.loop(0)` now and
    then: a publisher that shares the interpreter lock with a network thread hands it over every 5 ms
    and its messages wait in paho's queue (the offered rate is then not what was published)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:6]}")
    connected = threading.Event()

    def on_connect(c: mqtt.Client, *_: Any) -> None:
        sock = c.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connected.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port, keepalive=60)
    if threaded:
        client.loop_start()
    deadline = time.monotonic() + 10
    while not connected.is_set() and time.monotonic() < deadline:
        if threaded:
            connected.wait(0.1)
        else:
            client.loop(0.1)
    if not connected.is_set():
        raise RuntimeError(f"{name} could not connect to the broker")
    return client


class RawPublisher:
    """MQTT 3.1.1 QoS 0 publishing over a plain socket: CONNECT, PUBLISH packets written in batches,
    PINGREQ within the keep-alive. Nothing comes back at QoS 0 but CONNACK and PINGRESP."""

    KEEPALIVE_S = 60

    def __init__(self, port: int, name: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client_id = f"{name}-{uuid.uuid4().hex[:6]}".encode()
        body = b"\x00\x04MQTT\x04\x02" + struct.pack("!H", self.KEEPALIVE_S)
        body += struct.pack("!H", len(client_id)) + client_id
        self.sock.sendall(b"\x10" + _remaining_length(len(body)) + body)
        if self.sock.recv(4)[:1] != b"\x20":
            raise RuntimeError(f"{name}: the broker refused the connection")
        self.sock.setblocking(True)
        self.pending: list[bytes] = []
        self.last_write = time.monotonic()

    def publish(self, topic: str, payload: bytes) -> None:
        encoded = topic.encode()
        body_len = 2 + len(encoded) + len(payload)
        self.pending.append(b"\x30" + _remaining_length(body_len) + struct.pack("!H", len(encoded)))
        self.pending.append(encoded)
        self.pending.append(payload)

    def flush(self) -> None:
        if self.pending:
            self.sock.sendall(b"".join(self.pending))
            self.pending.clear()
            self.last_write = time.monotonic()

    def keep_alive(self) -> None:
        if time.monotonic() - self.last_write > self.KEEPALIVE_S / 2:
            self.sock.sendall(b"\xc0\x00")
            self.last_write = time.monotonic()
            with contextlib.suppress(BlockingIOError):
                self.sock.recv(64, socket.MSG_DONTWAIT)  # PINGRESP

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"\xe0\x00")
        self.sock.close()


class PahoPublisher:
    """The same through paho (`publish()` writes at once: no network thread to share the lock with)."""

    def __init__(self, port: int, name: str) -> None:
        self.client = connect(port, name, threaded=False)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=0)

    def flush(self) -> None:
        self.client.loop(0)

    def keep_alive(self) -> None:
        self.client.loop(0)

    def close(self) -> None:
        self.client.disconnect()


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


class Clock:
    """Per-device `last_seen` in ms, never the same twice for one device (one point per series and time)."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}

    def stamp(self, topic: str) -> int:
        ms = max(int(time.time() * 1000), self.last.get(topic, 0) + 1)
        self.last[topic] = ms
        return ms


def telemetry_worker(
    port: int, worker: int, workers: int, home_count: int, kind: str, conn: Connection
) -> None:
    """On ("run", rate, duration, start_at): publish motion and climate reports of this worker's homes."""
    name = f"bench-telemetry{worker}"
    publisher = RawPublisher(port, name) if kind == "raw" else PahoPublisher(port, name)
    mine = homes(home_count)[worker::workers]
    devices = [(h.topic("motion"), motion_state) for h in mine] + [
        (h.topic("climate"), climate_state) for h in mine
    ]
    # Interleaved so consecutive messages alternate between kinds and homes.
    devices = devices[0::2] + devices[1::2] if len(mine) > 1 else devices
    clock, seq = Clock(), 0
    conn.send("ready")
    try:
        while (command := conn.recv()) is not None:
            _, rate, duration, start_at = command
            report = _publish_paced(publisher, devices, clock, seq, rate, duration, start_at)
            seq += report["sent"]
            conn.send(report)
            while not conn.poll(1.0):
                publisher.keep_alive()
    finally:
        publisher.close()


def _publish_paced(
    publisher: RawPublisher | PahoPublisher,
    devices: list[tuple[str, Any]],
    clock: Clock,
    seq: int,
    rate: float,
    duration: float,
    start_at: float,
) -> dict[str, Any]:
    total = int(rate * duration)
    time.sleep(max(0.0, start_at - time.time()))
    cpu0, mono0 = time.process_time(), time.monotonic()
    deadline = mono0 + duration * 1.5 + 1
    sent, behind_s, kinds = 0, 0.0, Counter[str]()
    while sent < total and (now := time.monotonic()) < deadline:
        due = min(total, int((now - mono0) * rate) + 1)
        behind_s = max(behind_s, (due - sent - 1) / rate)
        while sent < due:
            topic, build = devices[(seq + sent) % len(devices)]
            publisher.publish(topic, build(seq + sent, clock.stamp(topic)))
            kinds["motion" if build is motion_state else "climate"] += 1
            sent += 1
        publisher.flush()
        time.sleep(max(0.0, mono0 + sent / rate - time.monotonic() + TICK_S))
    elapsed = time.monotonic() - mono0
    return {
        "sent": sent,
        "target": total,
        "kinds": dict(kinds),
        "elapsed_s": elapsed,
        "max_behind_ms": behind_s * 1000,
        "cpu_s": time.process_time() - cpu0,
        "last_ms": max(clock.last.values(), default=0),
    }


class Probe:
    """Presses pendants (QoS 1) and hears them back: one hop through the broker, and Node-RED's alarm."""

    def __init__(self, port: int, home_count: int) -> None:
        self.pendants = [h.friendly_name("pendant") for h in homes(home_count)]
        self.topics = {name: Home(n).topic("pendant") for n, name in enumerate(self.pendants)}
        self.presses: Counter[str] = Counter()
        self.clock = Clock()
        self.sent: dict[tuple[str, int], tuple[int, float]] = {}
        self.hop_ms: dict[tuple[str, int], float] = {}
        self.alarm_ms: dict[tuple[str, int], float] = {}
        self.listener = connect(port, "bench-probe-listen")
        self.listener.on_message = self._on_message
        self.listener.subscribe([(PENDANT_FILTER, 1), (f"{ALARM_TOPIC_ROOT}/#", 1)])
        self.device = connect(port, "bench-probe-press")
        self.n = 0

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        now = time.time()
        with contextlib.suppress(ValueError, KeyError, TypeError):
            state = json.loads(message.payload)
            if message.topic.startswith(ALARM_TOPIC_ROOT):
                key, into = (state["device"], state["last_seen"]), self.alarm_ms
            else:
                key, into = (message.topic.split("/", 1)[1], state["last_seen"]), self.hop_ms
            if key in self.sent and key not in into:
                into[key] = (now - self.sent[key][1]) * 1000

    def press(self) -> None:
        name = self.pendants[self.n % len(self.pendants)]
        self.n += 1
        self.presses[name] += 1
        topic = self.topics[name]
        ms = self.clock.stamp(topic)
        self.sent[(name, ms)] = (self.presses[name], time.time())
        self.device.publish(topic, sos_state(self.n, ms), qos=1)

    def run(self, rate: float, duration: float, start_at: float, expect_alarm: bool) -> dict[str, Any]:
        self.sent, self.hop_ms, self.alarm_ms = {}, {}, {}
        time.sleep(max(0.0, start_at - time.time()))
        mono0, n = time.monotonic(), 0
        while rate and (elapsed := time.monotonic() - mono0) < duration:
            while n < int(elapsed * rate) + 1:
                self.press()
                n += 1
            time.sleep(max(0.0, mono0 + n / rate - time.monotonic()))
        deadline = time.monotonic() + ANSWER_WAIT_S
        while time.monotonic() < deadline and (
            len(self.hop_ms) < len(self.sent) or (expect_alarm and len(self.alarm_ms) < len(self.sent))
        ):
            time.sleep(0.05)
        return {
            "sent": len(self.sent),
            # (friendly name, press number of that pendant, publish time): Careline's incident frames
            # carry the device and its trigger count, which is the press number.
            "presses": [(name, number, t) for (name, _), (number, t) in self.sent.items()],
            "hop_ms": list(self.hop_ms.values()),
            "alarm_ms": list(self.alarm_ms.values()),
            "last_ms": max(self.clock.last.values(), default=0),
        }

    def close(self) -> None:
        for client in (self.device, self.listener):
            client.disconnect()
            client.loop_stop()


def probe_process(port: int, home_count: int, conn: Connection) -> None:
    """On ("run", sos_rate, duration, start_at, expect_alarm): press pendants and report the answers."""
    probe = Probe(port, home_count)
    conn.send("ready")
    try:
        while (command := conn.recv()) is not None:
            _, rate, duration, start_at, expect_alarm = command
            conn.send(probe.run(rate, duration, start_at, expect_alarm))
    finally:
        probe.close()
