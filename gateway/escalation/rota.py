"""Who is reachable now: a tier's targets resolved against responders, their roles and shifts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.config import CarelineConfig, ResponderConfig
from gateway.escalation.config import Target


@dataclass(frozen=True, slots=True)
class Reach:
    """One party a tier contacts: a responder, or a webhook standing for another system."""

    responder: ResponderConfig | None = None
    webhook: str | None = None

    @property
    def id(self) -> str:
        return self.responder.id if self.responder else f"webhook:{self.webhook}"


class Rota:
    def __init__(self, config: CarelineConfig) -> None:
        self._responders = {r.id: r for r in config.responders}
        self._wings = {(site.id, room.id): room.wing for site in config.sites for room in site.rooms}
        self._zones = {site.id: ZoneInfo(site.timezone) for site in config.sites}

    def resolve(self, targets: tuple[Target, ...], site: str, room: str | None, now: datetime) -> list[Reach]:
        """Everyone the targets name for an incident at `site`/`room`, without repeats, in order."""
        local = now.astimezone(self._zones.get(site, ZoneInfo("UTC")))
        wing = self._wings.get((site, room)) if room else None
        found: dict[str, Reach] = {}
        for target in targets:
            for reach in self._reach(target, site, wing, local):
                found.setdefault(reach.id, reach)
        return list(found.values())

    def _reach(self, target: Target, site: str, wing: str | None, local: datetime) -> list[Reach]:
        if target.webhook is not None:
            return [Reach(webhook=target.webhook)]
        if target.responder is not None:
            responder = self._responders.get(target.responder)
            return [Reach(responder=responder)] if responder else []
        return [
            Reach(responder=r)
            for r in self._responders.values()
            if target.role in r.roles
            and (not r.sites or site in r.sites)
            and self._available(r, target, wing, local)
        ]

    @staticmethod
    def _available(responder: ResponderConfig, target: Target, wing: str | None, local: datetime) -> bool:
        if not responder.shifts:
            # No shifts configured: always reachable, but never "the one on duty in this wing".
            return not target.same_wing or wing is None
        shifts = (
            [s for s in responder.shifts if s.covers(local)] if target.on_duty else list(responder.shifts)
        )
        if target.same_wing and wing is not None:
            shifts = [s for s in shifts if s.wing in (None, wing)]
        return bool(shifts)
