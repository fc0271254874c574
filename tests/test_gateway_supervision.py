"""A gateway never runs on without its alarm lane: a dead worker stops the process loudly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from harness import new_config
from services import Mosquitto, alive

from careline.bootstrap import bootstrap
from common.errors import CarelineError
from gateway.config import CarelineConfig


async def test_a_crashed_alarm_lane_worker_stops_the_gateway_with_an_error(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    gateway = bootstrap(CarelineConfig.model_validate(new_config(mosquitto.url, tmp_path)))

    async def broken() -> None:
        await asyncio.sleep(0.2)
        raise RuntimeError("simulated bug in the alarm lane")

    gateway.alarm_lane.run = broken  # type: ignore[method-assign]
    async with asyncio.timeout(15):
        with pytest.raises(CarelineError, match="alarm-lane stopped"):
            await gateway.serve(asyncio.Event())


#: Starts the watch the telemetry child starts (without the Linux death signal) in a child of its own,
#: prints that child's pid, and waits to be killed. The child prints "watching" once its watch runs.
_PARENT = textwrap.dedent(
    """
    import os, subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())])
    print(child.pid, flush=True)
    child.wait()
    """
)
_WATCHED_CHILD = textwrap.dedent(
    """
    import sys, time
    from gateway.telemetry_process import start_parent_watch
    start_parent_watch(int(sys.argv[1]), period_s=0.05)
    print("watching", flush=True)
    time.sleep(60)
    """
)


def test_without_the_death_signal_the_watch_ends_a_child_whose_parent_was_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, _WATCHED_CHILD], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    with parent.stdout:
        try:
            child = int(parent.stdout.readline())
            assert parent.stdout.readline() == "watching\n"
            time.sleep(0.2)
            assert alive(child)  # the watch leaves a child alone while its parent lives
        finally:
            parent.kill()
            parent.wait(10)
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
