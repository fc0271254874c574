"""`GET /api/devices/pairing`: Zigbee devices paired with Zigbee2MQTT but not bound, offered for binding.

Each offer carries what Zigbee2MQTT knows (vendor, model, description, expose names), the device type
Careline suggests and why, and, when the device has been heard, its message count and last message
(from the unbound devices' table). Binding is an ordinary `POST /api/directory/devices` (admins; the same
validation, audit and live apply as any new device) with `profile: zigbee2mqtt` and the friendly name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from dashboard.deps import Operator
from devices.registry import DeviceRegistry
from gateway.pairing import PairedDevice, PairedDevices
from gateway.unbound import UnboundDevices

_NOT_IN_ID = re.compile(r"[^A-Za-z0-9_.:-]+")


class PairingOffer(BaseModel):
    ieee_address: str
    friendly_name: str
    vendor: str | None
    model: str | None
    description: str | None
    exposes: list[str]
    interviewed: bool
    suggested_type: str
    #: "model" (a known model), "exposes" (told by what it reports) or "unknown" (offered as `other`).
    suggested_by: str
    #: A directory id to start from: the friendly name made into an identifier.
    suggested_id: str
    paired_at: datetime
    messages: int
    last_seen: datetime | None


class PairingList(BaseModel):
    devices: list[PairingOffer]
    #: Whether the gateway is subscribed to Zigbee2MQTT's bridge topics now.
    listening: bool
    #: Bridge messages refused (too large, not JSON, not the expected shape), by reason.
    refused: dict[str, int]
    #: Devices left out because the network held more than the gateway keeps.
    truncated: int


def suggested_id(device: PairedDevice) -> str:
    cleaned = _NOT_IN_ID.sub("-", device.friendly_name).strip("-._:")
    return (cleaned or f"zigbee-{device.ieee_address.removeprefix('0x')}")[:64]


def pairing_router(
    paired: PairedDevices,
    unbound: UnboundDevices,
    registry: Callable[[], DeviceRegistry],
    listening: Callable[[], bool],
) -> APIRouter:
    router = APIRouter(tags=["monitoring"])

    @router.get("/api/devices/pairing")
    async def pairing(_: Operator) -> PairingList:
        """Paired with Zigbee2MQTT and not bound to any active device, the newest first."""
        bound = registry()
        heard = {s.identifier: s for s in unbound.listing() if s.profile == "zigbee2mqtt"}
        offers = []
        for device in paired.listing():
            if bound.by_friendly_name(device.friendly_name) is not None:
                continue
            suggestion = device.suggestion
            sighting = heard.get(device.friendly_name)
            offers.append(
                PairingOffer(
                    ieee_address=device.ieee_address,
                    friendly_name=device.friendly_name,
                    vendor=device.vendor,
                    model=device.model,
                    description=device.description,
                    exposes=list(device.exposes),
                    interviewed=device.interviewed,
                    suggested_type=suggestion.type,
                    suggested_by=suggestion.basis,
                    suggested_id=suggested_id(device),
                    paired_at=device.seen_at,
                    messages=sighting.count if sighting else 0,
                    last_seen=sighting.last_seen if sighting else None,
                )
            )
        return PairingList(
            devices=offers, listening=listening(), refused=dict(paired.refused), truncated=paired.truncated
        )

    return router
