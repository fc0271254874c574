"""Which topics a device or a hub owns on the broker, from the directory.

A native device owns `careline/<site>/<device>/#`: it may publish there and nowhere else, and subscribes
to nothing. A Zigbee2MQTT hub (a home's coordinator) is the set of active devices naming it in `hub`: it
may publish `zigbee2mqtt/<friendly name>` and below for each of them. Zigbee2MQTT subscribes to its
whole base topic (`zigbee2mqtt/#`), so a hub may subscribe there, but the broker delivers it only its own
devices' topics (their `/set` commands). Bridge topics (`zigbee2mqtt/bridge/...`) are refused to hubs:
every hub would write the same ones, and the alarm path does not read them (docs/broker-identity.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from gateway.config import DeviceConfig

#: Usernames and role names Careline manages start with these; it leaves every other client alone.
DEVICE_PREFIX = "careline.device."
HUB_PREFIX = "careline.hub."
MANAGED_PREFIXES = (DEVICE_PREFIX, HUB_PREFIX)
GATEWAY_ROLE = "careline.gateway"
ADMIN_ROLE = "careline.admin"

AclType = Literal[
    "publishClientSend", "publishClientReceive", "subscribePattern", "subscribeLiteral", "unsubscribePattern"
]
Owner = Literal["device", "hub"]


@dataclass(frozen=True, slots=True, order=True)
class Acl:
    acltype: AclType
    topic: str
    allow: bool = True
    #: Higher is checked first, within a role.
    priority: int = 0

    def as_json(self) -> dict[str, object]:
        return {"acltype": self.acltype, "topic": self.topic, "allow": self.allow, "priority": self.priority}


@dataclass(frozen=True, slots=True)
class Identity:
    """A broker client and its role of the same name, for one device or one hub."""

    owner: Owner
    #: The device's id or the hub's name.
    id: str
    site: str
    acls: frozenset[Acl]

    @property
    def username(self) -> str:
        return (DEVICE_PREFIX if self.owner == "device" else HUB_PREFIX) + self.id

    @property
    def rolename(self) -> str:
        return self.username


def device_acls(device: DeviceConfig) -> frozenset[Acl]:
    return frozenset({Acl("publishClientSend", f"careline/{device.site}/{device.id}/#")})


def hub_acls(devices: Iterable[DeviceConfig]) -> frozenset[Acl]:
    acls = {
        Acl("subscribePattern", "zigbee2mqtt/#"),
        # Everything else it subscribed to is withheld: it reads its own devices' topics only.
        Acl("publishClientReceive", "#", allow=False, priority=-1),
    }
    for device in devices:
        name = device.topic_name
        for topic in (f"zigbee2mqtt/{name}", f"zigbee2mqtt/{name}/#"):
            acls.add(Acl("publishClientSend", topic))
            acls.add(Acl("publishClientReceive", topic))
    return frozenset(acls)


def gateway_acls() -> frozenset[Acl]:
    """The gateway's own logins read every device's and hub's topics and publish nothing."""
    return frozenset(
        Acl(kind, topic)
        for topic in ("careline/#", "zigbee2mqtt/#")
        for kind in ("subscribePattern", "publishClientReceive", "unsubscribePattern")
    )


def admin_acls() -> frozenset[Acl]:
    """The provisioning client: the plugin's control topics and nothing else."""
    topic = "$CONTROL/dynamic-security/#"
    return frozenset(
        Acl(kind, topic) for kind in ("publishClientSend", "publishClientReceive", "subscribePattern")
    )


def desired_identities(devices: Iterable[DeviceConfig]) -> dict[str, Identity]:
    """Every identity the directory's active devices call for, by username."""
    identities: dict[str, Identity] = {}
    hubs: dict[str, list[DeviceConfig]] = defaultdict(list)
    for device in devices:
        if not device.active:
            continue
        if device.profile == "careline":
            identity = Identity("device", device.id, device.site, device_acls(device))
            identities[identity.username] = identity
        elif device.hub is not None:
            hubs[device.hub].append(device)
    for hub, members in hubs.items():
        identity = Identity("hub", hub, members[0].site, hub_acls(members))
        identities[identity.username] = identity
    return identities


def managed(username: str) -> bool:
    return username.startswith(MANAGED_PREFIXES)


@dataclass(frozen=True, slots=True)
class Hub:
    id: str
    sites: tuple[str, ...]
    #: Its active devices' ids.
    devices: tuple[str, ...]


def hubs(devices: Iterable[DeviceConfig]) -> list[Hub]:
    """The hubs active devices name, in name order."""
    members: dict[str, list[DeviceConfig]] = defaultdict(list)
    for device in devices:
        if device.active and device.hub is not None:
            members[device.hub].append(device)
    return [
        Hub(hub, tuple(dict.fromkeys(d.site for d in group)), tuple(d.id for d in group))
        for hub, group in sorted(members.items())
    ]
