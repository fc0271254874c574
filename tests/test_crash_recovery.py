"""A real gateway process killed with SIGKILL between receiving an SOS and committing it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml
from harness import Publisher, new_config
from services import Mosquitto, alive, children_of, command_line
from stores import WriteBlocker, store_rows

from devices.model import EventKind


@contextmanager
def gateway_process(config_path: Path, port: int, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "careline", "run", "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        _wait_healthy(port, process, log_path)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def _wait_healthy(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gateway exited: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/healthz").json()["status"] == "ok":
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"gateway never became healthy: {log_path.read_text()[-3000:]}")


def _alarm_messages_received(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    match = re.search(r'careline_messages_received_total\{lane="alarm"\} (\S+)', text)
    return float(match.group(1)) if match else 0.0


def _wait_until(condition: object, what: str, limit_s: float = 20) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _incidents(url: str) -> list[tuple[str, int, str]]:
    return [tuple(row) for row in store_rows(url, "SELECT device_id, trigger_count, status FROM incidents")]


@pytest.mark.slow
def test_a_gateway_killed_before_committing_an_sos_gets_it_again_and_records_one_incident(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = new_config(mosquitto.url, tmp_path)
    config["storage"]["busy_timeout_s"] = 120
    port = config["http"]["port"]
    config_path = tmp_path / "careline.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True))
    db, log_path = config["storage"]["url"], tmp_path / "gateway.log"

    with gateway_process(config_path, port, log_path) as first:
        # Hold the store's write lock so the gateway receives the SOS but cannot commit it.
        blocker = WriteBlocker(db)
        device = Publisher(mosquitto.port)
        device.event("night", "night-pendant-wang", EventKind.SOS)
        _wait_until(lambda: _alarm_messages_received(port) == 1, "the gateway to receive the SOS")
        time.sleep(0.3)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        blocker.release()
        device.close()
    assert _incidents(db) == []

    with gateway_process(config_path, port, log_path):
        _wait_until(lambda: len(_incidents(db)) == 1, "the redelivered SOS to become an incident")
        time.sleep(1.0)
        assert _incidents(db) == [("night-pendant-wang", 1, "open")]
        assert _alarm_messages_received(port) == 1


@pytest.mark.slow
def test_the_telemetry_process_dies_with_a_killed_gateway(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """An orphaned telemetry child would stay connected and fight the restarted gateway's for the broker."""
    config = new_config(mosquitto.url, tmp_path)
    port = config["http"]["port"]
    config_path = tmp_path / "careline.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True))

    with gateway_process(config_path, port, tmp_path / "gateway.log") as gateway:
        [telemetry] = [pid for pid in children_of(gateway.pid) if "spawn_main" in command_line(pid)]
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(10)
        _wait_until(lambda: not alive(telemetry), "the telemetry process to end", limit_s=5)
