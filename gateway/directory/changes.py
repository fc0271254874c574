"""What a new directory changes: entries added, changed and retired, per kind, with before and after.

An import lists whole kinds; `completed` turns what it leaves out into retirements, never deletions: a
device left out is retired, a resident left out is discharged (their rows and history stay), and a site,
responder or policy left out is withdrawn. A user who sees only some sites changes only those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel

from common.errors import Problem
from gateway.catalogue import Language, text
from gateway.config import DeviceConfig, ResidentConfig
from gateway.directory.sections import DirectorySections
from gateway.references import problem

Kind = Literal["sites", "residents", "devices", "responders", "policies"]
KINDS: tuple[Kind, ...] = ("sites", "residents", "devices", "responders", "policies")
#: The word for one entry of a kind, in audit actions (`directory.device.retired`) and history.
SINGULAR: dict[Kind, str] = {
    "sites": "site",
    "residents": "resident",
    "devices": "device",
    "responders": "responder",
    "policies": "policy",
}
Verb = Literal["added", "changed", "retired", "discharged", "removed"]
#: None: every site.
Scope = frozenset[str] | None
SECRET_FIELDS = frozenset({"key_safe_code"})


@dataclass(frozen=True, slots=True)
class Change:
    kind: Kind
    id: str
    verb: Verb
    before: BaseModel | None
    after: BaseModel | None

    def details(self) -> dict[str, Any]:
        """What the audit trail keeps: the fields that changed (all of them for a new entry), before and
        after; a secret only as the fact that it was set, changed or removed."""
        old = _plain(self.before)
        new = _plain(self.after)
        keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
        details: dict[str, Any] = {"kind": SINGULAR[self.kind], "id": self.id}
        if self.before is not None:
            details["before"] = {k: old[k] for k in keys if k in old}
        if self.after is not None:
            details["after"] = {k: new[k] for k in keys if k in new}
        secrets = {name: how for name in SECRET_FIELDS if (how := _secret_change(self, name))}
        if secrets:
            details["secrets"] = secrets
        return details


def _plain(entry: BaseModel | None) -> dict[str, Any]:
    return {} if entry is None else entry.model_dump(mode="json", exclude=set(SECRET_FIELDS))


def _secret_change(change: Change, name: str) -> str | None:
    old = getattr(change.before, name, None)
    new = getattr(change.after, name, None)
    if old == new:
        return None
    return "set" if old is None else "removed" if new is None else "changed"


@dataclass(frozen=True, slots=True)
class ChangeSet:
    changes: tuple[Change, ...] = ()
    #: Problems that do not stop the change but that the person applying it should see.
    notes: tuple[Problem, ...] = field(default=())

    def __bool__(self) -> bool:
        return bool(self.changes)

    def of(self, kind: Kind) -> dict[str, list[str]]:
        counts: dict[str, list[str]] = {"added": [], "changed": [], "removed": []}
        for change in self.changes:
            if change.kind == kind:
                counts[_bucket(change.verb)].append(change.id)
        return counts

    def summary(self, language: Language = "en") -> list[str]:
        """One line per kind, e.g. "devices: 12 added, 3 changed, 0 retired"."""
        lines = []
        for kind in KINDS:
            counts = self.of(kind)
            lines.append(
                text(
                    f"directory.summary.{kind}",
                    language,
                    added=len(counts["added"]),
                    changed=len(counts["changed"]),
                    removed=len(counts["removed"]),
                )
            )
        return lines

    def as_json(self) -> dict[str, Any]:
        return {kind: self.of(kind) for kind in KINDS}


def _bucket(verb: Verb) -> str:
    return verb if verb in ("added", "changed") else "removed"


def diff(old: DirectorySections, new: DirectorySections) -> ChangeSet:
    changes: list[Change] = []
    for kind in KINDS:
        before = {entry.id: entry for entry in getattr(old, kind)}
        after = {entry.id: entry for entry in getattr(new, kind)}
        for entry_id, entry in after.items():
            previous = before.get(entry_id)
            if previous is None:
                changes.append(Change(kind, entry_id, "added", None, entry))
            elif previous != entry:
                changes.append(Change(kind, entry_id, _verb_of(previous, entry), previous, entry))
        changes += [Change(kind, i, "removed", e, None) for i, e in before.items() if i not in after]
    return ChangeSet(tuple(changes))


def _verb_of(before: BaseModel, after: BaseModel) -> Verb:
    if isinstance(after, DeviceConfig) and isinstance(before, DeviceConfig):
        return "retired" if after.state == "retired" and before.state != "retired" else "changed"
    if isinstance(after, ResidentConfig) and isinstance(before, ResidentConfig):
        return "discharged" if not after.active and before.active else "changed"
    return "changed"


@dataclass(frozen=True, slots=True)
class Incoming:
    """An import: the kinds it lists (None: the kind is left as it is), each in full."""

    sites: tuple[Any, ...] | None = None
    residents: tuple[ResidentConfig, ...] | None = None
    devices: tuple[DeviceConfig, ...] | None = None
    responders: tuple[Any, ...] | None = None
    policies: tuple[Any, ...] | None = None
    #: The fields the file has a place for (a CSV's columns); None: every field (a YAML file). An entry
    #: already in the directory keeps what the file cannot say: its visit plans, daily call, photo.
    carries: frozenset[str] | None = None

    def kinds(self) -> list[Kind]:
        return [kind for kind in KINDS if getattr(self, kind) is not None]


def completed(
    current: DirectorySections, incoming: Incoming, scope: Scope, today: Callable[[str], date]
) -> tuple[DirectorySections, list[Problem]]:
    """The directory after `incoming`, and the problems of scope (an entry of a site the user may not
    touch). `today(site)` is the site's local date, the date of a discharge."""
    problems: list[Problem] = []
    update: dict[str, tuple[Any, ...]] = {}
    for kind in incoming.kinds():
        listed: tuple[Any, ...] = getattr(incoming, kind)
        if scope is not None and kind not in ("residents", "devices"):
            problems.append(problem((kind,), "kind_needs_every_site", kind=kind))
            continue
        problems += _out_of_scope(kind, listed, scope)
        stored = getattr(current, kind)
        if incoming.carries is not None:
            listed = _keeping_the_rest(listed, stored, incoming.carries)
        update[kind] = (*listed, *_left_out(kind, stored, listed, scope, today))
    return current.model_copy(update=update), problems


