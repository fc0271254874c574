"""A secured Mosquitto's first configuration: `mosquitto.conf` and the dynamic-security plugin's file.

The plugin keeps each password as PBKDF2-SHA512 over a random salt (base64 both), which is what this
module writes too, so the file never holds a password in clear. The broker owns the file from its first
start: the gateway changes it only through the plugin's control topic.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.decode import MAX_PAYLOAD_BYTES
from gateway.broker_identity.model import ADMIN_ROLE, GATEWAY_ROLE, Acl, admin_acls, gateway_acls

PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
DYNSEC_FILE = "dynamic-security.json"
CONFIG_FILE = "mosquitto.conf"
#: What the plugin itself uses for passwords it sets (Mosquitto 2.0).
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
#: An MQTT PUBLISH besides its payload: fixed header, topic (Careline's and Zigbee2MQTT's are short;
#: 512 bytes is far beyond any), packet id and v5 properties.
TOPIC_OVERHEAD_BYTES = 1024
MAX_PACKET_BYTES = MAX_PAYLOAD_BYTES + TOPIC_OVERHEAD_BYTES


@dataclass(frozen=True, slots=True)
class Login:
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class Listener:
    port: int = 8883
    #: Where it listens; None: every address.
    host: str | None = None
    #: A TLS listener needs all three; without them the listener is plain MQTT (tests and labs only).
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None


def password_hash(
    password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> dict[str, Any]:
    """The plugin's fields for a password: `password` (the hash), `salt`, `iterations`."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return {
        "password": base64.b64encode(digest).decode("ascii"),
        "salt": base64.b64encode(salt).decode("ascii"),
        "iterations": iterations,
    }


def dynsec_document(admin: Login, gateway: Login) -> dict[str, Any]:
    """The plugin's first state: the admin client (control topics only), the gateway's client (reads
    `careline/#` and `zigbee2mqtt/#`), and deny by default for everyone else."""
    return {
        "clients": [
            _client(admin, ADMIN_ROLE, "Careline provisioning"),
            _client(gateway, GATEWAY_ROLE, "Careline gateway"),
        ],
        "roles": [_role(ADMIN_ROLE, admin_acls()), _role(GATEWAY_ROLE, gateway_acls())],
        "groups": [],
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": True,
            "subscribe": False,
            "unsubscribe": True,
        },
    }


def _client(login: Login, role: str, textname: str) -> dict[str, Any]:
    return {
        "username": login.username,
        "textname": textname,
        **password_hash(login.password),
        "roles": [{"rolename": role}],
    }


def _role(name: str, acls: frozenset[Acl]) -> dict[str, Any]:
    return {"rolename": name, "acls": [acl.as_json() for acl in sorted(acls)]}


def mosquitto_conf(
    directory: Path, listener: Listener, *, plugin: Path = PLUGIN, extra: tuple[str, ...] = ()
) -> str:
    lines = [
        "# Written by `careline broker init` (docs/broker-identity.md).",
        "# One set of rules for every listener: logins and ACLs come from the dynamic-security plugin.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"plugin {plugin}",
        f"plugin_opt_config_file {directory / DYNSEC_FILE}",
        "",
        f"listener {listener.port}" + (f" {listener.host}" if listener.host else ""),
    ]
    if listener.cafile and listener.certfile and listener.keyfile:
        lines += [
            f"cafile {listener.cafile}",
            f"certfile {listener.certfile}",
            f"keyfile {listener.keyfile}",
            "tls_version tlsv1.2",
        ]
    lines += [
        "",
        f"# A device payload beyond {MAX_PAYLOAD_BYTES} bytes can only be a dead letter at the gateway;",
        "# the broker refuses larger packets before anyone has to hold them.",
        f"max_packet_size {MAX_PACKET_BYTES}",
        "set_tcp_nodelay true",
        "",
        "# Alarms wait in the gateway's persistent session while it restarts, and survive a broker restart.",
        "persistence true",
        f"persistence_location {directory}/",
        "autosave_interval 10",
        "max_queued_messages 100000",
        "max_inflight_messages 100",
        "persistent_client_expiration 14d",
        *extra,
    ]
    return "\n".join(lines) + "\n"


def write_broker_files(
    directory: Path,
    listener: Listener,
    admin: Login,
    gateway: Login,
    *,
    plugin: Path = PLUGIN,
    extra: tuple[str, ...] = (),
) -> tuple[Path, Path]:
    """`mosquitto.conf` and `dynamic-security.json` in `directory` (readable by their owner only)."""
    directory.mkdir(parents=True, exist_ok=True)
    dynsec = directory / DYNSEC_FILE
    config = directory / CONFIG_FILE
    _write_private(dynsec, json.dumps(dynsec_document(admin, gateway), indent=2) + "\n")
    _write_private(config, mosquitto_conf(directory.resolve(), listener, plugin=plugin, extra=extra))
    return config, dynsec


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
