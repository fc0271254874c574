"""A gateway never runs on without its alarm lane: a dead worker stops the process loudly."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from harness import new_config
from services import Mosquitto

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
