"""Checks that look at the directory as a whole: ids that repeat, references that lead nowhere, devices
bound where they cannot be. Each problem is located (section, position, field) and worded in the
catalogue (`problem.<code>`), so the configuration file, an import and a form report it alike."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from common.errors import Problem
from devices.model import DeviceType
from gateway.catalogue import CATALOGUE, Params

if TYPE_CHECKING:
    from gateway.config import CarelineConfig, DeviceConfig, ResidentConfig, SiteConfig

Loc = tuple[str | int, ...]


def problem(loc: Loc, code: str, **params: Params) -> Problem:
    return Problem(loc, code, CATALOGUE.text(f"problem.{code}", "en", **params), params)


def reference_problems(config: CarelineConfig) -> list[Problem]:
    """Every problem of the directory in `config`, in the order of the file."""
    problems: list[Problem] = []
    for section in ("sites", "residents", "devices", "responders"):
        problems += _duplicates((section,), [item.id for item in getattr(config, section)])
    problems += _duplicates(("escalation", "policies"), [p.id for p in config.escalation.policies])
    for n, site in enumerate(config.sites):
        problems += _site_problems(n, site)
    rooms = {site.id: {room.id for room in site.rooms} for site in config.sites}
    for n, resident in enumerate(config.residents):
        problems += _place_problems(
            ("residents", n), "resident", resident.id, resident.site, resident.room, rooms
        )
    residents = {resident.id: resident for resident in config.residents}
    for n, device in enumerate(config.devices):
        problems += _place_problems(("devices", n), "device", device.id, device.site, device.room, rooms)
        problems += _owner_problems(n, device, residents)
    for n, responder in enumerate(config.responders):
        for k, site_id in enumerate(responder.sites):
            if site_id not in rooms:
                problems.append(
                    problem(
                        ("responders", n, "sites", k),
                        "responder_unknown_site",
                        responder=repr(responder.id),
                        site=repr(site_id),
                    )
                )
    problems += _escalation_problems(config)
    problems += _zone_exit_problems(config)
    problems += _visit_plan_problems(config)
    problems += _friendly_name_problems(config.devices)
    problems += _hub_problems(config.devices)
    return problems


def _zone_exit_problems(config: CarelineConfig) -> list[Problem]:
    """A locked dementia zone's exits are door sensors of its own site (docs/risks.md)."""
    doors = {(d.site, d.id) for d in config.devices if d.type is DeviceType.DOOR_SENSOR}
    return [
        problem(
            ("sites", n, "wings", w, "exits", k),
            "wing_exit_not_a_door",
            wing=repr(wing.id),
            site=repr(site.id),
            device=repr(exit_id),
        )
        for n, site in enumerate(config.sites)
        for w, wing in enumerate(site.wings)
        for k, exit_id in enumerate(wing.exits)
        if (site.id, exit_id) not in doors
    ]


def _duplicates(section: Loc, ids: Sequence[str]) -> list[Problem]:
    seen: set[str] = set()
    problems: list[Problem] = []
    name = ".".join(str(part) for part in section)
    for n, item in enumerate(ids):
        if item in seen:
            problems.append(problem((*section, n, "id"), "duplicate_id", id=repr(item), section=name))
        seen.add(item)
    return problems


def _site_problems(n: int, site: SiteConfig) -> list[Problem]:
    problems = _duplicates(("sites", n, "rooms"), [room.id for room in site.rooms])
    problems += _duplicates(("sites", n, "wings"), [wing.id for wing in site.wings])
    wings = {wing.id for wing in site.wings}
    if not wings:
        return problems
    for k, room in enumerate(site.rooms):
        if room.wing is not None and room.wing not in wings:
            problems.append(
                problem(
                    ("sites", n, "rooms", k, "wing"),
                    "room_unknown_wing",
                    room=repr(room.id),
                    site=repr(site.id),
                    wing=repr(room.wing),
                )
            )
    return problems


def _place_problems(
    loc: Loc, kind: str, entity: str, site: str, room: str | None, rooms: dict[str, set[str]]
) -> list[Problem]:
    if site not in rooms:
        return [problem((*loc, "site"), f"{kind}_unknown_site", id=repr(entity), site=repr(site))]
    if room is None or room in rooms[site]:
        return []
    elsewhere = sorted(other for other, its_rooms in rooms.items() if room in its_rooms)
    if elsewhere:
        return [
            problem(
                (*loc, "room"),
                f"{kind}_room_of_other_site",
                id=repr(entity),
                room=repr(room),
                site=repr(site),
                other=repr(elsewhere[0]),
            )
        ]
    return [
        problem((*loc, "room"), f"{kind}_unknown_room", id=repr(entity), room=repr(room), site=repr(site))
    ]


