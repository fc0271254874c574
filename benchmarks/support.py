"""What the benchmarks share: the gateway as its own process, with an operator to log in as."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent


def start_gateway(
    config_path: Path,
    http_port: int,
    workdir: Path,
    password: str,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Create the user `operator` with `password`, start `careline run` and wait until it is healthy."""
    env = {**os.environ, "BENCH_PW": password, "PYTHONPATH": str(ROOT), **(extra_env or {})}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "careline",
            "user",
            "add",
            "--config",
            str(config_path),
            "operator",
            "--role",
            "operator",
            "--password-env",
            "BENCH_PW",
        ],
        check=True,
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )
    log_path = workdir / "gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "careline", "run", "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{http_port}/api/healthz").json().get("status") == "ok":
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    process.wait()
    raise SystemExit(f"gateway did not start: {log_path.read_text()[-2000:]}")


def zigbee2mqtt_homes(homes: int = 1000, per_site: int = 250) -> dict[str, Any]:
    """The directory of the telemetry benchmarks: `homes` homes of one resident each, `per_site` to a site,
    each with a motion sensor, a climate sensor and a pendant bound through the zigbee2mqtt profile under
    their device ids (`motion-N`, `climate-N`, `pendant-N`)."""
    sites = [
        {
            "id": f"area-{s}",
            "name": f"Area {s}",
            "rooms": [{"id": f"home-{n}"} for n in _homes_of(s, per_site)],
        }
        for s in range((homes + per_site - 1) // per_site)
    ]
    residents = [
        {"id": f"r{n}", "name": f"Resident {n}", "site": f"area-{n // per_site}", "room": f"home-{n}"}
        for n in range(homes)
    ]
    devices = []
    for n in range(homes):
        place = {"site": f"area-{n // per_site}", "room": f"home-{n}", "resident": f"r{n}"}
        for name, kind in (("motion", "motion_sensor"), ("climate", "other"), ("pendant", "sos_button")):
            devices.append({"id": f"{name}-{n}", "type": kind, "profile": "zigbee2mqtt", **place})
    return {"sites": sites, "residents": residents, "devices": devices}


def _homes_of(site: int, per_site: int) -> range:
    return range(site * per_site, (site + 1) * per_site)


def prometheus_values(text: str) -> dict[str, float]:
    """The samples of a `/metrics` page, keyed as the page writes them (`name{label="value"}`)."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                values[name] = float(value)
    return values


def replace_section(doc: Path, begin: str, end: str, table: str) -> None:
    """Put `table` (which starts with `begin` and ends with `end`) in place of that section of `doc`,
    or at its end the first time."""
    text = doc.read_text() if doc.exists() else ""
    if begin in text:
        text = text[: text.index(begin)] + table + text[text.index(end) + len(end) :]
    else:
        text += "\n" + table + "\n"
    doc.write_text(text)
