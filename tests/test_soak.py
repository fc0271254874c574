"""The 3-minute soak with chaos (benchmarks/soak.py) as a CI gate: every alarm accounted for, every fault
recovered from, nothing left running.

It runs real Mosquitto, InfluxDB 1.x and the gateway as its own process for about 3.5 minutes; the lead
keeps it in `make test` (deselect with `-m "not soak"`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from services import MOSQUITTO, SESSION_MARKER, processes_marked

from careline.services import influxd_installed

ROOT = Path(__file__).resolve().parent.parent
SOAK = ROOT / "benchmarks" / "soak.py"
DURATION_S = 180
#: The soak itself (≈ 3.5 min: start, 180 s of load, drain, stop) with room for a loaded machine.
LIMIT_S = 270

pytestmark = [
    pytest.mark.slow,
    pytest.mark.soak,
    pytest.mark.skipif(not (MOSQUITTO.exists() and influxd_installed()), reason="needs mosquitto, influxd"),
]


def test_three_minute_soak_loses_no_alarm_and_recovers_from_every_fault(tmp_path: Path) -> None:
    results_file = tmp_path / "soak.json"
    # Other tests' session-wide servers (a browser, a broker) carry the marker too and outlive the soak.
    running_before = set(processes_marked(os.environ[SESSION_MARKER]))
    done = subprocess.run(
        [
            sys.executable,
            str(SOAK),
            "--duration",
            str(DURATION_S),
            "--no-write",
            "--results",
            str(results_file),
        ],
        capture_output=True,
        text=True,
        timeout=LIMIT_S,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    results = json.loads(results_file.read_text())

    alarms = results["alarms"]
    assert alarms["published_pubacked"] >= DURATION_S  # ≈ 1.5 presses/s, none left unacknowledged
    assert alarms["never_pubacked"] == 0
    assert (alarms["lost"], alarms["duplicates"]) == (0, 0)
    assert alarms["accounted"] == alarms["published_pubacked"]
    escalations = alarms["escalations"]
    assert escalations.get("acknowledged", 0) > 0
    assert escalations.get("exhausted", 0) > 0
    assert alarms["escalations_unsettled"] == 0

    faults = results["faults"]
    assert {f["name"] for f in faults} == {
        "broker_restart",
        "gateway_kill",
        "influx_outage",
        "notifier_outage",
        "spool_full",
    }
    assert all(f["recovery_s"] is not None for f in faults), faults
    # Queued in the gateway's persistent session while it was down, and committed after its restart.
    killed = next(f for f in faults if f["name"] == "gateway_kill")
    assert killed["presses_while_down"] > 0
    # A full spool drops the oldest telemetry, counts it, and never holds up an alarm.
    full = next(f for f in faults if f["name"] == "spool_full")
    assert full["spool_dropped_during"] > 0
    assert full["alarms_during"]["presses"] > 0
    assert full["alarms_during"]["max_publish_to_commit_ms"] < 2000

    telemetry = results["telemetry"]
    assert telemetry["stored_in_influxdb"] > 0.5 * telemetry["published"]
    assert telemetry["dropped_by_writer"] >= full["spool_dropped_during"]
    assert results["failures"] == []
    # Every process the soak started is gone (the gateway, its telemetry child, Mosquitto, InfluxDB).
    assert set(processes_marked(os.environ[SESSION_MARKER])) - running_before == set()
