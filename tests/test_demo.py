"""`careline demo` (what `make demo` runs) brings up the whole product and shows simulated incidents."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from services import free_port


@pytest.mark.slow
def test_the_demo_shows_the_simulated_care_home_incidents(tmp_path: Path) -> None:
    http_port, mqtt_port = free_port(), free_port()
    log_path = tmp_path / "demo.log"
    with log_path.open("wb") as log:
        demo = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "careline",
                "demo",
                "--http-port",
                str(http_port),
                "--mqtt-port",
                str(mqtt_port),
                "--data-dir",
                str(tmp_path / "demo"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        password = _printed_password(log_path)
        base = f"http://127.0.0.1:{http_port}"
        with httpx.Client(base_url=base) as http:
            _until(lambda: _reachable(http), "the dashboard")
            assert (
                http.post("/api/login", json={"username": "admin", "password": password}).status_code == 200
            )
            assert "Careline" in http.get("/").text
            rules: set[str] = set()

            def seen_all() -> bool:
                rules.update(i["rule"] for i in http.get("/api/incidents").json()["incidents"])
                return {"sos", "fall", "door_night"} <= rules

            _until(seen_all, "SOS, fall and night-door incidents", limit_s=60)
            sos = [i for i in http.get("/api/incidents").json()["incidents"] if i["rule"] == "sos"]
            assert any(i["trigger_count"] == 2 for i in sos), "the pendant pressed twice joins one incident"
    finally:
        demo.send_signal(signal.SIGINT)
        assert demo.wait(20) == 0, log_path.read_text()[-3000:]


def _printed_password(log_path: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"log in as\s+admin / (\S+)", log_path.read_text())
        if match:
            return match.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no login printed: {log_path.read_text()[-3000:]}")


def _reachable(http: httpx.Client) -> bool:
    try:
        return http.get("/api/healthz").status_code == 200
    except httpx.TransportError:
        return False


def _until(condition: object, what: str, limit_s: float = 30) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
