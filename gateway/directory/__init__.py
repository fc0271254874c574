"""Display names for the ids the store keeps: the config is the directory of sites and residents."""

from __future__ import annotations

from devices.model import Binding
from devices.registry import DeviceRegistry
from gateway.config import CarelineConfig
from rules.context import RuleContext


class Directory:
    def __init__(self, config: CarelineConfig) -> None:
        self._sites = {site.id: site.name for site in config.sites}
        self._residents = {resident.id: resident.name for resident in config.residents}

    def site_name(self, site_id: str) -> str:
        return self._sites.get(site_id, site_id)

    def resident_name(self, resident_id: str | None) -> str | None:
        if resident_id is None:
            return None
        return self._residents.get(resident_id, resident_id)


def device_registry(config: CarelineConfig) -> DeviceRegistry:
    return DeviceRegistry(
        Binding(
            device_id=d.id,
            device_type=d.type,
            site=d.site,
            room=d.room,
            resident=d.resident,
            profile=d.profile,
            friendly_name=d.friendly_name,
        )
        for d in config.devices
    )


def rule_context(config: CarelineConfig) -> RuleContext:
    """What the rules know of the configured sites and residents."""
    return RuleContext(config.sites, config.residents)


def alarm_lane_topics(config: CarelineConfig, registry: DeviceRegistry) -> list[str]:
    """What the alarm lane subscribes to: the configured alarm topics and each Zigbee2MQTT alarm device's."""
    return [*config.broker.alarm_topics, *registry.zigbee2mqtt_alarm_topics()]
