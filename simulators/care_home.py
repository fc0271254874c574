"""A simulated care home at night: pendants, fall radars and door sensors publishing real MQTT.

The scripted opening (a few SOS presses, one pressed twice, a fall, a night-time door opening by a
resident at risk of wandering) is followed, until stopped, by the telemetry of every device the home has
(vital signs, bed occupancy, motion and presence following the day and night, doors, batteries and radio
links: `simulators/rhythm.py`) and an occasional SOS.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import aiomqtt

from devices.model import Binding, DeviceType, EventKind
from gateway.config import CarelineConfig
from simulators.payloads import alarm_message, telemetry_message
from simulators.rhythm import CareHomeRhythm, Readings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Step:
    after_s: float
    binding: Binding
    kind: EventKind


def _of_type(bindings: Sequence[Binding], kind: DeviceType) -> list[Binding]:
    return [b for b in bindings if b.device_type is kind]


def opening_scenario(bindings: Sequence[Binding], config: CarelineConfig) -> list[Step]:
    """The demo's first minute, built from whatever devices the config has."""
    at_risk = {r.id for r in config.residents if r.wandering_risk}
    pendants = _of_type(bindings, DeviceType.SOS_BUTTON)
    falls = _of_type(bindings, DeviceType.FALL_SENSOR)
    doors = [
        b
        for b in _of_type(bindings, DeviceType.DOOR_SENSOR)
        if b.resident in at_risk or any(r.room == b.room and r.id in at_risk for r in config.residents)
    ]
    steps: list[Step] = []
    native = [p for p in pendants if p.profile == "careline"]
    zigbee = [p for p in pendants if p.profile == "zigbee2mqtt"]
    if native:
        steps += [Step(2, native[0], EventKind.SOS), Step(5, native[0], EventKind.SOS)]
    if zigbee:
        steps.append(Step(8, zigbee[0], EventKind.SOS))
    if falls:
        steps.append(Step(11, falls[0], EventKind.FALL))
    if doors:
        steps += [Step(14, doors[0], EventKind.DOOR_OPEN), Step(20, doors[0], EventKind.DOOR_CLOSED)]
    return steps


def mqtt_client(host: str, port: int, client_id: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        host, port, identifier=client_id, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    )


async def publish_alarm(client: aiomqtt.Client, binding: Binding, kind: EventKind) -> None:
    topic, payload = alarm_message(binding, kind)
    await client.publish(topic, payload, qos=1)
    log.info("simulated %s from %s", kind.value, binding.device_id)


async def publish_telemetry(client: aiomqtt.Client, binding: Binding, readings: Readings) -> None:
    for topic, payload in telemetry_message(binding, readings):
        await client.publish(topic, payload)


def site_zones(config: CarelineConfig) -> dict[str, str]:
    return {site.id: site.timezone for site in config.sites}


async def run_care_home(
    config: CarelineConfig,
    bindings: Sequence[Binding],
    host: str,
    port: int,
    *,
    forever: bool = True,
    seed: int = 7,
    telemetry_period_s: float = 5.0,
    sos_every_rounds: int = 24,
) -> None:
    rng = random.Random(seed)
    rhythm = CareHomeRhythm(bindings, site_zones(config), random.Random(seed + 1))
    doors = _of_type(bindings, DeviceType.DOOR_SENSOR)
    async with mqtt_client(host, port, f"careline-sim-{rng.randrange(1 << 30)}") as client:
        elapsed = 0.0
        for step in opening_scenario(bindings, config):
            await asyncio.sleep(step.after_s - elapsed)
            elapsed = step.after_s
            await publish_alarm(client, step.binding, step.kind)
        pendants = _of_type(bindings, DeviceType.SOS_BUTTON)
        rounds = 0
        while forever:
            await asyncio.sleep(telemetry_period_s)
            await _telemetry_round(client, rhythm, doors)
            rounds += 1
            if pendants and rounds % sos_every_rounds == 0:
                await publish_alarm(client, rng.choice(pendants), EventKind.SOS)


async def _telemetry_round(client: aiomqtt.Client, rhythm: CareHomeRhythm, doors: Sequence[Binding]) -> None:
    now = datetime.now(UTC)
    # Batteries and links are reported seldom (every ~10 rounds per device), as real devices do.
    for binding, readings in rhythm.readings(now, health_every=10):
        await publish_telemetry(client, binding, readings)
    for door in rhythm.door_openings(now, doors, chance_by_day=0.01):
        await publish_alarm(client, door, EventKind.DOOR_OPEN)
        await asyncio.sleep(2.0)
        await publish_alarm(client, door, EventKind.DOOR_CLOSED)
