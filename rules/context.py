"""What rules may know about the world: sites, their residents and who is at risk."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Types only: gateway.config imports the wellbeing rules' config, so a runtime import would be circular.
    from gateway.config import CarelineConfig, ResidentConfig, RulesConfig, SiteConfig


class RuleContext:
    def __init__(self, config: CarelineConfig) -> None:
        self._sites = {site.id: site for site in config.sites}
        self._residents = {resident.id: resident for resident in config.residents}
        self._by_room: dict[tuple[str, str], list[ResidentConfig]] = defaultdict(list)
        self._by_site: dict[str, list[ResidentConfig]] = defaultdict(list)
        for resident in config.residents:
            self._by_site[resident.site].append(resident)
            if resident.room is not None:
                self._by_room[(resident.site, resident.room)].append(resident)

    def site(self, site_id: str) -> SiteConfig:
        return self._sites[site_id]

    def rules_for(self, site_id: str) -> RulesConfig:
        return self._sites[site_id].rules

    def residents(self) -> list[ResidentConfig]:
        return list(self._residents.values())

    def resident(self, resident_id: str | None) -> ResidentConfig | None:
        return self._residents.get(resident_id) if resident_id else None

    def residents_watched_by(self, site: str, room: str | None, resident: str | None) -> list[ResidentConfig]:
        """Residents a device watches: its own resident, else its room's, else the whole site's
        (a main exit watches everyone)."""
        own = self.resident(resident)
        if own is not None:
            return [own]
        if room is not None:
            return list(self._by_room.get((site, room), ()))
        return list(self._by_site.get(site, ()))
