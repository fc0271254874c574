"""Duty in the incident store: test mode of alarm devices, and closing an unstaffed-console alarm.

Every write runs on the store's writer thread (through `IncidentService.write`), in one transaction with
its audit row. Whether a press is a test is decided in the alarm's own commit (`IncidentStore`), from the
row armed here, so it survives restarts and is never a guess from memory (docs/duty.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import select

from gateway.incidents.schema import DeviceTestMode, Incident, IncidentStatus, Outcome
from gateway.incidents.store import (
    ACTIVE,
    TEST_MODE_RULES,
    IncidentStore,
    Scope,
    _stop_escalation,
    under_key,
)
from gateway.incidents.views import IncidentView

#: How long test mode stays armed unless told otherwise, and at most.
TEST_MODE_DEFAULT_MIN = 10
TEST_MODE_MAX_MIN = 30
#: The catalogue's rule code an overdue device fault's message to the technician is worded by.
FAULT_OVERDUE = "fault_overdue"
#: The rule (and incident key prefix) of "nobody is at the console of this site".
CONSOLE_UNSTAFFED_RULE = "console_unstaffed"


def console_unstaffed_key(site: str) -> str:
    return f"{CONSOLE_UNSTAFFED_RULE}:{site}"


class TestModeView(BaseModel):
    device_id: str
    site: str
    armed_by: str
    armed_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, mode: DeviceTestMode) -> TestModeView:
        return cls(
            device_id=mode.device_id,
            site=mode.site,
            armed_by=mode.armed_by,
            armed_at=mode.armed_at,
            expires_at=mode.expires_at,
        )


class DeviceBusyError(RuntimeError):
    """The device has an alarm still open: its next press must join that alarm, so no test mode."""


class DutyStore:
    def __init__(self, store: IncidentStore) -> None:
        self._store = store

    def arm_test_mode(
        self, device_id: str, site: str, actor: str, minutes: int, open_keys: tuple[str, ...]
    ) -> TestModeView:
        """Arm (or re-arm, from now) test mode for one device for `minutes`. Refused while an alarm of the
        device (its incident keys `open_keys`, or a call it raised) is open: a press then is about that
        alarm. A fault of the device (offline, battery) does not stop it: testing it is how it is fixed."""
        now = self._store.now()
        with self._store.transaction() as session:
            busy = session.scalar(
                select(Incident.id)
                .where(Incident.status.in_(ACTIVE))
                .where(
                    Incident.key.in_(open_keys)
                    | ((Incident.device_id == device_id) & Incident.rule.in_(sorted(TEST_MODE_RULES)))
                )
                .limit(1)
            )
            if busy is not None:
                raise DeviceBusyError(f"device {device_id} has alarm {busy} open")
            mode = session.get(DeviceTestMode, device_id)
            if mode is None:
                mode = DeviceTestMode(device_id=device_id)
                session.add(mode)
            mode.site, mode.armed_by, mode.armed_at = site, actor, now
            mode.expires_at = now + timedelta(minutes=minutes)
            self._store.audit.append(
                session,
                at=now,
                actor=f"user:{actor}",
                action="device.test_mode_armed",
                details={"device": device_id, "site": site, "minutes": minutes},
            )
            return TestModeView.of(mode)

    def disarm_test_mode(self, device_id: str, actor: str, scope: Scope) -> bool:
        """False when no test mode was armed (or it is of a site outside `scope`)."""
        with self._store.transaction() as session:
            mode = session.get(DeviceTestMode, device_id)
            if mode is None or (scope is not None and mode.site not in scope):
                return False
            session.delete(mode)
            self._store.audit.append(
                session,
                at=self._store.now(),
                actor=f"user:{actor}",
                action="device.test_mode_disarmed",
                details={"device": device_id, "site": mode.site},
            )
            return True

    def test_modes(self, scope: Scope) -> list[TestModeView]:
        """Test modes still armed (not expired) of the sites in `scope`."""
        query = select(DeviceTestMode).where(DeviceTestMode.expires_at > self._store.now())
        if scope is not None:
            query = query.where(DeviceTestMode.site.in_(sorted(scope)))
        with self._store.reading() as session:
            return [
                TestModeView.of(mode) for mode in session.scalars(query.order_by(DeviceTestMode.device_id))
            ]

    def console_gap_open(self, site: str) -> bool:
        with self._store.reading() as session:
            found = session.scalar(
                select(Incident.id).where(*under_key(console_unstaffed_key(site))).limit(1)
            )
            return found is not None

    def close_console_gap(self, site: str, signed_in: str) -> IncidentView | None:
        """Someone is at the console again: the site's unstaffed alarm closes itself, audited, and its
        escalation stops. None when there was none open."""
        now = self._store.now()
        with self._store.transaction() as session:
            incident = session.scalar(select(Incident).where(*under_key(console_unstaffed_key(site))))
            if incident is None:
                return None
            actor = "system:duty"
            if incident.acknowledged_at is None:
                incident.acknowledged_at, incident.acknowledged_by = now, actor
            incident.status = IncidentStatus.RESOLVED.value
            _stop_escalation(session, incident.id, "resolved", now)
            incident.resolved_at, incident.resolved_by = now, actor
            incident.outcome = Outcome.OTHER.value
            incident.note = f"console staffed again: {signed_in}"
            incident.taken_by = incident.taken_at = None
            self._store.audit.append(
                session,
                at=now,
                actor=actor,
                action="incident.resolved",
                incident_id=incident.id,
                details={"outcome": incident.outcome, "note": incident.note, "console_staffed_by": signed_in},
            )
            return IncidentView.of(incident, self._store.directory)
