"""What rules may know about the world: sites, their residents and devices, and who is at risk.

The rules read these facts through small protocols, so they work alike from the configuration file and
from the directory in the database; they never import the gateway's settings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, Protocol
from zoneinfo import ZoneInfo

from devices.model import DeviceType
from rules.settings import RulesConfig

if TYPE_CHECKING:
    from rules.wellbeing.config import WellbeingConfig


class SiteFacts(Protocol):
    """A care home, or one elder's home."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> Literal["care_home", "home", "district"]: ...
    @property
    def zone(self) -> ZoneInfo: ...
    @property
    def rules(self) -> RulesConfig: ...
    @property
    def wellbeing(self) -> WellbeingConfig: ...


class ResidentFacts(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def site(self) -> str: ...
    @property
    def room(self) -> str | None: ...
    @property
    def wandering_risk(self) -> bool: ...


class DeviceFacts(Protocol):
    """A bound device: the timer rules watch devices that have never reported, too."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> DeviceType: ...
    @property
    def site(self) -> str: ...
    @property
    def room(self) -> str | None: ...
    @property
    def resident(self) -> str | None: ...


class RuleContext:
    def __init__(self, sites: Iterable[SiteFacts], residents: Iterable[ResidentFacts]) -> None:
        self._sites = {site.id: site for site in sites}
        self._residents = {resident.id: resident for resident in residents}
        self._by_room: dict[tuple[str, str], list[ResidentFacts]] = defaultdict(list)
        self._by_site: dict[str, list[ResidentFacts]] = defaultdict(list)
        for resident in self._residents.values():
            self._by_site[resident.site].append(resident)
            if resident.room is not None:
                self._by_room[(resident.site, resident.room)].append(resident)

    def site(self, site_id: str) -> SiteFacts:
        return self._sites[site_id]

    def rules_for(self, site_id: str) -> RulesConfig:
        return self._sites[site_id].rules

    def residents(self) -> list[ResidentFacts]:
        return list(self._residents.values())

    def resident(self, resident_id: str | None) -> ResidentFacts | None:
        return self._residents.get(resident_id) if resident_id else None

    def residents_watched_by(self, site: str, room: str | None, resident: str | None) -> list[ResidentFacts]:
        """Residents a device watches: its own resident, else its room's, else the whole site's
        (a main exit watches everyone)."""
        own = self.resident(resident)
        if own is not None:
            return [own]
        if room is not None:
            return list(self._by_room.get((site, room), ()))
        return list(self._by_site.get(site, ()))
