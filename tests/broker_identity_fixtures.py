"""Helpers for the broker-identity tests: a secured Mosquitto, its admin's dynsec client, MQTT v5 clients
that report the broker's reason codes."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from services import MosquittoDynsec, ServerProcess

from gateway.broker_identity.certs import CertFiles, make_certs
from gateway.broker_identity.dynsec import BrokerAddress, DynsecClient
from gateway.config import DeviceConfig

NOT_AUTHORIZED = 135
#: PUBACK reasons of a publish the broker took: success, and "no matching subscribers".
ACCEPTED = frozenset({0, 16})
WAIT_S = 5.0


@pytest.fixture
def certs(tmp_path: Path) -> CertFiles:
    return make_certs(tmp_path / "certs")


@pytest.fixture
def secured() -> Iterator[MosquittoDynsec]:
    with MosquittoDynsec() as broker:
        yield broker


def admin_client(broker: MosquittoDynsec) -> DynsecClient:
    tls = broker.certs is not None
    address = BrokerAddress(
        broker.host, broker.port, tls=tls, ca_file=str(broker.certs.ca_cert) if broker.certs else None
    )
    return DynsecClient(address, broker.admin.username, broker.admin.password)


def native(device_id: str, site: str = "home-a", **extra: Any) -> DeviceConfig:
    return DeviceConfig.model_validate({"id": device_id, "type": "sos_button", "site": site, **extra})


def zigbee(device_id: str, hub: str, site: str = "home-a", **extra: Any) -> DeviceConfig:
    return DeviceConfig.model_validate(
        {
            "id": device_id,
            "type": "fall_sensor",
            "profile": "zigbee2mqtt",
            "site": site,
            "hub": hub,
            "friendly_name": f"{site}/{device_id}",
            **extra,
        }
    )


class V5Client:
    """A paho MQTT v5 client that keeps the broker's answers: CONNACK, PUBACK and SUBACK reason codes,
    messages received, and why it was disconnected."""

    def __init__(
        self,
        broker: ServerProcess,
        username: str | None,
        password: str | None,
        *,
        ca_file: Path | None = None,
    ) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"t-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file))
        self.connack: ReasonCode | None = None
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.answered = threading.Event()
        self.acks: dict[int, int] = {}
        self.subacks: dict[int, list[int]] = {}
        self.received: list[tuple[str, bytes]] = []
        self._changed = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.disconnected.set()
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(30, 30)  # tests watch one connection; no quiet reconnects
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if not self.answered.wait(WAIT_S):
            raise AssertionError("no CONNACK")

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self.connack = reason
        self.answered.set()
        if not reason.is_failure:
            self.connected.set()

    @property
    def refused(self) -> bool:
        """The broker answered the CONNECT with a refusal (bad login, disabled or deleted client)."""
        return self.connack is not None and self.connack.is_failure

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        with self._changed:
            self.acks[mid] = reason.value
            self._changed.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        with self._changed:
            self.subacks[mid] = [r.value for r in reasons]
            self._changed.notify_all()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.received.append((message.topic, bytes(message.payload)))
            self._changed.notify_all()

    def publish(self, topic: str, payload: bytes = b"{}") -> int:
        """The PUBACK's reason code of a QoS 1 publish (0: accepted, 135: not authorized)."""
        mid = self.client.publish(topic, payload, qos=1).mid
        with self._changed:
            if not self._changed.wait_for(lambda: mid in self.acks, WAIT_S):
                raise AssertionError(f"no PUBACK for {topic}")
            return self.acks[mid]

    def subscribe(self, topic: str) -> int:
        """The SUBACK's reason code (1: granted QoS 1, 135: not authorized)."""
        mid = self.client.subscribe(topic, qos=1)[1]
        assert mid is not None
        with self._changed:
            if not self._changed.wait_for(lambda: mid in self.subacks, WAIT_S):
                raise AssertionError(f"no SUBACK for {topic}")
            return self.subacks[mid][0]

    def wait_received(self, count: int, limit_s: float = WAIT_S) -> list[tuple[str, bytes]]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.received) >= count, limit_s)
            return list(self.received)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
