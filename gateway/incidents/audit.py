"""The tamper-evident audit trail: rows are only ever appended, each hash covering the one before.

Changing or deleting a row breaks every later hash, which `verify_chain` reports. The database refuses
UPDATE and DELETE on the table as well (triggers created by the migration).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.incidents.schema import AuditEntry

GENESIS = "0" * 64
#: The PostgreSQL advisory lock key of the audit chain's tail ("CLAUDIT" in ASCII, arbitrary but fixed).
AUDIT_TAIL_LOCK = 0x434C4155444954


def entry_hash(
    prev_hash: str, at: datetime, actor: str, action: str, incident_id: int | None, details: dict[str, Any]
) -> str:
    canonical = json.dumps(
        {
            "prev": prev_hash,
            "at": at.isoformat(),
            "actor": actor,
            "action": action,
            "incident": incident_id,
            "details": details,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class AuditTrail:
    """Appends within the caller's transaction; one writer at a time (the store's single thread)."""

    def __init__(self) -> None:
        self._last_hash: str | None = None
        # The tail is read once per transaction, under its write lock: another process (`careline
        # directory import`, a second gateway) may have appended since our last commit.
        self._tail_session: Session | None = None

    def append(
        self,
        session: Session,
        *,
        at: datetime,
        actor: str,
        action: str,
        incident_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        prev = self._previous_hash(session)
        body = details or {}
        entry = AuditEntry(
            at=at,
            actor=actor,
            action=action,
            incident_id=incident_id,
            details=body,
            prev_hash=prev,
            hash=entry_hash(prev, at, actor, action, incident_id, body),
        )
        session.add(entry)
        self._last_hash = entry.hash
        return entry

    def forget_cache(self) -> None:
        """Call after a rollback: the cached tail hash may belong to a row that was never written."""
        self._last_hash, self._tail_session = None, None

    def _previous_hash(self, session: Session) -> str:
        if self._tail_session is not session:
            self._tail_session, self._last_hash = session, None
        if self._last_hash is None:
            if session.get_bind().dialect.name == "postgresql":
                # SQLite's BEGIN IMMEDIATE already serialises writers. On PostgreSQL several instances
                # write at once: the chain's tail is read and extended under one lock, held until commit,
                # so two transactions can never both extend the same tail (a fork in the chain).
                session.execute(select(func.pg_advisory_xact_lock(AUDIT_TAIL_LOCK)))
            last = session.scalar(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1))
            self._last_hash = last or GENESIS
        return self._last_hash


@dataclass(frozen=True, slots=True)
class ChainBreak:
    entry: AuditEntry
    #: Entries before it that verified.
    intact_before: int
    reason: str


def verify_chain(entries: Iterable[AuditEntry]) -> int | None:
    """The id of the first entry whose hash does not match, or None when the chain is intact."""
    found = find_break(entries)
    return found.entry.id if isinstance(found, ChainBreak) else None


def find_break(entries: Iterable[AuditEntry]) -> ChainBreak | int:
    """The first broken link, or the number of entries when the chain is intact."""
    prev, count = GENESIS, 0
    for entry in entries:
        if entry.prev_hash != prev:
            return ChainBreak(entry, count, "the entry before it was removed or changed")
        expected = entry_hash(prev, entry.at, entry.actor, entry.action, entry.incident_id, entry.details)
        if entry.hash != expected:
            return ChainBreak(entry, count, "its contents were changed after it was written")
        prev, count = entry.hash, count + 1
    return count
