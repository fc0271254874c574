"""MQTT ingest: one paho client per lane, each on its own network thread and its own queue.

Why paho, not aiomqtt, here (see ../shared/FACTS.md): paho 2.2 can hold back the QoS 1 acknowledgement
until the incident is committed (`manual_ack`), which is what makes the alarm path at-least-once end to
end, and its receive ceiling is higher. Messages cross into asyncio with `call_soon_threadsafe`; nothing
else happens on the network thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.decode import MAX_PAYLOAD_BYTES
from devices.model import DEAD_LETTER_PREFIX_BYTES, Lane, RawMessage
from gateway.config import BrokerConfig
from gateway.metrics import Metrics

log = logging.getLogger(__name__)

MessageSink = Callable[[RawMessage], None]
#: Takes every message that arrived since the last hand-over at once (the telemetry lane).
BatchSink = Callable[[list[RawMessage]], None]
#: MQTT 5 reason code of a DISCONNECT the broker sends when another connection takes our session.
SESSION_TAKEN_OVER = 142
#: Topics per SUBSCRIBE / UNSUBSCRIBE packet: thousands of exact Zigbee2MQTT topics stay small packets.
TOPICS_PER_PACKET = 100
#: How long `follow` waits for the broker to confirm new subscriptions.
SUBACK_WAIT_S = 5.0
#: With a batch sink, how often the event loop takes what paho's thread received. Waking the loop for
#: each burst cost more than the messages themselves at telemetry rates (a self-pipe write and a GIL
#: hand-over per message, measured in docs/benchmarks.md); telemetry can wait these few milliseconds.
BATCH_EVERY_S = 0.01


class PahoOnTheLoop:
    """Runs a paho client on the asyncio event loop instead of paho's own network thread (paho's
    external-loop callbacks: its socket is watched by the loop, reads and writes happen in loop
    callbacks, `loop_misc` keeps the connection alive), and reconnects with backoff.

    For the telemetry lane: with paho's thread, every message crossed between two threads under one
    interpreter lock, and the telemetry process spent a fifth of its time on that contention (measured
    in docs/benchmarks.md). The alarm lane keeps paho's thread: its acknowledgements are sent from the
    store's commit, and it must read on while the loop is busy.
    """

    #: Packets read per wake-up of the loop at most, so a flood cannot hold the loop for long.
    READS_PER_WAKE = 200

    def __init__(self, client: mqtt.Client, config: BrokerConfig, connect_kwargs: dict[str, Any]) -> None:
        self._client = client
        self._config = config
        self._connect_kwargs = connect_kwargs
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        client.on_socket_open = self._socket_opened
        client.on_socket_close = self._socket_closed
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = self._written

    def start(self) -> None:
        self._task = self._loop.create_task(self._run())

    def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()

    def connection_lost(self) -> None:
        """Told by the lane's on_disconnect (on the loop)."""
        self._lost.set()

    async def _run(self) -> None:
        delay = self._config.reconnect_min_s
        while not self._stopping:
            self._lost.clear()
            try:
                # Blocking (TCP connect, TLS handshake): on a thread, so the loop goes on meanwhile.
                await asyncio.to_thread(self._connect)
            except Exception as exc:  # refused, unreachable, TLS: never the end of the lane
                log.warning(
                    "telemetry lane: cannot connect to the broker (%s: %s); retrying in %.1f s",
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(self._config.reconnect_max_s, delay * 2)
                continue
            # Backing off also when the broker took the connection but refused or dropped the session
            # (bad credentials): only a session that was up starts the next wait from the shortest.
            if await self._keep_alive():
                delay = self._config.reconnect_min_s
            await asyncio.sleep(delay)
            delay = min(self._config.reconnect_max_s, delay * 2)

    def _connect(self) -> None:
        config = self._config
        self._client.connect(config.host, config.port, keepalive=config.keepalive_s, **self._connect_kwargs)

    async def _keep_alive(self) -> bool:
        """Until the connection is lost; whether the broker accepted the session meanwhile."""
        accepted = False
        while not self._lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), 1.0)
            accepted = accepted or self._client.is_connected()
            if self._client.loop_misc() != mqtt.MQTT_ERR_SUCCESS:
                self._lost.set()
        return accepted

    # paho's external-loop callbacks: on the loop, except during `_connect` (its thread).

    def _on_loop(self, callback: Callable[..., object], *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            callback(*args)  # at once: a socket being closed must be unwatched before it is
        else:
            self._loop.call_soon_threadsafe(callback, *args)

    def _socket_opened(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        self._on_loop(self._loop.add_reader, sock, self._readable, sock)

    def _socket_closed(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        self._on_loop(self._forget, sock)

    def _forget(self, sock: Any) -> None:
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)
        self._lost.set()

    def _want_write(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        self._on_loop(self._loop.add_writer, sock, self._client.loop_write)

    def _written(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        self._on_loop(self._loop.remove_writer, sock)

    def _readable(self, sock: Any) -> None:
        # paho reads one packet per call: read on while the socket (or TLS's own buffer) holds more.
        for _ in range(self.READS_PER_WAKE):
            if self._client.loop_read() != mqtt.MQTT_ERR_SUCCESS or self._client.socket() is not sock:
                return
            if not (_tls_pending(sock) or _readable_now(sock)):
                return


def _readable_now(sock: Any) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def _tls_pending(sock: Any) -> bool:
    """Bytes TLS has decrypted that select cannot see."""
    pending = getattr(sock, "pending", None)
    return bool(pending()) if pending is not None else False


class MqttLane:
    """A broker connection for one lane. The alarm lane keeps a persistent session and acknowledges
    each QoS 1 message only when told to (`ack`), so the broker redelivers what we never committed."""

    def __init__(
        self,
        config: BrokerConfig,
        lane: Lane,
        topics: list[str],
        sink: MessageSink,
        metrics: Metrics,
        *,
        batch_sink: BatchSink | None = None,
        batch_every_s: float = BATCH_EVERY_S,
        share_group: str | None = None,
        via: str = "",
        on_taken_over: Callable[[], None] | None = None,
    ) -> None:
        self._config = config
        #: `$share/<group>/` before every subscription: the broker gives each message to one member.
        self._share = f"$share/{share_group}/" if share_group else ""
        #: Set on the messages of an adopted session (see RawMessage.via).
        self._via = via
        #: Called on the event loop when another client took this session over (an adopted peer came
        #: back): this connection must then stop, not reconnect and take it back.
        self._on_taken_over = on_taken_over
        self._lane = lane
        self._topics = list(dict.fromkeys(topics))
        #: Guards the topic set between the event loop (`follow`) and paho's thread (`_on_connect`).
        self._topics_lock = threading.Lock()
        #: Topics dropped while no UNSUBSCRIBE could be sent: a persistent session would keep them, so
        #: the next connect unsubscribes them.
        self._stale: set[str] = set()
        #: SUBSCRIBE packets `follow` sent, by message id, until the broker's SUBACK (event loop only).
        self._awaiting: dict[int, tuple[asyncio.Future[bool], list[str]]] = {}
        self._sink = sink
        #: When set, the event loop takes the messages every `batch_every_s` as one list, and paho's
        #: thread never wakes it (see BATCH_EVERY_S).
        self._batch_sink = batch_sink
        self._batch_every_s = batch_every_s
        self._batches: asyncio.Task[None] | None = None
        #: Drives the client on the event loop (with a batch sink), else paho's thread does.
        self._on_loop: PahoOnTheLoop | None = None
        self._metrics = metrics
        self._alarm = lane is Lane.ALARM
        self._v5 = (config.protocol if self._alarm else config.telemetry_protocol) == "5"
        self.connected = asyncio.Event()
        #: SUBSCRIBE packets of the current connection not yet confirmed (event loop only).
        self._connect_subacks: set[int] = set()
        self._stopping = False
        self._arrived: deque[RawMessage] = deque()
        self._handoff_scheduled = False
        # Made in `start`: a paho client opens sockets when it is created, and it belongs to the running loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None

    @property
    def _client_name(self) -> str:
        return f"{self._config.client_id}-{self._lane.value}"

    def _make_client(self) -> mqtt.Client:
        config = self._config
        v5 = self._v5
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_name,
            clean_session=None if v5 else not self._alarm,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            manual_ack=self._alarm,
        )
        if config.username:
            client.username_pw_set(config.username, config.password())
        if config.uses_tls:
            self._configure_tls(client)
        client.reconnect_delay_set(
            min_delay=max(1, round(config.reconnect_min_s)), max_delay=max(1, round(config.reconnect_max_s))
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        # Our own QoS 1 publications (none on the alarm lane today) may queue while disconnected.
        client.max_queued_messages_set(0)
        return client

    def _configure_tls(self, client: mqtt.Client) -> None:
        tls = self._config.tls
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls and tls.ca_file else None,
            certfile=str(tls.cert_file) if tls and tls.cert_file else None,
            keyfile=str(tls.key_file) if tls and tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        if tls is not None and tls.insecure:
            client.tls_insecure_set(True)

    def start(self) -> None:
        """Connect in the background (paho's network thread); messages reach the sink on this loop."""
        self._loop = asyncio.get_running_loop()
        self._client = client = self._make_client()
        config = self._config
        kwargs: dict[str, Any] = {}
        if self._v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = config.session_expiry_s if self._alarm else 0
            if self._alarm:
                properties.ReceiveMaximum = config.alarm_receive_maximum
            kwargs = {"clean_start": not self._alarm, "properties": properties}
        if self._batch_sink is not None:
            self._on_loop = PahoOnTheLoop(client, config, kwargs)
            self._on_loop.start()
            self._batches = asyncio.get_running_loop().create_task(self._take_batches())
            return
        client.connect_async(config.host, config.port, keepalive=config.keepalive_s, **kwargs)
        client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        if self._batches is not None:
            self._batches.cancel()
        if self._on_loop is not None:
            self._on_loop.stop()
            if self._client is not None:
                self._client.disconnect()
            return
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    @property
    def topics(self) -> list[str]:
        with self._topics_lock:
            return list(self._topics)

    async def follow(self, topics: Sequence[str], *, limit_s: float = SUBACK_WAIT_S) -> bool:
        """Listen to `topics` from now on: new ones are subscribed and dropped ones unsubscribed on the
        live connection, without reconnecting (alarms keep flowing on the others). True once the broker
        has confirmed every new subscription; False if the lane is not connected or the broker did not
        confirm within `limit_s`, in which case the next connect subscribes the current set."""
        wanted = list(dict.fromkeys(topics))
        with self._topics_lock:
            kept = set(wanted)
            before = set(self._topics)
            added = [topic for topic in wanted if topic not in before]
            dropped = [topic for topic in self._topics if topic not in kept]
            self._topics = wanted
            self._stale.difference_update(added)
            sent = self._subscribe(added) if added else {}
            if dropped:
                self._unsubscribe(dropped)
        if sent is None:
            return False
        loop = asyncio.get_running_loop()
        # Registered before this coroutine first yields, so before any SUBACK can be handled on the loop.
        waits = {mid: (loop.create_future(), chunk) for mid, chunk in sent.items()}
        self._awaiting.update(waits)
        if not waits:
            return True
        done, pending = await asyncio.wait([future for future, _ in waits.values()], timeout=limit_s)
        for mid in waits:
            self._awaiting.pop(mid, None)
        return not pending and all(future.result() for future in done)

    def _subscribe(self, topics: list[str]) -> dict[int, list[str]] | None:
        """SUBSCRIBE packets sent, by message id; None without a connection. Hold `_topics_lock`."""
        client = self._client
        if client is None:
            return None
        qos = 1 if self._alarm else 0
        sent: dict[int, list[str]] = {}
        for n in range(0, len(topics), TOPICS_PER_PACKET):
            chunk = topics[n : n + TOPICS_PER_PACKET]
            result, mid = client.subscribe([(self._share + topic, qos) for topic in chunk])
            if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
                return None
            sent[mid] = chunk
        return sent

    def _unsubscribe(self, topics: list[str]) -> None:
        """Hold `_topics_lock`."""
        client = self._client
        for n in range(0, len(topics), TOPICS_PER_PACKET):
            chunk = topics[n : n + TOPICS_PER_PACKET]
            filters = [self._share + topic for topic in chunk]
            result = client.unsubscribe(filters)[0] if client is not None else mqtt.MQTT_ERR_NO_CONN
            if result != mqtt.MQTT_ERR_SUCCESS:
                self._stale.update(chunk)

    def ack(self, message: RawMessage) -> None:
        if self._alarm and message.qos > 0 and self._client is not None:
            self._client.ack(message.mid, message.qos)

    # -- paho callbacks, on paho's network thread ----------------------------------------------------

    def _call_on_loop(self, callback: Callable[[], None]) -> None:
        assert self._loop is not None  # paho calls back only after `start`
        self._loop.call_soon_threadsafe(callback)

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("%s lane: broker refused the connection: %s", self._lane.value, reason)
            return
        sock = client.socket()
        if isinstance(sock, socket.socket):
            # Without it a ~40 ms delayed-ACK stall shows up in the latency tail (FACTS.md).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._topics_lock:
            # Under the lock: a `follow` on the event loop either sees this connection or has already
            # changed the set subscribed here.
            sent = self._subscribe(self._topics) if self._topics else {}
            stale, self._stale = list(self._stale), set()
            if stale:
                self._unsubscribe(stale)
            count = len(self._topics)
        log.info(
            "%s lane connected to %s:%s, %d topics",
            self._lane.value,
            self._config.host,
            self._config.port,
            count,
        )
        self._metrics.broker_connected.labels(self._lane.value).set(1)
        # Connected means listening: set once the broker has confirmed this connection's subscriptions,
        # so a message published the moment after (a device pressed as the lane came back) is not routed
        # before our SUBSCRIBE was. Scheduled before any SUBACK can be handled (same thread, FIFO).
        pending = set(sent) if sent else set()
        self._call_on_loop(lambda: self._await_connect_subacks(pending))

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if self._stopping:
            log.info("%s lane disconnected", self._lane.value)
        elif getattr(reason, "value", None) == SESSION_TAKEN_OVER and self._on_taken_over is not None:
            log.info("%s lane: session %s taken over; stepping aside", self._lane.value, self._client_name)
            self._call_on_loop(self._on_taken_over)
        else:
            log.warning("%s lane disconnected (%s); paho reconnects with backoff", self._lane.value, reason)
        self._metrics.broker_connected.labels(self._lane.value).set(0)
        self._call_on_loop(self.connected.clear)
        self._call_on_loop(self._abandon_waits)
        if self._on_loop is not None:
            self._call_on_loop(self._on_loop.connection_lost)

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reasons: Any, _props: Any
    ) -> None:
        refused = sum(1 for reason in reasons if reason.is_failure)
        self._call_on_loop(lambda: self._subscribed(mid, refused))

    # -- on the event loop --------------------------------------------------------------------------

    def _await_connect_subacks(self, pending: set[int]) -> None:
        self._connect_subacks = pending
        if not pending:
            self.connected.set()

    def _subscribed(self, mid: int, refused: int) -> None:
        if mid in self._connect_subacks:
            self._connect_subacks.discard(mid)
            if not self._connect_subacks:
                self.connected.set()
        waiting = self._awaiting.pop(mid, None)
        if refused:
            self._metrics.subscriptions_refused.labels(self._lane.value).inc(refused)
            shown = waiting[1][:5] if waiting else []
            log.error("%s lane: the broker refused %d subscriptions %s", self._lane.value, refused, shown)
        if waiting is not None and not waiting[0].done():
            waiting[0].set_result(refused == 0)

    def _abandon_waits(self) -> None:
        """The connection is gone: the SUBACKs will not come; the reconnect subscribes everything."""
        for future, _ in self._awaiting.values():
            if not future.done():
                future.set_result(False)
        self._awaiting.clear()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        raw = RawMessage(
            topic=message.topic,
            payload=bytes(message.payload),
            received_at=datetime.now(UTC),
            lane=self._lane,
            qos=message.qos,
            mid=message.mid,
            duplicate=bool(message.dup),
            retained=bool(message.retain),
            via=self._via,
        )
        if raw.size > MAX_PAYLOAD_BYTES:
            # It can only become a dead letter; queued whole, a flood of them would exhaust memory.
            raw = raw.prefix(DEAD_LETTER_PREFIX_BYTES)
        self._arrived.append(raw)
        if self._batch_sink is None and not self._handoff_scheduled:
            # One wake-up of the event loop per burst, not per message: at thousands of telemetry
            # messages a second, per-message callbacks would crowd out the alarm lane's work.
            self._handoff_scheduled = True
            self._call_on_loop(self._hand_over)

    def _hand_over(self) -> None:
        """On the event loop: pass every message that arrived to the lane. The flag is cleared before
        draining, so a message appended meanwhile either is drained now or schedules the next hand-over."""
        self._handoff_scheduled = False
        arrived = self._arrived
        while arrived:
            self._sink(arrived.popleft())

    async def _take_batches(self) -> None:
        """On the event loop, with a batch sink: every `batch_every_s`, what arrived, as one list."""
        assert self._batch_sink is not None  # started only with one
        arrived, sink = self._arrived, self._batch_sink
        while True:
            await asyncio.sleep(self._batch_every_s)
            if arrived:
                # popleft, not a swap: paho's thread may append meanwhile (deque ends are thread-safe).
                sink([arrived.popleft() for _ in range(len(arrived))])
