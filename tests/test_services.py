"""The test broker is a real Mosquitto: QoS 1 round trips work and persistent sessions survive a restart;
the test PostgreSQL is a real server of its own."""

from __future__ import annotations

import os
import queue
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from services import SESSION_MARKER, Mosquitto, PostgreSQL, command_line, processes_marked
from stores import store_rows

TIMEOUT_S = 5.0


@contextmanager
def connected_client(
    broker: Mosquitto, client_id: str, *, clean_session: bool = True
) -> Iterator[tuple[mqtt.Client, queue.Queue[mqtt.MQTTMessage]]]:
    """A paho client connected to `broker` with TCP_NODELAY on, and the queue its messages arrive in."""
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    connacked = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=mqtt.MQTTv311,
    )

    def on_connect(_c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if not reason.is_failure:
            connacked.set()

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        received.put(message)

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(broker.host, broker.port, keepalive=30)
    # Neither paho nor Mosquitto's set_tcp_nodelay avoids the ~40 ms delayed-ACK stall (see FACTS.md).
    sock = client.socket()
    assert isinstance(sock, socket.socket)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.loop_start()
    try:
        assert connacked.wait(TIMEOUT_S), "no CONNACK from the broker"
        yield client, received
    finally:
        client.disconnect()
        client.loop_stop()


def subscribe(client: mqtt.Client, topic: str) -> None:
    subacked = threading.Event()
    client.on_subscribe = lambda *_args: subacked.set()
    result, _mid = client.subscribe(topic, qos=1)
    assert result == mqtt.MQTT_ERR_SUCCESS
    assert subacked.wait(TIMEOUT_S), "no SUBACK from the broker"


def publish_qos1(client: mqtt.Client, topic: str, payload: bytes) -> None:
    info = client.publish(topic, payload, qos=1)
    info.wait_for_publish(TIMEOUT_S)
    assert info.is_published(), "no PUBACK from the broker"


def test_a_qos1_message_makes_the_round_trip_through_the_broker(mosquitto: Mosquitto) -> None:
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    with (
        connected_client(mosquitto, "test-subscriber") as (subscriber, received),
        connected_client(mosquitto, "test-publisher") as (publisher, _),
    ):
        sock = subscriber.socket()
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        subscribe(subscriber, "careline/sunrise/pendant-1/alarm")

        publish_qos1(publisher, "careline/sunrise/pendant-1/alarm", b'{"event": "sos"}')

        message = received.get(timeout=TIMEOUT_S)
    assert message.topic == "careline/sunrise/pendant-1/alarm"
    assert message.payload == b'{"event": "sos"}'
    assert message.qos == 1


def test_an_alarm_queued_for_a_persistent_session_survives_a_broker_restart(mosquitto: Mosquitto) -> None:
    topic = "careline/sunrise/pendant-2/alarm"
    with connected_client(mosquitto, "careline-gateway", clean_session=False) as (gateway, _):
        subscribe(gateway, topic)
    # The gateway is away; a pendant's SOS waits in its session on the broker.
    with connected_client(mosquitto, "pendant-2") as (pendant, _):
        publish_qos1(pendant, topic, b'{"event": "sos", "seq": 7}')

    mosquitto.restart()

    with connected_client(mosquitto, "careline-gateway", clean_session=False) as (_gateway, received):
        message = received.get(timeout=TIMEOUT_S)
    assert message.topic == topic
    assert message.payload == b'{"event": "sos", "seq": 7}'
    assert message.qos == 1
    assert "Saving in-memory database" in mosquitto.log_path.read_text(encoding="utf-8")


def test_the_test_postgresql_runs_unprivileged_on_loopback_carries_the_marker_and_leaves_nothing() -> None:
    """The PostgreSQL the suite runs on (CARELINE_TEST_STORE=postgresql): a database made and dropped,
    the server not root (initdb refuses root), seen by the leftover-process check, gone after cleanup."""
    with PostgreSQL() as server:
        url = server.create_database("probe")
        assert url.startswith(f"postgresql+psycopg://careline@127.0.0.1:{server.port}/probe")
        assert store_rows(url, "SELECT current_database()")[0][0] == "probe"
        [(fsync,)] = store_rows(url, "SHOW fsync")
        assert fsync == "off"  # the tests never cut the power (docs/postgresql.md)
        postmaster = [
            pid for pid in processes_marked(os.environ[SESSION_MARKER]) if "postgres -D" in command_line(pid)
        ]
        assert postmaster, "the server does not carry the session marker"
        assert all(Path(f"/proc/{pid}").stat().st_uid != 0 for pid in postmaster)
        server.drop_database("probe")
        directory = server.directory
    assert not directory.exists()
    assert not [
        pid for pid in processes_marked(os.environ[SESSION_MARKER]) if str(directory) in command_line(pid)
    ]
