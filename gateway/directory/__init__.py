"""The directory of sites, residents, devices and responders, as the rest of the gateway sees it.

`Directory` gives display names for the ids the incident store keeps (discharged residents keep theirs,
for the incidents of their time). Only active devices are bound and only active residents are watched:
a spare in the cupboard or a retired pendant raises nothing, a discharged resident is no one's concern.
"""

from __future__ import annotations

from devices.model import Binding
from devices.registry import DeviceRegistry
from gateway.config import CarelineConfig, DeviceConfig
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
    """What the rules know of the configured sites and their active residents."""
    return RuleContext(config.sites, (resident for resident in config.residents if resident.active))
