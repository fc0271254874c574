"""`GET /api/devices/unbound`: devices heard but not in the directory, for the installer fitting one."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from dashboard.deps import Operator
from gateway.unbound import Sighting, UnboundDevices


class UnboundDeviceView(BaseModel):
    profile: str
    #: The native device id, or the Zigbee2MQTT friendly name.
    identifier: str
    site: str | None
    lane: str
    topic: str
    payload_prefix: str
    first_seen: datetime
    last_seen: datetime
    count: int

    @classmethod
    def of(cls, sighting: Sighting) -> UnboundDeviceView:
        return cls(
            profile=sighting.profile,
            identifier=sighting.identifier,
            site=sighting.site,
            lane=sighting.lane,
            topic=sighting.topic,
            payload_prefix=sighting.payload_prefix,
            first_seen=sighting.first_seen,
            last_seen=sighting.last_seen,
            count=sighting.count,
        )


class UnboundList(BaseModel):
    devices: list[UnboundDeviceView]
    #: The list is bounded: devices pushed out (a flood of ids) are counted here.
    forgotten: int
    capacity: int


def unbound_router(unbound: UnboundDevices) -> APIRouter:
    router = APIRouter(tags=["monitoring"])

    @router.get("/api/devices/unbound")
    async def unbound_devices(_: Operator) -> UnboundList:
        """Devices heard but not in the directory, most recently heard first: an unknown native device id
        or Zigbee2MQTT friendly name, with its message count, last topic and the start of its payload.
        A device leaves the list once it is bound."""
        return UnboundList(
            devices=[UnboundDeviceView.of(s) for s in unbound.listing()],
            forgotten=unbound.forgotten,
            capacity=unbound.capacity,
        )

    return router
