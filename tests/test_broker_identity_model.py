"""What a device or hub owns on the broker, from the directory; the settings that turn it on."""

from __future__ import annotations

import pytest
from broker_identity_fixtures import native, zigbee
from pydantic import ValidationError

from common.errors import ConfigError
from gateway.broker_identity.model import Acl, desired_identities, hubs
from gateway.config import parse_config
from gateway.directory.tables import export_csv, parse_csv


def test_a_native_device_owns_its_topic_and_a_hub_the_topics_of_its_active_devices() -> None:
    identities = desired_identities(
        [
            native("pendant-1"),
            zigbee("radar-a", "hub-a"),
            zigbee("door-a", "hub-a"),
            zigbee("old-a", "hub-a", state="retired"),
            zigbee("unhubbed", None),  # type: ignore[arg-type]
            native("spare-1", state="spare"),
        ]
    )
    assert sorted(identities) == ["careline.device.pendant-1", "careline.hub.hub-a"]
    assert identities["careline.device.pendant-1"].acls == {
        Acl("publishClientSend", "careline/home-a/pendant-1/#")
    }
    sends = {a.topic for a in identities["careline.hub.hub-a"].acls if a.acltype == "publishClientSend"}
    assert sends == {
        "zigbee2mqtt/home-a/radar-a",
        "zigbee2mqtt/home-a/radar-a/#",
        "zigbee2mqtt/home-a/door-a",
        "zigbee2mqtt/home-a/door-a/#",
    }
    assert [
        (h.id, h.devices) for h in hubs([zigbee("radar-a", "hub-a"), zigbee("x", "hub-a", state="spare")])
    ] == [("hub-a", ("radar-a",))]


def test_a_hub_is_for_zigbee2mqtt_devices_only() -> None:
    with pytest.raises(ValidationError, match=r"hub .hub-a. is for Zigbee2MQTT devices only"):
        native("pendant-1", hub="hub-a")


def test_broker_identity_needs_a_real_broker() -> None:
    with pytest.raises(ConfigError, match=r"broker.identity needs a Mosquitto broker"):
        parse_config("broker:\n  identity:\n    enabled: true\n")
    with pytest.raises(ConfigError, match="device_url must look like"):
        parse_config("broker:\n  url: mqtt://b:1883\n  identity:\n    device_url: http://x\n")
    config = parse_config("broker:\n  url: mqtts://b:8883\n  identity:\n    enabled: true\n")
    assert config.broker.identity.reconcile_s == 60


def test_the_hub_column_of_a_devices_csv_reads_in_either_language() -> None:
    device = zigbee("radar-a", "hub-a")
    for language in ("en", "zh-CN"):
        data = export_csv("devices", [device.model_dump(mode="json", exclude_none=True)], language)  # type: ignore[arg-type]
        assert ("所属网关" if language == "zh-CN" else "hub") in data.decode("utf-8-sig").splitlines()[0]
        read = parse_csv(data, "devices.csv").incoming
        assert [d.hub for d in read.devices or ()] == ["hub-a"]


def test_the_devices_of_one_hub_are_at_one_site() -> None:
    text = """
sites: [{id: a, name: A}, {id: b, name: B}]
devices:
  - {id: radar-a, type: fall_sensor, profile: zigbee2mqtt, site: a, hub: hub-1}
  - {id: radar-b, type: fall_sensor, profile: zigbee2mqtt, site: b, hub: hub-1}
  - {id: old-b, type: fall_sensor, profile: zigbee2mqtt, site: b, hub: hub-2, state: retired}
  - {id: new-a, type: fall_sensor, profile: zigbee2mqtt, site: a, hub: hub-2}
"""
    with pytest.raises(ConfigError) as refused:
        parse_config(text)
    assert str(refused.value).count("belongs to site") == 1  # the retired device's hub-2 stays free
    assert ":5: devices.1.hub: hub 'hub-1' belongs to site 'a'" in str(refused.value)
