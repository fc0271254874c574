"""Bulk changes from the administration page, each ONE directory change (validated whole, one
transaction, audited per entry, live when answered) so a bulk action never half-applies:

- `POST /api/directory/devices/move` `{"ids": [...], "site": "...", "room": "..."|null}`: devices to
  another room or site (a device moved to another site leaves its resident, who lives at the old one);
- `POST /api/directory/responders/rota` `{"ids": [...], "shifts": [...]}`: responders onto another rota.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field, ValidationError

from common.errors import InvalidInputError
from common.settings import Identifier
from dashboard.directory_api import Admin, ChangeOutcome, _apply, _outcome, _refusal
from dashboard.openapi import CONFLICT, NOT_FOUND
from gateway.config import problems_of
from gateway.directory.sections import DirectorySections
from gateway.escalation.config import Shift

MAX_BULK = 5_000


class DeviceMove(BaseModel):
    ids: list[Identifier] = Field(min_length=1, max_length=MAX_BULK)
    site: Identifier
    room: Identifier | None = None


class RotaChange(BaseModel):
    ids: list[Identifier] = Field(min_length=1, max_length=MAX_BULK)
    shifts: list[dict[str, Any]] = Field(max_length=50)


def _missing(ids: list[str], present: set[str], what: str) -> None:
    unknown = sorted(set(ids) - present)
    if unknown:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {what} {', '.join(unknown[:10])}")


def admin_bulk_router() -> APIRouter:
    router = APIRouter(tags=["directory: bulk"])

    @router.post("/api/directory/devices/move", responses={**NOT_FOUND, **CONFLICT})
    async def move_devices(request: Request, account: Admin, move: DeviceMove) -> ChangeOutcome:
        """Move devices to another room (or site) in one change."""
        wanted = set(move.ids)

        def edit(current: DirectorySections) -> DirectorySections:
            _missing(move.ids, {d.id for d in current.devices}, "device")
            moved = []
            for device in current.devices:
                if device.id in wanted:
                    keeps_resident = device.site == move.site
                    update = {"site": move.site, "room": move.room}
                    device = device.model_copy(
                        update=update if keeps_resident else {**update, "resident": None}
                    )
                moved.append(device)
            return current.model_copy(update={"devices": tuple(moved)})

        return _outcome(await _apply(request, account, edit), account)

    @router.post("/api/directory/responders/rota", responses={**NOT_FOUND, **CONFLICT})
    async def change_rota(request: Request, account: Admin, change: RotaChange) -> ChangeOutcome:
        """Give responders the same shifts in one change."""
        try:
            shifts = tuple(Shift.model_validate(s) for s in change.shifts)
        except ValidationError as exc:
            raise _refusal(InvalidInputError("invalid shifts", problems_of(exc)), account) from None
        wanted = set(change.ids)

        def edit(current: DirectorySections) -> DirectorySections:
            _missing(change.ids, {r.id for r in current.responders}, "responder")
            responders = tuple(
                r.model_copy(update={"shifts": shifts}) if r.id in wanted else r for r in current.responders
            )
            return current.model_copy(update={"responders": responders})

        return _outcome(await _apply(request, account, edit), account)

    return router
