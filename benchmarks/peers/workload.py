"""The issue's workload: homes with a motion sensor, a climate sensor and an SOS pendant on Zigbee2MQTT.

Each home `n` has three devices whose friendly names carry a `/` (Zigbee2MQTT allows it), so one
wildcard (`zigbee2mqtt/+/pendant`) lets the generator's probe hear exactly the pendants. Payloads are
shaped like real Zigbee2MQTT state messages (~150 bytes) with `last_seen` as epoch milliseconds, which
Careline takes as the point's time: InfluxDB keeps one point per series and timestamp, so the generator
never gives one device the same millisecond twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

TOPIC_ROOT = "zigbee2mqtt"
PENDANT_FILTER = f"{TOPIC_ROOT}/+/pendant"
#: Where Node-RED publishes its alarms; the probe subscribes to it.
ALARM_TOPIC_ROOT = "careline-bench/alarm"
#: Events Careline makes of each kind of message (docs/devices.md, the Zigbee2MQTT profile).
POINTS_PER_MESSAGE = {"motion": 3, "climate": 4, "pendant": 3}
#: The InfluxDB measurement that has exactly one point per message of each kind.
MEASUREMENT_OF = {"motion": "presence", "climate": "temperature", "pendant": "sos"}
MEASUREMENTS = ("presence", "battery", "link_quality", "temperature", "humidity", "sos")


@dataclass(frozen=True)
class Home:
    number: int

    @property
    def name(self) -> str:
        return f"home-{self.number:04d}"

    def friendly_name(self, device: str) -> str:
        return f"{self.name}/{device}"

    def topic(self, device: str) -> str:
        return f"{TOPIC_ROOT}/{self.friendly_name(device)}"


def homes(count: int) -> list[Home]:
    return [Home(n) for n in range(count)]


def _dumps(state: dict[str, Any]) -> bytes:
    return json.dumps(state, separators=(",", ":")).encode()


#: Templates rather than json.dumps: the generator shares the two cores with the processors under
#: test, and formatting costs a fraction of encoding (the bytes are the same compact JSON).
_MOTION = (
    b'{"battery":%d,"illuminance":%d,"linkquality":%d,"occupancy":%s,"device_temperature":%d,'
    b'"voltage":%d,"power_outage_count":3,"last_seen":%d}'
)
_CLIMATE = (
    b'{"battery":%d,"humidity":%.1f,"linkquality":%d,"pressure":%.1f,"temperature":%.2f,'
    b'"voltage":%d,"power_outage_count":1,"last_seen":%d}'
)


def motion_state(seq: int, last_seen_ms: int) -> bytes:
    """An Aqara RTCGQ11LM-like report: occupancy, battery, voltage, link quality (3 Careline events)."""
    occupancy = b"true" if seq % 4 == 0 else b"false"
    return _MOTION % (
        90 + seq % 10,
        100 + seq % 400,
        80 + seq % 120,
        occupancy,
        21 + seq % 3,
        2950 + seq % 100,
        last_seen_ms,
    )


def climate_state(seq: int, last_seen_ms: int) -> bytes:
    """A Sonoff SNZB-02-like report: temperature, humidity, battery, link quality (4 Careline events).
    Values stay in a comfortable room's range, so no threshold fires in either processor."""
    return _CLIMATE % (
        80 + seq % 20,
        40 + (seq % 200) / 10,
        80 + seq % 120,
        1000 + (seq % 300) / 10,
        20 + (seq % 40) / 10,
        3000 + seq % 100,
        last_seen_ms,
    )


def sos_state(seq: int, last_seen_ms: int) -> bytes:
    """A Tuya TS0215A_sos-like press: action sos, battery, link quality (3 Careline events)."""
    return _dumps(
        {
            "action": "sos",
            "battery": 70 + seq % 30,
            "battery_low": False,
            "linkquality": 80 + seq % 120,
            "tamper": False,
            "voltage": 2900 + seq % 100,
            "power_outage_count": 2,
            "last_seen": last_seen_ms,
        }
    )


def careline_directory(count: int, homes_per_site: int = 250) -> dict[str, Any]:
    """Sites, residents and devices binding every home's three devices through the zigbee2mqtt profile."""
    sites: dict[str, list[dict[str, str]]] = {}
    residents, devices = [], []
    for home in homes(count):
        site = f"area-{home.number // homes_per_site}"
        sites.setdefault(site, []).append({"id": home.name})
        resident = f"r{home.number:04d}"
        residents.append({"id": resident, "name": f"Resident {home.number}", "site": site, "room": home.name})
        place = {"site": site, "room": home.name, "resident": resident, "profile": "zigbee2mqtt"}
        for device, kind in (("motion", "motion_sensor"), ("climate", "other"), ("pendant", "sos_button")):
            devices.append(
                {"id": f"{home.name}-{device}", "type": kind, "friendly_name": home.friendly_name(device)}
                | place
            )
    return {
        "sites": [{"id": s, "name": f"Community {s}", "rooms": rooms} for s, rooms in sites.items()],
        "residents": residents,
        "devices": devices,
    }
