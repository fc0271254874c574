"""What rules may know about the world: sites, their residents and devices, and who is at risk.

The rules read these facts through small protocols, so they work alike from the configuration file and
from the directory in the database; they never import the gateway's settings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol
from zoneinfo import ZoneInfo

from devices.model import DeviceType
from rules.settings import RulesConfig

if TYPE_CHECKING:
    from rules.wellbeing.config import WellbeingConfig


class WingFacts(Protocol):
    """A part of a care home; a locked dementia care zone names the door sensors at its exits."""

    @property
    def id(self) -> str: ...
    @property
    def locked_dementia_zone(self) -> bool: ...
    @property
    def exits(self) -> Sequence[str]: ...


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
    @property
    def wings(self) -> Sequence[WingFacts]: ...


class ResidentFacts(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def site(self) -> str: ...
    @property
    def room(self) -> str | None: ...
    @property
    def wandering_risk(self) -> bool: ...
    @property
    def risks(self) -> Sequence[str]:
        """GB/T 38600 risk flags: falls, wandering, falling_from_bed, pressure_sores, choking, scalds."""
        ...


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


@dataclass(frozen=True, slots=True)
class _Facts:
    """One consistent set of facts; replaced whole, never edited, so a rule never sees half an update."""

    sites: dict[str, SiteFacts]
    residents: dict[str, ResidentFacts]
    devices: dict[str, DeviceFacts] | None
    by_room: dict[tuple[str, str], list[ResidentFacts]]
    by_site: dict[str, list[ResidentFacts]]

    @classmethod
    def of(
        cls,
        sites: Iterable[SiteFacts],
        residents: Iterable[ResidentFacts],
        devices: Iterable[DeviceFacts] | None,
    ) -> _Facts:
        by_id = {resident.id: resident for resident in residents}
        by_room: dict[tuple[str, str], list[ResidentFacts]] = defaultdict(list)
        by_site: dict[str, list[ResidentFacts]] = defaultdict(list)
        for resident in by_id.values():
            by_site[resident.site].append(resident)
            if resident.room is not None:
                by_room[(resident.site, resident.room)].append(resident)
        return cls(
            {site.id: site for site in sites},
            by_id,
            None if devices is None else {device.id: device for device in devices},
            dict(by_room),
            dict(by_site),
        )


class RuleContext:
    """The facts rules consult. `update` replaces them while the gateway runs (the directory applied
    live); the rules keep their own state (timers, last signs of life) keyed by resident and device id,
    and ask the context which residents and devices came or left since they were built."""

    def __init__(
        self,
        sites: Iterable[SiteFacts],
        residents: Iterable[ResidentFacts],
        devices: Iterable[DeviceFacts] | None = None,
    ) -> None:
        self._facts = _Facts.of(sites, residents, devices)
        #: When residents and devices came in through `update`; those known from the start are absent.
        self._resident_joined: dict[str, datetime] = {}
        self._device_joined: dict[str, datetime] = {}
        #: Devices removed through `update` (and not bound again): the rules forget their timers. As many
        #: as devices were ever removed while the gateway ran.
        self._devices_left: set[str] = set()

    def update(
        self,
        sites: Iterable[SiteFacts],
        residents: Iterable[ResidentFacts],
        devices: Iterable[DeviceFacts] | None = None,
        *,
        at: datetime,
    ) -> None:
        """Take new facts at once. Residents and devices new to the context are watched from `at`, so a
        resident added in the afternoon is not "inactive since the gateway started"."""
        old, new = self._facts, _Facts.of(sites, residents, devices)
        _note_joined(self._resident_joined, old.residents, new.residents, at)
        old_devices, new_devices = old.devices or {}, new.devices or {}
        _note_joined(self._device_joined, old_devices, new_devices, at)
        self._devices_left.difference_update(new_devices)
        self._devices_left.update(device for device in old_devices if device not in new_devices)
        self._facts = new

    def site(self, site_id: str) -> SiteFacts:
        return self._facts.sites[site_id]

    def has_site(self, site_id: str) -> bool:
        return site_id in self._facts.sites

    def rules_for(self, site_id: str) -> RulesConfig:
        return self._facts.sites[site_id].rules

    def residents(self) -> list[ResidentFacts]:
        return list(self._facts.residents.values())

    def resident(self, resident_id: str | None) -> ResidentFacts | None:
        return self._facts.residents.get(resident_id) if resident_id else None

    def resident_joined(self, resident_id: str) -> datetime | None:
        """When the resident came in through `update`; None if known from the start."""
        return self._resident_joined.get(resident_id)

    def devices(self) -> list[DeviceFacts]:
        return list((self._facts.devices or {}).values())

    def device(self, device_id: str) -> DeviceFacts | None:
        return (self._facts.devices or {}).get(device_id)

    def device_joined(self, device_id: str) -> datetime | None:
        """When the device was bound through `update`; None if known from the start."""
        return self._device_joined.get(device_id)

    def devices_joined(self) -> list[str]:
        """Devices bound through `update` and still bound."""
        return list(self._device_joined)

    def device_left(self, device_id: str) -> bool:
        """Removed through `update` and not bound again."""
        return device_id in self._devices_left

    def locked_zone_exit(self, site_id: str, device_id: str) -> str | None:
        """The locked dementia care zone (wing id) whose exit this door sensor is, if any."""
        site = self._facts.sites.get(site_id)
        for wing in site.wings if site is not None else ():
            if wing.locked_dementia_zone and device_id in wing.exits:
                return wing.id
        return None

    def residents_watched_by(self, site: str, room: str | None, resident: str | None) -> list[ResidentFacts]:
        """Residents a device watches: its own resident, else its room's, else the whole site's
        (a main exit watches everyone)."""
        facts = self._facts
        own = facts.residents.get(resident) if resident else None
        if own is not None:
            return [own]
        if room is not None:
            return list(facts.by_room.get((site, room), ()))
        return list(facts.by_site.get(site, ()))


def _note_joined(
    joined: dict[str, datetime], old: Mapping[str, object], new: Mapping[str, object], at: datetime
) -> None:
    for gone in [key for key in joined if key not in new]:
        # Removed: if it comes back, it is watched from its return.
        del joined[gone]
    for key in new:
        if key not in old:
            joined[key] = at
