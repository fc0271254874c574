"""The operators' console in the incident store: who works an incident (take, release, take over),
notes, people sent to the resident, response scripts, and the incident screen's one read.

Writes run on the incident service's writer thread (`IncidentService.change` / `write`), each in one
audited transaction; reads on its reader threads. Every function takes the caller's site scope: an
incident of a site the user does not see is "not found".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.escalation.config import Shift
from gateway.incidents.schema import (
    AlarmEvent,
    AuditEntry,
    DirectoryDevice,
    DirectoryResident,
    DirectoryResponder,
    DirectorySite,
    Dispatch,
    Incident,
    IncidentNote,
    IncidentStatus,
    Notification,
    ResponseScript,
)
from gateway.incidents.scripts import (
    ScriptView,
    Steps,
    all_scripts,
    applicable_script,
    is_known_rule,
    script_row,
)
from gateway.incidents.store import IncidentConflictError, IncidentStore, Scope
from gateway.incidents.views import IncidentView


class ConsoleInputError(ValueError):
    """The request names something that does not exist or is not allowed (a 4xx, never a 500)."""


class HeldByAnotherError(IncidentConflictError):
    """Another operator holds the incident; `holder` is their user name."""

    def __init__(self, incident_id: int, holder: str) -> None:
        super().__init__(f"incident {incident_id} is taken by {holder}")
        self.holder = holder


class NotTheHolderError(PermissionError):
    """Only the holder (or a manager) may release an incident."""


class NoteView(BaseModel):
    id: int
    incident_id: int
    at: datetime
    author: str
    text: str

    @classmethod
    def of(cls, row: IncidentNote) -> NoteView:
        return cls(id=row.id, incident_id=row.incident_id, at=row.at, author=row.author, text=row.text)


class DispatchView(BaseModel):
    id: int
    incident_id: int
    at: datetime
    by: str
    #: The responder's id in the directory, or None for someone named in `who`.
    responder: str | None
    responder_name: str | None
    who: str | None
    note: str

    @classmethod
    def of(cls, row: Dispatch) -> DispatchView:
        return cls(
            id=row.id,
            incident_id=row.incident_id,
            at=row.at,
            by=row.by,
            responder=row.responder_id,
            responder_name=row.responder_name,
            who=row.who,
            note=row.note,
        )


class ConsoleStore:
    def __init__(self, store: IncidentStore) -> None:
        self._store = store

    def _now(self) -> datetime:
        return self._store.now()

    def _view(self, incident: Incident) -> IncidentView:
        return IncidentView.of(incident, self._store.directory)

    def _audit(
        self, session: Session, actor: str, action: str, incident_id: int | None, **details: Any
    ) -> AuditEntry:
        return self._store.audit.append(
            session, at=self._now(), actor=actor, action=action, incident_id=incident_id, details=details
        )

    # -- who works it ---------------------------------------------------------------------------------

    def take(self, incident_id: int, user: str, force: bool, scope: Scope = None) -> IncidentView:
        """`user` works the incident now. Held by another: refused unless `force` (a take-over, audited
        with the previous holder's name)."""
        with self._store.transaction() as session:
            incident = self._store.get_in(session, incident_id, scope)
            if incident.status == IncidentStatus.RESOLVED.value:
                raise IncidentConflictError(f"incident {incident_id} is already resolved")
            previous = incident.taken_by
            if previous == user:
                return self._view(incident)
            if previous is not None and not force:
                raise HeldByAnotherError(incident_id, previous)
            incident.taken_by, incident.taken_at = user, self._now()
            if previous is None:
                self._audit(session, f"user:{user}", "incident.taken", incident.id)
            else:
                self._audit(session, f"user:{user}", "incident.taken_over", incident.id, previous=previous)
            return self._view(incident)

    def release(
        self, incident_id: int, user: str, may_release_others: bool, scope: Scope = None
    ) -> IncidentView:
        with self._store.transaction() as session:
            incident = self._store.get_in(session, incident_id, scope)
            holder = incident.taken_by
            if holder is None:
                raise IncidentConflictError(f"nobody holds incident {incident_id}")
            if holder != user and not may_release_others:
                raise NotTheHolderError(f"incident {incident_id} is held by {holder}")
            incident.taken_by = incident.taken_at = None
            self._audit(session, f"user:{user}", "incident.released", incident.id, holder=holder)
            return self._view(incident)

    # -- notes and people sent ------------------------------------------------------------------------

    def add_note(
        self, incident_id: int, author: str, text: str, scope: Scope = None
    ) -> tuple[NoteView, IncidentView]:
        with self._store.transaction() as session:
            incident = self._store.get_in(session, incident_id, scope)
            note = IncidentNote(incident_id=incident.id, at=self._now(), author=author, text=text)
            session.add(note)
            session.flush()
            self._audit(session, f"user:{author}", "incident.noted", incident.id, note=note.id, text=text)
            return NoteView.of(note), self._view(incident)

    def notes(self, incident_id: int, scope: Scope = None) -> list[NoteView]:
        with self._store.reading() as session:
            self._store.get_in(session, incident_id, scope)
            return _notes(session, incident_id)

    def dispatch(
        self, incident_id: int, by: str, responder_id: str | None, who: str, note: str, scope: Scope = None
    ) -> tuple[DispatchView, IncidentView]:
        """Someone is on the way to the resident: a responder of the directory, or a person named in
        `who` (a neighbour, the ambulance)."""
        with self._store.transaction() as session:
            incident = self._store.get_in(session, incident_id, scope)
            if incident.status == IncidentStatus.RESOLVED.value:
                raise IncidentConflictError(f"incident {incident_id} is already resolved")
            responder_name = None
            if responder_id is not None:
                responder = session.get(DirectoryResponder, responder_id)
                if responder is None or responder.removed_at is not None:
                    raise ConsoleInputError(f"no responder {responder_id!r}")
                covered = responder.body.get("sites") or []
                if covered and incident.site not in covered:
                    # The incident screen offers only the site's responders; a name from another site
                    # would record someone sent who is not coming.
                    raise ConsoleInputError(f"responder {responder_id!r} does not cover this site")
                responder_name = responder.name
            elif not who.strip():
                raise ConsoleInputError("name the responder, or say who was sent")
            now = self._now()
            row = Dispatch(
                incident_id=incident.id,
                at=now,
                by=by,
                responder_id=responder_id,
                responder_name=responder_name,
                who=who.strip() or None,
                note=note,
            )
            session.add(row)
            if incident.dispatched_at is None:
                incident.dispatched_at = now
            session.flush()
            self._audit(
                session,
                f"user:{by}",
                "incident.dispatched",
                incident.id,
                dispatch=row.id,
                responder=responder_id,
                who=row.who,
                note=note,
            )
            return DispatchView.of(row), self._view(incident)

    def dispatches(self, incident_id: int, scope: Scope = None) -> list[DispatchView]:
        with self._store.reading() as session:
            self._store.get_in(session, incident_id, scope)
            return _dispatches(session, incident_id)

    # -- response scripts -----------------------------------------------------------------------------

    def scripts(self) -> list[ScriptView]:
        with self._store.reading() as session:
            return all_scripts(session)

    def put_script(self, rule: str, site: str | None, steps: Steps, actor: str) -> ScriptView:
        with self._store.transaction() as session:
            self._known_rule_and_site(session, rule, site)
            row = script_row(session, rule, site)
            if row is None:
                row = ResponseScript(rule=rule, site=site)
                session.add(row)
            row.steps, row.updated_at, row.updated_by = steps, self._now(), actor
            session.flush()
            self._audit(session, f"user:{actor}", "script.updated", None, rule=rule, site=site, steps=steps)
            return ScriptView.of(row)

    def delete_script(self, rule: str, site: str | None, actor: str) -> ScriptView:
        """Remove a script; what applies then (the all-sites one or the default) is returned."""
        with self._store.transaction() as session:
            self._known_rule_and_site(session, rule, site)
            row = script_row(session, rule, site)
            if row is None:
                raise LookupError(f"no script for {rule} at {site or 'every site'}")
            session.delete(row)
            session.flush()
            self._audit(session, f"user:{actor}", "script.deleted", None, rule=rule, site=site)
            return applicable_script(session, rule, site) if site else ScriptView.default(rule)

    @staticmethod
    def _known_rule_and_site(session: Session, rule: str, site: str | None) -> None:
        if not is_known_rule(rule):
            raise ConsoleInputError(f"no alarm type {rule!r}")
        if site is not None:
            row = session.get(DirectorySite, site)
            if row is None or row.removed_at is not None:
                raise ConsoleInputError(f"no site {site!r}")

    # -- the incident screen --------------------------------------------------------------------------

    def detail(self, incident_id: int, scope: Scope = None) -> dict[str, Any]:
        """Everything the incident screen shows that the store holds, in one read. Device health, recent
        readings and the escalation log are added by the caller (they live elsewhere)."""
        with self._store.reading() as session:
            incident = self._store.get_in(session, incident_id, scope)
            site = session.get(DirectorySite, incident.site)
            resident = session.get(DirectoryResident, incident.resident) if incident.resident else None
            device = session.get(DirectoryDevice, incident.device_id)
            zone = _zone(site)
            now_local = self._now().astimezone(zone)
            room = _room(site, incident.room)
            notes, dispatches = _notes(session, incident.id), _dispatches(session, incident.id)
            return {
                "incident": self._view(incident),
                "resident": _resident(resident, now_local),
                "place": _place(incident, site, resident, room),
                "device": _device(incident, device),
                "timeline": _timeline(session, incident.id, notes, dispatches),
                "contacts": {
                    "responders": _responders(session, incident.site, room.get("wing"), now_local),
                    "family": _family(resident),
                },
                "script": applicable_script(session, incident.rule, incident.site),
                "notes": notes,
                "dispatches": dispatches,
            }


def _notes(session: Session, incident_id: int) -> list[NoteView]:
    rows = session.scalars(
        select(IncidentNote).where(IncidentNote.incident_id == incident_id).order_by(IncidentNote.id)
    )
    return [NoteView.of(row) for row in rows]


def _dispatches(session: Session, incident_id: int) -> list[DispatchView]:
    rows = session.scalars(select(Dispatch).where(Dispatch.incident_id == incident_id).order_by(Dispatch.id))
    return [DispatchView.of(row) for row in rows]


def _zone(site: DirectorySite | None) -> ZoneInfo:
    try:
        return ZoneInfo(str(site.body.get("timezone", "UTC"))) if site is not None else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return ZoneInfo("UTC")


def _room(site: DirectorySite | None, room_id: str | None) -> dict[str, Any]:
    rooms = site.body.get("rooms", []) if site is not None else []
    found: dict[str, Any] = next((room for room in rooms if room.get("id") == room_id), {})
    return {"id": room_id, "name": found.get("name") or room_id, "wing": found.get("wing")}


def _resident(row: DirectoryResident | None, now_local: datetime) -> dict[str, Any] | None:
    if row is None:
        return None
    body = row.body
    birth_year = body.get("birth_year")
    return {
        "id": row.id,
        "name": row.name,
        "status": row.status,
        "photo_url": body.get("photo_url"),
        "birth_year": birth_year,
        # From the year alone: within one year of the truth, which is what a responder needs.
        "age": now_local.year - birth_year if isinstance(birth_year, int) else None,
        "languages": list(body.get("languages", [])),
        "conditions": list(body.get("conditions", [])),
        "care_notes": body.get("notes"),
        "risks": list(body.get("risks", [])),
        "check_in_consent": bool(body.get("check_in_consent", False)),
        # The key-safe code is never part of this: it is revealed on its own, audited.
        "has_key_safe": row.key_safe is not None,
    }


def _place(
    incident: Incident, site: DirectorySite | None, resident: DirectoryResident | None, room: dict[str, Any]
) -> dict[str, Any]:
    site_body = site.body if site is not None else {}
    resident_body = resident.body if resident is not None else {}
    wings = {wing.get("id"): wing.get("name") for wing in site_body.get("wings", [])}
    return {
        "site": incident.site,
        "site_name": site.name if site is not None else incident.site,
        "site_kind": site_body.get("kind"),
        "timezone": site_body.get("timezone"),
        # A resident at home has their own address and way in; in a care home it is the building's.
        "address": resident_body.get("address") or site_body.get("address"),
        "access_notes": resident_body.get("access_notes") or site_body.get("access_notes"),
        "wing": room["wing"],
        "wing_name": wings.get(room["wing"]) or room["wing"],
        "room": room["id"],
        "room_name": room["name"],
    }


def _device(incident: Incident, row: DirectoryDevice | None) -> dict[str, Any]:
    body = row.body if row is not None else {}
    return {
        "id": incident.device_id,
        "type": row.type if row is not None else None,
        "name": body.get("friendly_name") or body.get("model") or incident.device_id,
        "model": body.get("model"),
        "vendor": body.get("vendor"),
        "state": row.state if row is not None else None,
    }


def _responders(session: Session, site: str, wing: str | None, now_local: datetime) -> list[dict[str, Any]]:
    """The responders who cover the site, with whether the rota has them on duty now; on duty first."""
    rows = session.scalars(
        select(DirectoryResponder)
        .where(DirectoryResponder.removed_at.is_(None))
        .order_by(DirectoryResponder.position)
    )
    found: list[dict[str, Any]] = []
    for row in rows:
        body = row.body
        sites = body.get("sites") or []
        if sites and site not in sites:
            continue
        found.append(
            {
                "id": row.id,
                "name": row.name,
                "phone": body.get("phone"),
                "roles": list(body.get("roles", [])),
                "role": (body.get("roles") or [None])[0],
                "on_duty": _on_duty(body.get("shifts") or [], wing, now_local),
                "has_shifts": bool(body.get("shifts")),
            }
        )
    return sorted(found, key=lambda responder: not responder["on_duty"])


def _on_duty(shifts: list[dict[str, Any]], wing: str | None, now_local: datetime) -> bool:
    """As the rota reads it: no shifts means always reachable; a shift of another wing does not count."""
    if not shifts:
        return True
    for raw in shifts:
        try:
            shift = Shift.model_validate(raw)
        except ValidationError:
            continue
        if shift.covers(now_local) and (wing is None or shift.wing in (None, wing)):
            return True
    return False


def _family(resident: DirectoryResident | None) -> list[dict[str, Any]]:
    contacts = resident.body.get("contacts", []) if resident is not None else []
    return [
        {
            "name": contact.get("name"),
            "relation": contact.get("relation"),
            "phone": (contact.get("phones") or [None])[0],
            "phones": list(contact.get("phones", [])),
            "languages": list(contact.get("languages", [])),
        }
        for contact in contacts
    ]


_TIMELINE_MAX = 500
_OWN_ITEMS = frozenset({"incident.noted", "incident.dispatched"})


def _timeline(
    session: Session, incident_id: int, notes: list[NoteView], dispatches: list[DispatchView]
) -> list[dict[str, Any]]:
    """Alarm events, audit entries, notifications, notes and dispatches: one list, oldest first."""
    items: list[dict[str, Any]] = []
    events = session.scalars(
        select(AlarmEvent)
        .where(AlarmEvent.incident_id == incident_id)
        .order_by(AlarmEvent.id)
        .limit(_TIMELINE_MAX)
    )
    items += [
        {
            "at": e.received_at,
            "kind": "event",
            "code": e.kind,
            "actor": f"device:{e.device_id}",
            "details": {"effect": e.effect, "value": e.value},
        }
        for e in events
    ]
    audits = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.incident_id == incident_id)
        .order_by(AuditEntry.id)
        .limit(_TIMELINE_MAX)
    )
    items += [
        {"at": a.at, "kind": "audit", "code": a.action, "actor": a.actor, "details": a.details}
        for a in audits
        # Notes and dispatches have their own items.
        if a.action not in _OWN_ITEMS
    ]
    sent = session.scalars(
        select(Notification)
        .where(Notification.incident_id == incident_id)
        .order_by(Notification.id)
        .limit(_TIMELINE_MAX)
    )
    items += [
        {
            "at": n.created_at,
            "kind": "notification",
            "code": n.status,
            "actor": n.responder_id,
            "details": {
                "channel": n.channel,
                "tier": n.tier,
                "round": n.round,
                "attempts": n.attempts,
                "detail": n.detail,
            },
        }
        for n in sent
    ]
    items += [
        {"at": n.at, "kind": "note", "code": "note", "actor": f"user:{n.author}", "details": {"text": n.text}}
        for n in notes
    ]
    items += [
        {
            "at": d.at,
            "kind": "dispatch",
            "code": "dispatch",
            "actor": f"user:{d.by}",
            "details": {
                "responder": d.responder,
                "responder_name": d.responder_name,
                "who": d.who,
                "note": d.note,
            },
        }
        for d in dispatches
    ]
    return sorted(items, key=_at)


def _at(item: dict[str, Any]) -> datetime:
    at: datetime = item["at"]
    return at
