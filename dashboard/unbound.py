"""`GET /api/devices/unbound`: devices heard but not in the directory, for the installer fitting one."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from dashboard.deps import Operator
from gateway.unbound import Sighting, UnboundDevices


class UnboundList(BaseModel):
    #: Served as they are kept (a dataclass pydantic reads field by field).
    devices: list[Sighting]
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
            devices=unbound.listing(),
            forgotten=unbound.forgotten,
            capacity=unbound.capacity,
        )

    return router
