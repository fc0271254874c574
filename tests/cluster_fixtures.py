"""Several real `careline run` processes on one PostgreSQL and one Mosquitto (tests/test_cluster.py,
benchmarks/cluster_failover.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from services import free_port
from stores import server

from dashboard.auth import Role, UserStore
from gateway.incidents.db import make_engine
from gateway.incidents.migrate import upgrade

PASSWORD = "correct-horse-battery"
CARER, BOSS = "+8613800000001", "+8613800000004"


@contextmanager
def cluster_database() -> Iterator[str]:
    """A fresh database on this worker's PostgreSQL (whatever backend the rest of the suite runs on:
    several instances need PostgreSQL), dropped afterwards."""
    name = f"cluster_{uuid.uuid4().hex[:12]}"
    postgres = server()
    postgres.create_database(name)
    try:
        yield postgres.url_of(name)
    finally:
        postgres.drop_database(name)


def pendants_directory(count: int, per_site: int = 100) -> dict[str, Any]:
    """`count` residents, each with an SOS pendant, in care homes of `per_site` rooms."""
    sites, residents, devices = [], [], []
    for n in range(count):
        site = f"home{n // per_site:02d}"
        if n % per_site == 0:
            sites.append(
                {
                    "id": site,
                    "name": f"Home {n // per_site}",
                    "rooms": [{"id": f"r{k:03d}"} for k in range(per_site)],
                    "duty": {"console_unstaffed_after_min": 0},
                }
            )
        room = f"r{n % per_site:03d}"
        residents.append({"id": f"res{n:04d}", "name": f"Resident {n}", "site": site, "room": room})
        devices.append(
            {
                "id": f"pendant{n:04d}",
                "type": "sos_button",
                "site": site,
                "room": room,
                "resident": f"res{n:04d}",
            }
        )
    return {"sites": sites, "residents": residents, "devices": devices}


def escalation(
    twilio_base_url: str, public_url: str, *, tier1_wait_s: int, in_doubt_wait_s: float
) -> dict[str, Any]:
    """SMS to the carer, then after `tier1_wait_s` to the supervisor, then stop: two steps per incident."""
    return {
        "responders": [
            {"id": "carer", "name": "Carer Li", "phone": CARER, "roles": ["carer"]},
            {"id": "boss", "name": "Supervisor", "phone": BOSS, "roles": ["supervisor"], "language": "en"},
        ],
        "escalation": {
            # Stands for the load balancer: Twilio's status callbacks reach a live instance.
            "public_url": public_url,
            "in_doubt_wait_s": in_doubt_wait_s,
            "twilio": {
                "account_sid_env": "TEST_TWILIO_SID",
                "auth_token_env": "TEST_TWILIO_TOKEN",
                "from_number": "+15005550006",
                "api_base_url": twilio_base_url,
                "timeout_s": 5,
            },
            "policies": [
                {
                    "id": "city",
                    "repeat": "stop",
                    "tiers": [
                        {"targets": [{"role": "carer"}], "channels": ["sms"], "wait_s": tier1_wait_s},
                        {"targets": [{"role": "supervisor"}], "channels": ["sms"], "wait_s": 60},
                    ],
                }
            ],
        },
    }


def instance_config(
    name: str, broker_url: str, store: str, shared: dict[str, Any], *, heartbeat_s: float = 0.5
) -> dict[str, Any]:
    return {
        "broker": {"url": broker_url, "client_id": name, "reconnect_min_s": 0.2, "reconnect_max_s": 1},
        "storage": {"url": store},
        "http": {"host": "127.0.0.1", "port": free_port()},
        "cluster": {"share_group": "careline", "heartbeat_s": heartbeat_s, "peer_timeout_s": heartbeat_s * 6},
        **shared,
    }


def add_operator(store: str) -> None:
    engine = make_engine(store)
    try:
        upgrade(engine)
        UserStore(engine, lambda: datetime.now(UTC), 12).create("operator", PASSWORD, Role.OPERATOR)
    finally:
        engine.dispose()


class Instance:
    """One `careline run` process; killed (SIGKILL) if still running when the block ends."""

    def __init__(self, config: dict[str, Any], directory: Path) -> None:
        self.config = config
        self.name: str = config["broker"]["client_id"]
        self.port: int = config["http"]["port"]
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = directory / f"{self.name}.yaml"
        self.log_path = directory / f"{self.name}.log"
        self.config_path.write_text(yaml.safe_dump(config, allow_unicode=True))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "careline", "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def wait_ready(self, limit_s: float = 60) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.logs()}")
            try:
                if httpx.get(f"{self.url}/api/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} never became ready: {self.logs()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


@contextmanager
def running(*instances: Instance) -> Iterator[tuple[Instance, ...]]:
    try:
        for instance in instances:
            instance.start()
        for instance in instances:
            instance.wait_ready()
        yield instances
    finally:
        for instance in instances:
            instance.stop()
