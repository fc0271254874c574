"""Testing alarm buttons (docs/duty.md): a tester arms test mode for one device, presses it, and is told
"test received" live (the `/api/ws` frame `device_test`, shown by the page `/test-button`).

`GET /api/duty/test-mode`: the alarm devices of the user's sites that test mode applies to, each with its
last test and its test mode if armed. `PUT /api/duty/test-mode/{device_id}`: arm it for `minutes` (10
unless said, at most 30), audited. `DELETE …`: disarm, audited. Every signed-in role may test, within
its sites; whether a press is the test is decided in the alarm's own commit (gateway/incidents/store.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from dashboard.auth import Account
from dashboard.deps import Operator
from dashboard.openapi import CONFLICT
from devices.model import DeviceType
from gateway.catalogue import normalize_language, text
from gateway.config import DeviceConfig
from gateway.incidents.duty import (
    TEST_MODE_DEFAULT_MIN,
    TEST_MODE_MAX_MIN,
    DeviceBusyError,
    DutyStore,
    TestModeView,
)
from gateway.incidents.service import IncidentService
from gateway.incidents.store import TEST_MODE_RULES

#: The devices whose alarm test mode turns into a test: pendants and pull cords (SOS), fall sensors.
TEST_MODE_TYPES = frozenset({DeviceType.SOS_BUTTON, DeviceType.FALL_SENSOR})


class ArmTestMode(BaseModel):
    minutes: int = Field(TEST_MODE_DEFAULT_MIN, ge=1, le=TEST_MODE_MAX_MIN)


class TestableDevice(BaseModel):
    device_id: str
    type: str
    site: str
    site_name: str
    room: str | None
    resident: str | None
    resident_name: str | None
    last_test_at: datetime | None
    last_test_kind: str | None
    test_count: int
    test_mode: TestModeView | None


class TestModeBoard(BaseModel):
    default_minutes: int = TEST_MODE_DEFAULT_MIN
    max_minutes: int = TEST_MODE_MAX_MIN
    devices: list[TestableDevice]


def duty_router() -> APIRouter:
    router = APIRouter(tags=["duty"])

    @router.get("/api/duty/test-mode")
    async def test_mode_board(request: Request, account: Operator) -> TestModeBoard:
        """The devices of the user's sites that can be tested in test mode, with their last test."""
        ctx = request.app.state.careline
        store = ctx.service.store
        config = ctx.current_config()
        modes = {m.device_id: m for m in await ctx.service.read(DutyStore(store).test_modes, account.scope)}
        tests = {t.device_id: t for t in await ctx.service.read(store.device_tests)}
        names = store.directory
        devices = [
            TestableDevice(
                device_id=d.id,
                type=d.type.value,
                site=d.site,
                site_name=names.site_name(d.site),
                room=d.room,
                resident=d.resident,
                resident_name=names.resident_name(d.resident),
                last_test_at=tests[d.id].last_test_at if d.id in tests else None,
                last_test_kind=tests[d.id].kind if d.id in tests else None,
                test_count=tests[d.id].test_count if d.id in tests else 0,
                test_mode=modes.get(d.id),
            )
            for d in config.devices
            if _testable(d) and _sees(account, d.site)
        ]
        return TestModeBoard(devices=devices)

    @router.put("/api/duty/test-mode/{device_id}", responses=CONFLICT)
    async def arm_test_mode(
        request: Request, device_id: str, account: Operator, body: ArmTestMode | None = None
    ) -> TestModeView:
        """Arm test mode: the device's next press within `minutes` is recorded as a test, never an
        alarm; the press after it is an alarm again. Refused (409) while an alarm of the device is open."""
        ctx = request.app.state.careline
        device = _device(ctx.current_config().devices, device_id, account)
        if not _testable(device):
            raise HTTPException(
                status.HTTP_409_CONFLICT, _say(account, "duty.error.not_testable", id=device_id)
            )
        minutes = (body or ArmTestMode()).minutes
        subject = f"resident:{device.resident}" if device.resident else f"device:{device.id}"
        keys = tuple(f"{rule}:{device.site}:{subject}" for rule in TEST_MODE_RULES)
        service: IncidentService = ctx.service
        try:
            return await service.write(
                DutyStore(service.store).arm_test_mode,
                device.id,
                device.site,
                account.username,
                minutes,
                keys,
            )
        except DeviceBusyError:
            raise HTTPException(
                status.HTTP_409_CONFLICT, _say(account, "duty.error.busy", id=device_id)
            ) from None

    @router.delete("/api/duty/test-mode/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def disarm_test_mode(request: Request, device_id: str, account: Operator) -> Response:
        """End test mode early: the device's next press is an alarm."""
        ctx = request.app.state.careline
        device = _device(ctx.current_config().devices, device_id, account)
        disarmed = await ctx.service.write(
            DutyStore(ctx.service.store).disarm_test_mode, device.id, account.username, account.scope
        )
        if not disarmed:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, _say(account, "duty.error.not_armed", id=device_id)
            )
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router


def _testable(device: DeviceConfig) -> bool:
    return device.active and device.type in TEST_MODE_TYPES


def _device(devices: tuple[DeviceConfig, ...], device_id: str, account: Account) -> DeviceConfig:
    found = next((d for d in devices if d.id == device_id and d.active and _sees(account, d.site)), None)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _say(account, "duty.error.no_device", id=device_id))
    return found


def _sees(account: Account, site: str) -> bool:
    return account.scope is None or site in account.scope


def _say(account: Account, key: str, **params: Any) -> str:
    return text(key, normalize_language(account.wording), **params)
