"""The directory in the database: sites, residents, devices, responders and escalation policies as rows.

Every change is validated as a whole directory first (`DirectorySections.applied_to`: ids unique, every
reference resolves), then written with one audit entry per entry changed, in ONE transaction of the
incident store, so a change is applied completely or not at all. Nothing is deleted: devices retire,
residents are discharged, sites, responders and policies are withdrawn; their rows and history stay.

Planning (load, validate, diff) runs on a reader thread; only the writes take the store's writer, so a
large import keeps an alarm waiting for its writes only, not for its validation. A plan carries the
directory's revision; if another change committed in between, the plan is made again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import PurePath
from typing import Any, cast

from pydantic import BaseModel, SecretStr, ValidationError
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from common.errors import InvalidInputError, Problem
from gateway.config import (
    CarelineConfig,
    DeviceConfig,
    ResidentConfig,
    ResponderConfig,
    SiteConfig,
    problems_of,
)
from gateway.directory.changes import (
    KINDS,
    SECRET_FIELDS,
    SINGULAR,
    Change,
    ChangeSet,
    Incoming,
    Kind,
    Scope,
    completed,
    diff,
)
from gateway.directory.keysafe import SEALED, KeySafeCipher
from gateway.directory.sections import DirectorySections
from gateway.escalation.config import Policy
from gateway.incidents.schema import (
    AuditEntry,
    DirectoryDevice,
    DirectoryHistory,
    DirectoryPolicy,
    DirectoryResident,
    DirectoryResponder,
    DirectorySite,
)
from gateway.incidents.service import IncidentService
from gateway.incidents.store import IncidentStore
from gateway.incidents.views import AuditView
from gateway.references import problem

log = logging.getLogger(__name__)

#: Told the new directory after a commit; `apply` returns once every listener has finished with it.
DirectoryListener = Callable[[DirectorySections], Awaitable[None]]
Edit = Callable[[DirectorySections], DirectorySections]

TABLES: dict[Kind, Any] = {
    "sites": DirectorySite,
    "residents": DirectoryResident,
    "devices": DirectoryDevice,
    "responders": DirectoryResponder,
    "policies": DirectoryPolicy,
}
MODELS: dict[Kind, type[BaseModel]] = {
    "sites": SiteConfig,
    "residents": ResidentConfig,
    "devices": DeviceConfig,
    "responders": ResponderConfig,
    "policies": Policy,
}
#: Kinds whose entries stay in the directory when they end (with a state); the others are withdrawn.
LASTING: frozenset[Kind] = frozenset({"residents", "devices"})
MAX_ACTOR = 64


class StaleDirectoryError(RuntimeError):
    """Another change was committed after this plan was made."""


@dataclass(frozen=True, slots=True)
class Plan:
    revision: int
    current: DirectorySections
    sections: DirectorySections
    changes: ChangeSet
    actor: str
    #: The file an import came from, for its summary entry in the audit trail.
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    total: int
    items: list[dict[str, Any]]


def _columns(kind: Kind, entry: Any) -> dict[str, Any]:
    """The indexed columns of an entry's row (what lists search, filter and page on)."""
    if kind == "sites":
        return {"name": entry.name, "kind": entry.kind}
    if kind == "residents":
        return {"site": entry.site, "room": entry.room, "name": entry.name, "status": entry.status}
    if kind == "devices":
        return {
            "site": entry.site,
            "room": entry.room,
            "resident": entry.resident,
            "type": entry.type.value,
            "state": entry.state,
        }
    if kind == "responders":
        return {"name": entry.name}
    return {}


def body_of(entry: BaseModel) -> dict[str, Any]:
    return entry.model_dump(mode="json", exclude=set(SECRET_FIELDS))


def actor_name(actor: str) -> str:
    return actor[:MAX_ACTOR]


