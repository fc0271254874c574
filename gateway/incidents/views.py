"""What the API and the WebSocket show of an incident."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from gateway.directory import Directory
from gateway.incidents.schema import DeviceTest, Incident
from rules.categories import Category, category_of


class IncidentView(BaseModel):
    id: int
    key: str
    rule: str
    severity: str
    status: str
    site: str
    site_name: str
    room: str | None
    resident: str | None
    resident_name: str | None
    device_id: str
    opened_at: datetime
    last_triggered_at: datetime
    trigger_count: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    outcome: str | None
    note: str | None
    #: What was wrong with the device messages behind the incident, which were read anyway.
    faults: list[str] = []
    #: The operator working it now (user name) and since when; None when nobody holds it.
    taken_by: str | None = None
    taken_at: datetime | None = None
    #: life_safety first, then wandering, wellbeing, technical: the queue's order.
    category: Category = "technical"
    #: Someone has been sent to the resident.
    dispatched: bool = False

    @classmethod
    def of(cls, incident: Incident, directory: Directory) -> IncidentView:
        return cls(
            id=incident.id,
            key=incident.key,
            rule=incident.rule,
            severity=incident.severity,
            status=incident.status,
            site=incident.site,
            site_name=directory.site_name(incident.site),
            room=incident.room,
            resident=incident.resident,
            resident_name=directory.resident_name(incident.resident),
            device_id=incident.device_id,
            opened_at=incident.opened_at,
            last_triggered_at=incident.last_triggered_at,
            trigger_count=incident.trigger_count,
            acknowledged_at=incident.acknowledged_at,
            acknowledged_by=incident.acknowledged_by,
            resolved_at=incident.resolved_at,
            resolved_by=incident.resolved_by,
            outcome=incident.outcome,
            note=incident.note,
            faults=[str(fault) for fault in incident.evidence.get("faults", [])],
            taken_by=incident.taken_by,
            taken_at=incident.taken_at,
            category=category_of(incident.rule),
            dispatched=incident.dispatched_at is not None,
        )


class DeviceTestView(BaseModel):
    """A device's last test: managers check from it that every smoke detector is tested."""

    device_id: str
    site: str
    site_name: str
    kind: str
    last_test_at: datetime
    test_count: int

    @classmethod
    def of(cls, test: DeviceTest, directory: Directory) -> DeviceTestView:
        return cls(
            device_id=test.device_id,
            site=test.site,
            site_name=directory.site_name(test.site),
            kind=test.kind,
            last_test_at=test.last_test_at,
            test_count=test.test_count,
        )


class AuditView(BaseModel):
    """One audit entry as the API shows it (read straight from the row)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    incident_id: int | None
    details: dict[str, object]
    hash: str


class AuditChainView(BaseModel):
    """The audit trail's hash chain, recomputed: intact, or where it first breaks."""

    intact: bool
    #: Entries that verified (all of them when intact).
    verified: int
    first_broken_id: int | None = None
    first_broken_at: datetime | None = None
    first_broken_action: str | None = None
    reason: str | None = None
