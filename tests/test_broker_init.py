"""`careline certs` and `careline broker init` make a configuration the real Mosquitto starts with: TLS
only, no anonymous access, the gateway's login reading devices' topics, provisioning through the plugin."""

from __future__ import annotations

import json
import os
import pwd
import socket
from pathlib import Path

import pytest
from broker_identity_fixtures import NOT_AUTHORIZED, V5Client, native
from services import ConfiguredMosquitto, free_port
from typer.testing import CliRunner

from careline.cli import app
from devices.decode import MAX_PAYLOAD_BYTES
from gateway.broker_identity import BrokerIdentity, DynsecClient
from gateway.broker_identity.dynsec import BrokerAddress
from gateway.broker_identity.model import desired_identities


def test_certs_name_localhost_the_loopback_and_the_names_given(tmp_path: Path) -> None:
    from cryptography import x509

    result = CliRunner().invoke(app, ["certs", "--dir", str(tmp_path), "--name", "broker.home.example"])
    assert result.exit_code == 0, result.output
    cert = x509.load_pem_x509_certificate((tmp_path / "server.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "broker.home.example"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert oct((tmp_path / "ca.key").stat().st_mode & 0o777) == "0o600"
    again = CliRunner().invoke(app, ["certs", "--dir", str(tmp_path)])
    assert again.exit_code == 1
    assert "--force" in again.output


async def test_broker_init_makes_a_tls_only_broker_the_gateway_and_provisioning_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["certs", "--dir", str(tmp_path / "certs")]).exit_code == 0
    port = free_port()
    monkeypatch.setenv("TEST_ADMIN_PASSWORD", "admin-secret-1")
    result = runner.invoke(
        app,
        [
            "broker", "init", "--dir", str(tmp_path), "--port", str(port), "--host", "127.0.0.1",
            "--admin-password-env", "TEST_ADMIN_PASSWORD",
            "--run-as", pwd.getpwuid(os.getuid()).pw_name,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    gateway_password = result.output.split("password of careline-gateway (shown once, kept only hashed): ")[
        1
    ].split()[0]
    conf = (tmp_path / "mosquitto.conf").read_text()
    for line in (
        "allow_anonymous false",
        "per_listener_settings false",
        "tls_version tlsv1.2",
        "max_packet_size 66560",
    ):
        assert line in conf.splitlines()
    dynsec = (tmp_path / "dynamic-security.json").read_text()
    assert "admin-secret-1" not in dynsec
    assert gateway_password not in dynsec
    assert {c["username"] for c in json.loads(dynsec)["clients"]} == {"careline-admin", "careline-gateway"}
    with ConfiguredMosquitto(tmp_path / "mosquitto.conf", port) as broker:
        ca = tmp_path / "certs" / "ca.crt"
        assert plain_connack(port) == b"", "the listener answered plain MQTT"
        anonymous = V5Client(broker, None, None, ca_file=ca)
        anonymous.close()
        assert anonymous.refused
        gateway = V5Client(broker, "careline-gateway", gateway_password, ca_file=ca)
        try:
            assert gateway.subscribe("careline/#") == 1
            assert gateway.subscribe("$CONTROL/dynamic-security/#") == NOT_AUTHORIZED
            assert gateway.publish("careline/home-a/pendant-1/alarm") == NOT_AUTHORIZED
            address = BrokerAddress("127.0.0.1", port, tls=True, ca_file=str(ca))
            identity = BrokerIdentity(DynsecClient(address, "careline-admin", "admin-secret-1"))
            devices = [native("pendant-1")]
            await identity.reconcile(devices)
            login = await identity.issue(desired_identities(devices)["careline.device.pendant-1"])
            device = V5Client(broker, login.username, login.password, ca_file=ca)
            try:
                assert device.publish("careline/home-a/pendant-1/alarm", b'{"kind":"sos"}') == 0
                assert gateway.wait_received(1) == [("careline/home-a/pendant-1/alarm", b'{"kind":"sos"}')]
                # The largest payload the gateway reads passes; beyond it the broker closes the connection.
                assert device.publish("careline/home-a/pendant-1/telemetry", b"y" * MAX_PAYLOAD_BYTES) == 0
                assert len(gateway.wait_received(2)) == 2
                device.client.publish(
                    "careline/home-a/pendant-1/telemetry", b"x" * (MAX_PAYLOAD_BYTES + 2048), qos=1
                )
                assert device.disconnected.wait(5), "an oversized packet was accepted"
                assert len(gateway.wait_received(3, limit_s=0.5)) == 2
            finally:
                device.close()
        finally:
            gateway.close()


#: An MQTT 3.1.1 CONNECT of client "x", clean session, keep-alive 60 s, no login.
PLAIN_CONNECT = bytes([0x10, 13, 0, 4, *b"MQTT", 4, 0x02, 0, 60, 0, 1, *b"x"])


def plain_connack(port: int) -> bytes:
    """What a TLS listener answers a plain CONNECT: nothing (it closes the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(PLAIN_CONNECT)
        try:
            return sock.recv(4)
        except (ConnectionResetError, TimeoutError):
            return b""
