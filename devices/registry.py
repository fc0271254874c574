"""Which device is which: bindings from the configuration, looked up by id or Zigbee2MQTT name."""

from __future__ import annotations

from collections.abc import Iterable

from devices.model import ALARM_DEVICE_TYPES, Binding

ZIGBEE2MQTT_BASE = "zigbee2mqtt"


class DeviceRegistry:
    def __init__(self, bindings: Iterable[Binding]) -> None:
        self._by_id: dict[str, Binding] = {}
        self._by_friendly_name: dict[str, Binding] = {}
        for binding in bindings:
            self._by_id[binding.device_id] = binding
            if binding.profile == "zigbee2mqtt":
                self._by_friendly_name[binding.friendly_name or binding.device_id] = binding

    def __len__(self) -> int:
        return len(self._by_id)

    def bindings(self) -> list[Binding]:
        return list(self._by_id.values())

    def by_id(self, device_id: str) -> Binding | None:
        return self._by_id.get(device_id)

    def by_friendly_name(self, name: str) -> Binding | None:
        return self._by_friendly_name.get(name)

    def binds(self, profile: str, identifier: str) -> bool:
        """Whether a device heard as `identifier` (a device id, or a Zigbee2MQTT friendly name) is bound."""
        if profile == "zigbee2mqtt":
            return identifier in self._by_friendly_name
        return identifier in self._by_id

    def zigbee2mqtt_alarm_topics(self) -> list[str]:
        """Exact topics of Zigbee2MQTT alarm devices; the alarm lane subscribes to each of them."""
        return sorted(
            f"{ZIGBEE2MQTT_BASE}/{name}"
            for name, binding in self._by_friendly_name.items()
            if binding.device_type in ALARM_DEVICE_TYPES
        )