class DirectoryStore:
    def __init__(self, service: IncidentService, config: CarelineConfig, cipher: KeySafeCipher) -> None:
        self._service = service
        self._incidents = service.store
        self._config = config
        self._cipher = cipher
        self._listeners: list[DirectoryListener] = []

    @property
    def cipher(self) -> KeySafeCipher:
        return self._cipher

    @property
    def incidents(self) -> IncidentStore:
        """The incident store whose transactions and audit trail the directory's changes share."""
        return self._incidents

    def now(self) -> datetime:
        return self._incidents.now()

    def today(self, site_id: str) -> date:
        """The date now at a site (a discharge's date), by the site's time zone."""
        zone = next((site.zone for site in self.load().sites if site.id == site_id), None)
        now = self._incidents.now()
        return (now.astimezone(zone) if zone else now).date()

    def subscribe(self, listener: DirectoryListener) -> None:
        """`listener` is told the whole new directory after each committed change (on the event loop); a
        change made through `apply` is in force when it returns (the gateway puts it in force first)."""
        self._listeners.append(listener)

    def configure(self, config: CarelineConfig) -> None:
        """The rest of the configuration the directory is validated against (webhooks policies name)."""
        self._config = config

    # -- reading ----------------------------------------------------------------------------------------

    def load(self) -> DirectorySections:
        with self._incidents.reading() as session:
            return self._load(session)

    def _load(self, session: Session) -> DirectorySections:
        sections: dict[str, tuple[Any, ...]] = {}
        for kind in KINDS:
            rows = session.scalars(_live(kind).order_by(TABLES[kind].position))
            sections[kind] = tuple(self._entry(kind, row) for row in rows)
        return DirectorySections.model_validate(sections)

    def _entry(self, kind: Kind, row: Any) -> BaseModel:
        body = dict(row.body)
        if kind == "residents" and row.key_safe is not None:
            body["key_safe_code"] = self._cipher.open(row.key_safe, whose=row.id)
        return MODELS[kind].model_validate(body)

    def is_empty(self) -> bool:
        with self._incidents.reading() as session:
            return all(session.scalar(select(TABLES[kind].id).limit(1)) is None for kind in KINDS)

    def revision(self) -> int:
        with self._incidents.reading() as session:
            return _revision(session)

    def page(
        self,
        kind: Kind,
        *,
        scope: Scope = None,
        search: str | None = None,
        filters: dict[str, str] | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Page:
        """One page of a kind's entries for a list, in the directory's order."""
        table = TABLES[kind]
        query = _live(kind)
        for column, value in (filters or {}).items():
            query = query.where(getattr(table, column) == value)
        if search:
            pattern = f"%{search}%"
            named = [table.id.ilike(pattern)] + (
                [table.name.ilike(pattern)] if hasattr(table, "name") else []
            )
            query = query.where(or_(*named))
        with self._incidents.reading() as session:
            if kind in ("sites", "residents", "devices"):
                if scope is not None:
                    query = query.where((table.id if kind == "sites" else table.site).in_(scope))
                total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
                rows = session.scalars(query.order_by(table.position).offset(offset).limit(limit))
                return Page(total, [_shown(kind, row) for row in rows])
            # Responders and policies are few; which sites they cover is inside their body.
            visible = [
                row for row in session.scalars(query.order_by(table.position)) if _covers(kind, row, scope)
            ]
            return Page(len(visible), [_shown(kind, row) for row in visible[offset : offset + limit]])

    def get(self, kind: Kind, entry_id: str, scope: Scope = None) -> dict[str, Any] | None:
        with self._incidents.reading() as session:
            row = session.scalar(_live(kind).where(TABLES[kind].id == entry_id))
            if row is None or not _covers(kind, row, scope):
                return None
            return _shown(kind, row)

    def site_of(self, kind: Kind, entry_id: str) -> str | None:
        """The site of a resident or device row (discharged and retired ones too)."""
        with self._incidents.reading() as session:
            row = session.get(TABLES[kind], entry_id)
            return None if row is None else cast(str, row.site)

    def history(self, kind: str, entity_id: str, limit: int = 500) -> list[AuditView]:
        """The audit entries about one entry (`kind` singular: resident, device, user ...), oldest first."""
        with self._incidents.reading() as session:
            entries = session.scalars(
                select(AuditEntry)
                .join(DirectoryHistory, DirectoryHistory.audit_id == AuditEntry.id)
                .where(DirectoryHistory.kind == kind, DirectoryHistory.entity_id == entity_id)
                .order_by(AuditEntry.id)
                .limit(limit)
            )
            return [AuditView.model_validate(e) for e in entries]

    def export_rows(self, kinds: Sequence[Kind], scope: Scope = None) -> dict[Kind, list[dict[str, Any]]]:
        """Every entry of `kinds` as its stored body; a key-safe code only sealed (`enc:<token>`)."""
        out: dict[Kind, list[dict[str, Any]]] = {}
        with self._incidents.reading() as session:
            for kind in kinds:
                rows = session.scalars(_live(kind).order_by(TABLES[kind].position))
                out[kind] = [_exported(kind, row) for row in rows if _covers(kind, row, scope)]
        return out

    # -- changing ---------------------------------------------------------------------------------------

    def plan(
        self,
        change: DirectorySections | Edit,
        actor: str,
        *,
        source: str | None = None,
    ) -> Plan:
        """Validate the directory `change` leads to and what it changes; writes nothing."""
        with self._incidents.reading() as session:
            revision = _revision(session)
            current = self._load(session)
        wanted = change(current) if callable(change) else change
        opened = self._opened(wanted)
        try:
            validated = DirectorySections.of(opened.applied_to(self._config))
        except ValidationError as exc:
            raise _refused(problems_of(exc)) from None
        changes = diff(current, validated)
        problems = self._change_problems(validated, changes)
        if problems:
            raise _refused(problems)
        return Plan(revision, current, validated, changes, actor_name(actor), source)

    def importing(self, incoming: Incoming, scope: Scope) -> Edit:
        """The edit an import makes: its kinds replaced in full, what it leaves out retired."""

        def edit(current: DirectorySections) -> DirectorySections:
            zones = {site.id: site.zone for site in current.sites}
            now = self._incidents.now()

            def today(site: str) -> date:
                zone = zones.get(site)
                return (now.astimezone(zone) if zone else now).date()

            result, problems = completed(current, incoming, scope, today)
            if problems:
                raise _refused(problems)
            return result

        return edit

    def _opened(self, sections: DirectorySections) -> DirectorySections:
        """Codes sealed by an export (`enc:<token>`) opened, so they compare equal to the stored ones."""
        residents = tuple(
            r.model_copy(update={"key_safe_code": SecretStr(self._cipher.open(code, whose=r.id))})
            if (code := _code(r)) is not None and code.startswith(SEALED)
            else r
            for r in sections.residents
        )
        return sections.model_copy(update={"residents": residents})

    def _change_problems(self, sections: DirectorySections, changes: ChangeSet) -> list[Problem]:
        problems: list[Problem] = []
        positions = {kind: {e.id: n for n, e in enumerate(getattr(sections, kind))} for kind in KINDS}
        for change in changes.changes:
            if change.verb == "removed" and change.kind in LASTING:
                code = "resident_not_removed" if change.kind == "residents" else "device_not_removed"
                problems.append(problem((change.kind,), code, id=repr(change.id)))
            secret_changed = _code(change.after) != _code(change.before) and _code(change.after) is not None
            if change.kind == "residents" and secret_changed and not self._cipher.configured:
                n = positions["residents"][change.id]
                problems.append(problem(("residents", n, "key_safe_code"), "key_safe_needs_key"))
        return problems

    def commit(self, plan: Plan) -> ChangeSet:
        """Write `plan` in one transaction (on the store's writer thread); `StaleDirectoryError` if the
        directory changed since it was planned."""
        if not plan.changes and plan.current == plan.sections:
            return plan.changes
        with self._incidents.transaction() as session:
            if _revision(session) != plan.revision:
                raise StaleDirectoryError("the directory changed while this change was being checked")
            now = self._incidents.now()
            for kind in KINDS:
                if _ids(plan.current, kind) != _ids(plan.sections, kind) or any(
                    c.kind == kind for c in plan.changes.changes
                ):
                    self._write_kind(session, kind, plan, now)
            self._audit(session, plan, now)
        return plan.changes

    def _write_kind(self, session: Session, kind: Kind, plan: Plan, now: Any) -> None:
        table = TABLES[kind]
        rows = {row.id: row for row in session.scalars(select(table))}
        changed = {c.id: c for c in plan.changes.changes if c.kind == kind}
        for position, entry in enumerate(getattr(plan.sections, kind)):
            row = rows.get(entry.id)
            if row is None:
                row = table(id=entry.id)
                session.add(row)
            if row.position != position:
                row.position = position
            change = changed.get(entry.id)
            if change is None and row.body is not None:
                continue
            row.body = body_of(entry)
            for column, value in _columns(kind, entry).items():
                setattr(row, column, value)
            if kind not in LASTING:
                row.removed_at = None
            if kind == "residents" and _code(change.before if change else None) != (code := _code(entry)):
                row.key_safe = None if code is None else self._cipher.seal(code)
            row.updated_at = now
        for change in changed.values():
            if change.verb == "removed":
                rows[change.id].removed_at = now
                rows[change.id].updated_at = now

    def _audit(self, session: Session, plan: Plan, now: Any) -> None:
        trail = self._incidents.audit
        entries: list[tuple[AuditEntry, Change]] = []
        for change in plan.changes.changes:
            entry = trail.append(
                session,
                at=now,
                actor=plan.actor,
                action=f"directory.{SINGULAR[change.kind]}.{change.verb}",
                details=change.details(),
            )
            entries.append((entry, change))
        if plan.source is not None:
            trail.append(
                session,
                at=now,
                actor=plan.actor,
                action="directory.imported",
                details={"source": plan.source, "changes": plan.changes.as_json()},
            )
        session.flush()
        session.add_all(
            DirectoryHistory(audit_id=entry.id, kind=SINGULAR[change.kind], entity_id=change.id)
            for entry, change in entries
        )

    def apply_now(
        self, change: DirectorySections | Edit, actor: str, *, source: str | None = None
    ) -> ChangeSet:
        """Plan and commit on the calling thread: for the command line and start-up, where no other
        thread writes to the store."""
        return self.commit(self.plan(change, actor, source=source))

    async def apply(
        self, change: DirectorySections | Edit, actor: str, *, source: str | None = None
    ) -> tuple[ChangeSet, DirectorySections]:
        """Validate on a reader thread, write on the store's writer (yielding to alarms), then tell the
        listeners. Planned again if another change came first."""
        for _ in range(5):
            plan = await self._service.read(self.plan, change, actor, source=source)
            try:
                changes = await self._service.bookkeeping(self.commit, plan)
            except StaleDirectoryError:
                continue
            if changes:
                await self._tell(plan.sections)
            return changes, plan.sections
        raise StaleDirectoryError("the directory kept changing; try again")

    async def _tell(self, sections: DirectorySections) -> None:
        for listener in self._listeners:
            try:
                await listener(sections)
            except Exception:
                log.exception("directory listener failed")

    def seed(self, config: CarelineConfig) -> ChangeSet | None:
        """On first start, the directory of the configuration file, audited as imported from it; None
        when the database already holds the directory (it is the directory from then on)."""
        if not self.is_empty():
            return None
        name = PurePath(config.source).name if config.source else "configuration"
        return self.apply_now(DirectorySections.of(config), f"import:{name}", source=name)

    def reveal_key_safe(self, resident_id: str, actor: str, scope: Scope = None) -> str | None:
        """The key-safe code of a resident, for a responder at the door; every reveal is audited."""
        with self._incidents.transaction() as session:
            row = session.get(DirectoryResident, resident_id)
            if row is None or row.key_safe is None or (scope is not None and row.site not in scope):
                return None
            code = self._cipher.open(row.key_safe, whose=resident_id)
            entry = self._incidents.audit.append(
                session,
                at=self._incidents.now(),
                actor=actor_name(actor),
                action="directory.resident.key_safe_revealed",
                details={"kind": "resident", "id": resident_id},
            )
            session.flush()
            session.add(DirectoryHistory(audit_id=entry.id, kind="resident", entity_id=resident_id))
            return code

    def record(
        self, session: Session, *, kind: str, entity_id: str, actor: str, action: str, details: dict[str, Any]
    ) -> None:
        """An audited change of something kept beside the directory (a user), with its history row;
        within the caller's transaction."""
        entry = self._incidents.audit.append(
            session, at=self._incidents.now(), actor=actor_name(actor), action=action, details=details
        )
        session.flush()
        session.add(DirectoryHistory(audit_id=entry.id, kind=kind, entity_id=entity_id))


def _refused(problems: list[Problem]) -> InvalidInputError:
    lines = [f"  {p.where()}: {p.message}" for p in problems]
    return InvalidInputError("invalid directory:\n" + "\n".join(lines), problems)


def _code(entry: BaseModel | None) -> str | None:
    secret = getattr(entry, "key_safe_code", None)
    return secret.get_secret_value() if isinstance(secret, SecretStr) else None


def _ids(sections: DirectorySections, kind: Kind) -> list[str]:
    return [entry.id for entry in getattr(sections, kind)]


def _live(kind: Kind) -> Select[Any]:
    table = TABLES[kind]
    query = select(table)
    return query if kind in LASTING else query.where(table.removed_at.is_(None))


def _revision(session: Session) -> int:
    return session.scalar(select(func.max(DirectoryHistory.audit_id))) or 0


def _shown(kind: Kind, row: Any) -> dict[str, Any]:
    """An entry as a list or form shows it: its body, and only whether a key-safe code is kept."""
    shown = dict(row.body)
    if kind == "residents":
        shown["has_key_safe_code"] = row.key_safe is not None
    return shown


def _exported(kind: Kind, row: Any) -> dict[str, Any]:
    body = dict(row.body)
    if kind == "residents" and row.key_safe is not None:
        body["key_safe_code"] = SEALED + row.key_safe
    return body


def _covers(kind: Kind, row: Any, scope: Scope) -> bool:
    """Whether a user who sees `scope` sees this row: entries of their sites, and responders and policies
    that cover every site or one of theirs."""
    if scope is None:
        return True
    if kind == "sites":
        return bool(row.id in scope)
    if kind in LASTING:
        return bool(row.site in scope)
    sites: Iterable[str] = row.body.get("sites", ()) if kind == "responders" else row.body["match"]["sites"]
    sites = tuple(sites)
    return not sites or bool(scope & set(sites))
