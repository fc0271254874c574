"""The directory of sites, residents, devices and responders, as the rest of the gateway sees it.

`Directory` gives display names for the ids the incident store keeps (discharged residents keep theirs,
for the incidents of their time). Only active devices are bound and only active residents are watched:
a spare in the cupboard or a retired pendant raises nothing, a discharged resident is no one's concern.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from devices.model import Binding
from devices.registry import DeviceRegistry
from gateway.config import CarelineConfig, DeviceConfig, ResidentConfig
from rules.context import RuleContext


class Directory:
    """Names for display. Immutable: the directory applied live is a new `Directory` put in place with
    one assignment, so a view never mixes two directories' names."""

    def __init__(
        self,
        config: CarelineConfig,
        *,
        former_sites: Mapping[str, str] | None = None,
        former_residents: Mapping[str, str] | None = None,
    ) -> None:
        self._sites = {**(former_sites or {}), **{site.id: site.name for site in config.sites}}
        self._residents = {
            **(former_residents or {}),
            **{resident.id: resident.name for resident in config.residents},
        }

    def updated(self, config: CarelineConfig) -> Directory:
        """The names of `config`, remembering those it no longer holds: an incident of a resident who has
        left keeps showing their name (until the gateway restarts)."""
        return Directory(config, former_sites=self._sites, former_residents=self._residents)

    def site_name(self, site_id: str) -> str:
        return self._sites.get(site_id, site_id)

    def resident_name(self, resident_id: str | None) -> str | None:
        if resident_id is None:
            return None
        return self._residents.get(resident_id, resident_id)


def active_residents(config: CarelineConfig) -> tuple[ResidentConfig, ...]:
    return tuple(resident for resident in config.residents if resident.active)


def active_devices(config: CarelineConfig) -> tuple[DeviceConfig, ...]:
    return tuple(device for device in config.devices if device.active)


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
        for d in active_devices(config)
    )


def rule_context(config: CarelineConfig) -> RuleContext:
    """What the rules know of the configured sites, active residents and active devices."""
    return RuleContext(config.sites, active_residents(config), active_devices(config))


def update_rule_context(context: RuleContext, config: CarelineConfig, *, at: datetime) -> None:
    """Give the rules the facts of `config`; what they remember per resident and device stays."""
    context.update(config.sites, active_residents(config), active_devices(config), at=at)


def telemetry_lane_topics(config: CarelineConfig) -> list[str]:
    """With several instances each alarm goes to one of them, but every instance's wellbeing rules must
    hear every sign of life (a door opening, a pendant's press) to decide alike (docs/cluster.md): the
    telemetry lane then also hears the native alarm topics, without sharing."""
    extra = config.broker.alarm_topics if config.cluster.shared else ()
    return list(dict.fromkeys([*config.broker.telemetry_topics, *extra]))


def alarm_lane_topics(config: CarelineConfig, registry: DeviceRegistry) -> list[str]:
    """What the alarm lane subscribes to: the configured alarm topics and each Zigbee2MQTT alarm device's."""
    return [*config.broker.alarm_topics, *registry.zigbee2mqtt_alarm_topics()]
