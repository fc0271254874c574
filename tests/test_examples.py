"""The shipped example and deployment configurations are valid and describe what they promise."""

from __future__ import annotations

import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from harness import Publisher
from paho.mqtt.enums import CallbackAPIVersion
from services import Mosquitto

from devices.decode import MAX_PAYLOAD_BYTES
from devices.model import DeviceType
from gateway.config import CarelineConfig, load_config
from gateway.directory import rule_context
from gateway.pairing import MAX_BRIDGE_BYTES

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [
    ROOT / "examples" / "care-home.yaml",
    ROOT / "examples" / "home.yaml",
    ROOT / "deploy" / "careline.yaml",
]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_shipped_configuration_is_valid(path: Path) -> None:
    assert load_config(path).sites


@pytest.fixture(scope="module")
def care_home() -> CarelineConfig:
    return load_config(ROOT / "examples" / "care-home.yaml")


@pytest.fixture(scope="module")
def homes() -> CarelineConfig:
    return load_config(ROOT / "examples" / "home.yaml")


def test_the_care_home_has_over_thirty_residents_each_with_a_pendant(care_home: CarelineConfig) -> None:
    in_the_home = {r.id for r in care_home.residents if r.site == "sunrise"}
    assert len(in_the_home) >= 30
    pendants = [d for d in care_home.devices if d.type == DeviceType.SOS_BUTTON]
    assert in_the_home <= {d.resident for d in pendants}
    assert {d.profile for d in pendants} == {"careline", "zigbee2mqtt"}


def test_the_demo_has_a_home_care_district_of_elders_living_alone(care_home: CarelineConfig) -> None:
    (district,) = [s for s in care_home.sites if s.kind == "district"]
    elders = [r for r in care_home.residents if r.site == district.id]
    assert len(elders) >= 4
    assert all(r.room is None and r.address for r in elders)
    carers = [p for p in care_home.responders if district.id in p.sites and "carer" in p.roles]
    assert len(carers) >= 2


def test_residents_at_risk_of_wandering_are_watched_by_a_door_sensor(care_home: CarelineConfig) -> None:
    watchers = rule_context(care_home)
    watched: set[str] = set()
    for door in (d for d in care_home.devices if d.type == DeviceType.DOOR_SENSOR):
        watched.update(r.id for r in watchers.residents_watched_by(door.site, door.room, door.resident))
    at_risk = [r for r in care_home.residents if r.wandering_risk]
    assert len(at_risk) >= 5
    for resident in at_risk:
        assert resident.id in watched
        doors_of_room = [
            d for d in care_home.devices if d.type == DeviceType.DOOR_SENSOR and d.room == resident.room
        ]
        assert doors_of_room, f"{resident.id}'s room {resident.room} has no door sensor"


def test_the_care_home_watches_its_exits_and_has_a_smoke_detector_per_wing(care_home: CarelineConfig) -> None:
    site = care_home.site("sunrise")
    doors = [d for d in care_home.devices if d.type == DeviceType.DOOR_SENSOR]
    # A device with neither room nor resident watches the whole site: that is how exits are configured.
    exits = [d for d in doors if d.room is None and d.resident is None]
    assert len(exits) >= 2
    wing_of = {room.id: room.wing for room in site.rooms}
    smoke = [d for d in care_home.devices if d.type == DeviceType.SMOKE_DETECTOR]
    smoke_wings = {wing_of[d.room] for d in smoke if d.room}
    assert smoke_wings == {room.wing for room in site.rooms if room.wing}


def test_each_home_has_one_resident_with_a_pendant_and_a_door_sensor(homes: CarelineConfig) -> None:
    assert len(homes.sites) >= 3
    for site in homes.sites:
        assert site.kind == "home"
        assert len([r for r in homes.residents if r.site == site.id]) == 1
        types = {d.type for d in homes.devices if d.site == site.id}
        assert {DeviceType.SOS_BUTTON, DeviceType.DOOR_SENSOR, DeviceType.PRESENCE_SENSOR} <= types
    assert len({site.rules.night for site in homes.sites}) == len(homes.sites)
    watchers = rule_context(homes)
    for resident in (r for r in homes.residents if r.wandering_risk):
        doors = [d for d in homes.devices if d.type == DeviceType.DOOR_SENSOR and d.site == resident.site]
        assert any(resident in watchers.residents_watched_by(d.site, d.room, d.resident) for d in doors)
    assert any(r.language == "en" for r in homes.responders)


def test_the_shipped_broker_carries_zigbee2mqtts_device_list_and_refuses_anything_larger() -> None:
    # One limit for every topic: large enough for a big network's retained `bridge/devices` (the
    # pairing page's source); device messages are held to MAX_PAYLOAD_BYTES by the gateway itself.
    shipped = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8").splitlines()
    [limit] = [line for line in shipped if line.startswith("message_size_limit ")]
    assert int(limit.split()[1]) == MAX_BRIDGE_BYTES > 16 * MAX_PAYLOAD_BYTES

    with Mosquitto(extra_config=[limit]) as broker:
        arrived: list[int] = []
        subscribed, last = threading.Event(), threading.Event()
        listener = mqtt.Client(CallbackAPIVersion.VERSION2)
        listener.on_subscribe = lambda *_: subscribed.set()
        listener.on_message = lambda _c, _u, m: (arrived.append(len(m.payload)), last.set())
        listener.connect(broker.host, broker.port)
        listener.subscribe("zigbee2mqtt/bridge/devices", qos=1)
        listener.loop_start()
        device = Publisher(broker.port)
        try:
            assert subscribed.wait(10)
            device.send("zigbee2mqtt/bridge/devices", b"x" * (MAX_BRIDGE_BYTES + 1)).wait_for_publish(10)
            device.send("zigbee2mqtt/bridge/devices", b"x" * MAX_BRIDGE_BYTES).wait_for_publish(10)
            assert last.wait(10)
        finally:
            device.close()
            listener.disconnect()
            listener.loop_stop()
    assert arrived == [MAX_BRIDGE_BYTES]