def _keeping_the_rest(
    listed: Sequence[Any], stored: Iterable[Any], carries: frozenset[str]
) -> tuple[Any, ...]:
    """Each listed entry already in the directory, with the fields the file does not carry taken from
    the stored one: a residents' CSV has no column for visit plans, and must not wipe them."""
    before = {entry.id: entry for entry in stored}
    kept = []
    for entry in listed:
        old = before.get(entry.id)
        if old is not None:
            rest = {name: getattr(old, name) for name in type(old).model_fields if name not in carries}
            entry = entry.model_copy(update=rest)
        kept.append(entry)
    return tuple(kept)


def _out_of_scope(kind: Kind, listed: Sequence[Any], scope: Scope) -> list[Problem]:
    if scope is None:
        return []
    return [
        problem((kind, n, "site"), "site_not_yours", site=repr(entry.site))
        for n, entry in enumerate(listed)
        if entry.site not in scope
    ]


def _left_out(
    kind: Kind, stored: Iterable[Any], listed: Sequence[Any], scope: Scope, today: Callable[[str], date]
) -> list[Any]:
    """What `listed` leaves out of `stored`: retired or discharged (residents, devices), or dropped from
    the directory (sites, responders, policies: their rows are kept, withdrawn)."""
    named = {entry.id for entry in listed}
    kept: list[Any] = []
    for entry in stored:
        if entry.id in named or kind not in ("residents", "devices"):
            continue
        if scope is not None and entry.site not in scope:
            kept.append(entry)
        elif isinstance(entry, DeviceConfig):
            kept.append(entry if entry.state == "retired" else entry.model_copy(update={"state": "retired"}))
        elif isinstance(entry, ResidentConfig):
            kept.append(entry if not entry.active else _discharged(entry, today(entry.site)))
    return kept


def _discharged(resident: ResidentConfig, on: date) -> ResidentConfig:
    return resident.model_copy(update={"status": "discharged", "discharged_on": on})
