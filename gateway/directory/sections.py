"""The directory as one value: the sites, residents, devices, responders and escalation policies in force.

It is the same whether it came from the configuration file (a new install) or from the directory tables
(managed while the gateway runs): `DirectorySections.of(config)` takes it from a validated configuration,
and `applied_to(config)` puts a new one into a configuration, validated again as a whole (ids unique,
every reference leads somewhere), so a change that would break the directory is refused before any part
of the gateway sees it.
"""

from __future__ import annotations

from common.settings import StrictModel
from gateway.config import (
    CarelineConfig,
    DeviceConfig,
    ResidentConfig,
    ResponderConfig,
    SiteConfig,
    validated_copy,
)
from gateway.escalation.config import Policy


class DirectorySections(StrictModel):
    sites: tuple[SiteConfig, ...] = ()
    residents: tuple[ResidentConfig, ...] = ()
    devices: tuple[DeviceConfig, ...] = ()
    responders: tuple[ResponderConfig, ...] = ()
    policies: tuple[Policy, ...] = ()

    @classmethod
    def of(cls, config: CarelineConfig) -> DirectorySections:
        return cls(
            sites=config.sites,
            residents=config.residents,
            devices=config.devices,
            responders=config.responders,
            policies=config.escalation.policies,
        )

    def applied_to(self, config: CarelineConfig) -> CarelineConfig:
        """`config` with this directory in it; raises `ConfigError` listing every broken reference."""
        escalation = config.escalation.model_copy(update={"policies": self.policies})
        return validated_copy(
            config,
            sites=self.sites,
            residents=self.residents,
            devices=self.devices,
            responders=self.responders,
            escalation=escalation,
        )
