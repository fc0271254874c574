"""The incident store the tests run on: SQLite files, or PostgreSQL (`CARELINE_TEST_STORE=postgresql`).

Every test builds its store's URL with `store_url(path)`: on SQLite the file at `path`; on PostgreSQL a
fresh database of this worker's server (one per pytest process, started on first use), the same one for
the same path within a test (a gateway restarted on "its file" finds its data), dropped after the test
(tests/conftest.py). `store_rows` reads rows back on either backend.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from services import PostgreSQL
from sqlalchemy import Connection, Row, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool as _NullPool

BACKENDS = ("sqlite", "postgresql")
#: The backend of this run; `make test` runs the suite once on each.
BACKEND = os.environ.get("CARELINE_TEST_STORE", "sqlite")
if BACKEND not in BACKENDS:
    raise RuntimeError(f"CARELINE_TEST_STORE={BACKEND!r}: expected one of {', '.join(BACKENDS)}")
POSTGRESQL = BACKEND == "postgresql"
SQLITE = BACKEND == "sqlite"

_server: PostgreSQL | None = None
#: The databases made so far: path → database name.
_databases: dict[str, str] = {}
#: Those of them the running test made (dropped after it); the others were made by fixtures of a wider
#: scope (a module's gateway) and live until the session ends.
_of_this_test: set[str] = set()
_in_test = False


def server() -> PostgreSQL:
    """This process's PostgreSQL, started on first use and stopped at the end of the session."""
    global _server
    if _server is None:
        started = PostgreSQL()
        started.__enter__()
        _server = started
    return _server


def store_url(path: Path | str) -> str:
    """The store URL a test uses where a SQLite run uses the file `path`."""
    if SQLITE:
        return f"sqlite:///{path}"
    key = str(Path(path).resolve())
    name = _databases.get(key)
    if name is None:
        # Database names are at most 63 bytes; the path's digest keeps them unique within the session.
        name = "t_" + hashlib.sha256(f"{os.getpid()}:{key}".encode()).hexdigest()[:24]
        server().create_database(name)
        _databases[key] = name
        if _in_test:
            _of_this_test.add(key)
    return server().url_of(name)


def test_starts() -> None:
    """From here on, databases made are the test's own (the conftest calls this before each test,
    after the fixtures of wider scopes are set up)."""
    global _in_test
    _in_test = True


def test_ended() -> None:
    """Drop the databases of the test that just ended."""
    global _in_test
    _in_test = False
    while _of_this_test:
        name = _databases.pop(_of_this_test.pop())
        server().drop_database(name)


def stop_server() -> None:
    """At the end of the session; the server goes with every database on it."""
    global _server
    _databases.clear()
    if _server is not None:
        _server.cleanup()
        _server = None


def store_rows(url: str, sql: str, **params: Any) -> list[Row[Any]]:
    """Rows of a plain SQL query on the store at `url`, through its own short-lived engine."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql), params))
    finally:
        engine.dispose()


def store_execute(url: str, sql: str, **params: Any) -> int:
    """Run one statement on the store at `url` and commit; the number of rows it touched."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            return connection.execute(text(sql), params).rowcount
    finally:
        engine.dispose()


def store_bytes(url: str, path: Path) -> bytes:
    """Everything the store holds, to search for what it must not: on SQLite the database file and its
    WAL as they lie on disk; on PostgreSQL a plain dump of the database (values decompressed)."""
    if SQLITE:
        return b"".join(part.read_bytes() for part in sorted(path.parent.glob(path.name + "*")))
    return server().dump(make_url(url).database or "")


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def disable_append_only(url: str) -> None:
    """What a tamperer with the database owner's rights does first: turn off the triggers that refuse
    UPDATE and DELETE on the audit log (two on SQLite, one on PostgreSQL)."""
    if POSTGRESQL:
        store_execute(url, "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    else:
        store_execute(url, "DROP TRIGGER audit_log_no_update")
        store_execute(url, "DROP TRIGGER audit_log_no_delete")


class WriteBlocker:
    """Another connection holding the store's write lock, as a stuck backup or admin tool would: on
    SQLite the database's one write lock (`BEGIN IMMEDIATE`, readers go on in WAL mode), on PostgreSQL
    an EXCLUSIVE lock on every table (readers go on, every writer waits). `release()` rolls back."""

    def __init__(self, url: str) -> None:
        self._sqlite: sqlite3.Connection | None = None
        self._postgresql: Connection | None = None
        if POSTGRESQL:
            self._engine = create_engine(url, poolclass=_NullPool)
            connection = self._engine.connect()
            tables = connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ).scalars()
            quoted = ", ".join(f'"{name}"' for name in tables)
            connection.execute(text(f"LOCK TABLE {quoted} IN EXCLUSIVE MODE"))
            self._postgresql = connection
        else:
            self._sqlite = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            self._sqlite.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("ROLLBACK")
            self._sqlite.close()
            self._sqlite = None
        if self._postgresql is not None:
            self._postgresql.rollback()
            self._postgresql.close()
            self._postgresql = None
            self._engine.dispose()


@contextmanager
def writes_blocked(url: str) -> Iterator[None]:
    blocker = WriteBlocker(url)
    try:
        yield
    finally:
        blocker.release()


def only_sqlite(reason: str) -> pytest.MarkDecorator:
    """Skip on PostgreSQL: the test is about SQLite itself (`reason` names what)."""
    return pytest.mark.skipif(POSTGRESQL, reason=f"SQLite only: {reason}")
