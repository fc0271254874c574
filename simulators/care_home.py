"""A simulated care home at night: pendants, fall radars and door sensors publishing real MQTT.

The scripted opening (a few SOS presses, one pressed twice, a fall, a night-time door opening by a
resident at risk of wandering) is followed by background telemetry and an occasional SOS, until stopped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import aiomqtt

from devices.model import Binding, DeviceType, EventKind
from gateway.config import CarelineConfig
from simulators.payloads import (
    alarm_message,
    careline_event,
    careline_topic,
    zigbee2mqtt_state,
    zigbee2mqtt_topic,
)

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


async def publish_telemetry(client: aiomqtt.Client, binding: Binding, rng: random.Random) -> None:
    battery = rng.randint(40, 100)
    if binding.profile == "zigbee2mqtt":
        await client.publish(zigbee2mqtt_topic(binding), zigbee2mqtt_state(battery=battery, linkquality=90))
    else:
        await client.publish(careline_topic(binding, "telemetry"), careline_event(EventKind.BATTERY, battery))


async def run_care_home(
    config: CarelineConfig,
    bindings: Sequence[Binding],
    host: str,
    port: int,
    *,
    forever: bool = True,
    seed: int = 7,
    telemetry_period_s: float = 5.0,
) -> None:
    rng = random.Random(seed)
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
            for binding in rng.sample(list(bindings), k=min(5, len(bindings))):
                await publish_telemetry(client, binding, rng)
            rounds += 1
            if pendants and rounds % 12 == 0:
                await publish_alarm(client, rng.choice(pendants), EventKind.SOS)
