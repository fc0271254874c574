"""The incident store the tests run on: SQLite files, or PostgreSQL (`CARELINE_TEST_STORE=postgresql`).

Every test builds its store's URL with `store_url(path)`: on SQLite the file at `path`; on PostgreSQL a
fresh database of this worker's server (one per pytest process, started on first use), the same one for
the same path within a test (a gateway restarted on "its file" finds its data), dropped after the test
(tests/conftest.py). `store_rows` reads rows back on either backend.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from services import PostgreSQL
from sqlalchemy import Row, create_engine, text

BACKENDS = ("sqlite", "postgresql")
#: The backend of this run; `make test` runs the suite once on each.
BACKEND = os.environ.get("CARELINE_TEST_STORE", "sqlite")
if BACKEND not in BACKENDS:
    raise RuntimeError(f"CARELINE_TEST_STORE={BACKEND!r}: expected one of {', '.join(BACKENDS)}")
POSTGRESQL = BACKEND == "postgresql"
SQLITE = BACKEND == "sqlite"

_server: PostgreSQL | None = None
#: The databases the running test made: path → database name.
_databases: dict[str, str] = {}


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
    return server().url_of(name)


def drop_databases() -> None:
    """Drop the databases of the test that just ended (the conftest calls this after each test)."""
    while _databases:
        _path, name = _databases.popitem()
        server().drop_database(name)


def stop_server() -> None:
    global _server
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


def only_sqlite(reason: str) -> pytest.MarkDecorator:
    """Skip on PostgreSQL: the test is about SQLite itself (`reason` names what)."""
    return pytest.mark.skipif(POSTGRESQL, reason=f"SQLite only: {reason}")


def only_postgresql(reason: str) -> pytest.MarkDecorator:
    """Skip on SQLite: the PostgreSQL counterpart of a SQLite-only test (`reason` names what)."""
    return pytest.mark.skipif(SQLITE, reason=f"PostgreSQL only: {reason}")