def _owner_problems(n: int, device: DeviceConfig, residents: dict[str, ResidentConfig]) -> list[Problem]:
    if device.resident is None:
        return []
    owner = residents.get(device.resident)
    if owner is None:
        return [
            problem(
                ("devices", n, "resident"),
                "device_unknown_resident",
                id=repr(device.id),
                resident=repr(device.resident),
            )
        ]
    if owner.site != device.site:
        return [
            problem(
                ("devices", n, "site"),
                "device_resident_elsewhere",
                id=repr(device.id),
                site=repr(device.site),
                resident_site=repr(owner.site),
            )
        ]
    if device.active and not owner.active:
        # An active pendant of someone discharged would raise alarms nobody can attend.
        return [
            problem(
                ("devices", n, "resident"),
                "device_resident_discharged",
                id=repr(device.id),
                resident=repr(owner.id),
            )
        ]
    return []


def _escalation_problems(config: CarelineConfig) -> list[Problem]:
    responders = {r.id for r in config.responders}
    problems: list[Problem] = []
    for p, policy in enumerate(config.escalation.policies):
        for t, tier in enumerate(policy.tiers):
            for g, target in enumerate(tier.targets):
                loc: Loc = ("escalation", "policies", p, "tiers", t, "targets", g)
                if target.responder is not None and target.responder not in responders:
                    problems.append(
                        problem(
                            (*loc, "responder"),
                            "policy_unknown_responder",
                            policy=repr(policy.id),
                            responder=repr(target.responder),
                        )
                    )
                if target.webhook is not None and target.webhook not in config.escalation.webhooks:
                    problems.append(
                        problem(
                            (*loc, "webhook"),
                            "policy_unknown_webhook",
                            policy=repr(policy.id),
                            webhook=repr(target.webhook),
                        )
                    )
    return problems


def _friendly_name_problems(devices: Iterable[DeviceConfig]) -> list[Problem]:
    # Only active devices are subscribed to: a retired pendant's name may pass to its replacement.
    seen: set[str] = set()
    problems: list[Problem] = []
    for n, device in enumerate(devices):
        if device.profile != "zigbee2mqtt" or not device.active:
            continue
        name = device.friendly_name or device.id
        if name in seen:
            problems.append(
                problem(("devices", n, "friendly_name"), "duplicate_friendly_name", name=repr(name))
            )
        seen.add(name)
    return problems


def _hub_problems(devices: Iterable[DeviceConfig]) -> list[Problem]:
    # A hub is one home's Zigbee coordinator: its broker login is issued by whoever sees that site.
    sites: dict[str, str] = {}
    problems: list[Problem] = []
    for n, device in enumerate(devices):
        if device.hub is None or not device.active:
            continue
        first = sites.setdefault(device.hub, device.site)
        if first != device.site:
            problems.append(
                problem(
                    ("devices", n, "hub"),
                    "hub_of_another_site",
                    hub=repr(device.hub),
                    site=repr(first),
                )
            )
    return problems


def _visit_plan_problems(config: CarelineConfig) -> list[Problem]:
    """A planned visit's carer must be in the directory and cover the resident's site; a plan id is
    the resident's own (its records are keyed by it)."""
    responders = {r.id: r for r in config.responders}
    problems: list[Problem] = []
    for n, resident in enumerate(config.residents):
        problems += _duplicates(("residents", n, "visits"), [plan.id for plan in resident.visits])
        for k, plan in enumerate(resident.visits):
            carer = responders.get(plan.carer)
            loc: Loc = ("residents", n, "visits", k, "carer")
            if carer is None:
                problems.append(
                    problem(loc, "visit_unknown_carer", resident=repr(resident.id), carer=repr(plan.carer))
                )
            elif carer.sites and resident.site not in carer.sites:
                problems.append(
                    problem(
                        loc,
                        "visit_carer_elsewhere",
                        resident=repr(resident.id),
                        carer=repr(plan.carer),
                        site=repr(resident.site),
                    )
                )
    return problems
