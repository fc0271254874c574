"""A bounded on-disk FIFO of line-protocol points, kept while the telemetry server is unreachable.

One SQLite file (WAL) in the spool directory, one row per point: rowids grow, so ``ORDER BY id`` is the
order points arrived in, and replay is `peek` the oldest, write them, `ack` their ids. Rows, not whole
batches, so the cap can drop exactly the oldest points. Past `max_points` the OLDEST points go: after a
long outage the recent readings are the ones worth having. Drops are counted in the file itself, so the
total survives restarts like the points do.

Not thread-safe by design: the writer uses a spool from its single worker thread only. `count` and
`dropped_total` are plain attributes, safe to read from elsewhere for status pages.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SPOOL_FILENAME = "telemetry-spool.sqlite3"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS points (id INTEGER PRIMARY KEY, line TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)


@dataclass(frozen=True, slots=True)
class SpooledPoint:
    id: int
    line: str


class Spool:
    def __init__(self, directory: Path, max_points: int) -> None:
        if max_points < 1:
            raise ValueError("max_points must be at least 1")
        self.max_points = max_points
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / SPOOL_FILENAME
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # WAL + synchronous=NORMAL: a crash of the process loses nothing committed; a power cut may lose
        # the last moments of spooled telemetry, which is the right price for not fsyncing every batch.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self.count: int = self._db.execute("SELECT COUNT(*) FROM points").fetchone()[0]
        row = self._db.execute("SELECT value FROM meta WHERE key = 'dropped_total'").fetchone()
        self.dropped_total: int = row[0] if row else 0

    def push(self, lines: Sequence[str]) -> int:
        """Append points at the new end; returns how many of the oldest were dropped to stay in bounds."""
        if not lines:
            return 0
        # A push larger than the whole spool keeps only its own newest points.
        kept = lines[-self.max_points :]
        dropped = len(lines) - len(kept)
        excess = max(0, self.count + len(kept) - self.max_points)
        with self._transaction():
            self._db.executemany("INSERT INTO points (line) VALUES (?)", ((line,) for line in kept))
            if excess:
                self._db.execute(
                    "DELETE FROM points WHERE id IN (SELECT id FROM points ORDER BY id LIMIT ?)", (excess,)
                )
            dropped += excess
            if dropped:
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('dropped_total', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                    (dropped,),
                )
        self.count += len(kept) - excess
        if dropped:
            self.dropped_total += dropped
            log.warning(
                "telemetry spool full (%d points): dropped the %d oldest (%d dropped in total)",
                self.max_points,
                dropped,
                self.dropped_total,
            )
        return dropped

    def peek(self, n: int) -> list[SpooledPoint]:
        """The `n` oldest points, oldest first; they stay spooled until `ack`."""
        rows = self._db.execute("SELECT id, line FROM points ORDER BY id LIMIT ?", (n,)).fetchall()
        return [SpooledPoint(id, line) for id, line in rows]

    def ack(self, ids: Sequence[int]) -> None:
        """Forget points that were written (or refused for good)."""
        if not ids:
            return
        with self._transaction():
            before = self._db.total_changes
            self._db.executemany("DELETE FROM points WHERE id = ?", ((id,) for id in ids))
            removed = self._db.total_changes - before
        self.count -= removed

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on error (autocommit mode otherwise commits per statement)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
