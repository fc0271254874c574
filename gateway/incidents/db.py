"""Engine set-up: SQLite tuned for durability first, PostgreSQL as is."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.engine import make_url

READ_ONLY = "careline_read_only"
RELAXED = "careline_relaxed_durability"


def with_driver(url: str) -> str:
    """`postgresql://…` (or `postgres://…`) with no driver named means psycopg 3, the one Careline ships;
    SQLAlchemy alone would pick psycopg2, which is not installed."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url.removeprefix(bare)
    return url


def make_engine(url: str, *, busy_timeout_s: float = 30.0) -> Engine:
    url = with_driver(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        # The busy timeout's meaning on PostgreSQL: a statement waiting longer than this for a lock
        # another session holds fails (and the alarm lane retries it), instead of waiting forever.
        lock_timeout_ms = max(1, round(busy_timeout_s * 1000))
        engine = create_engine(
            url, pool_pre_ping=True, connect_args={"options": f"-c lock_timeout={lock_timeout_ms}"}
        )
        event.listen(engine, "before_cursor_execute", _postgresql_text_without_nul, retval=True)
        return engine
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s, "check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", _sqlite_begin_immediate)
    return engine


#: PostgreSQL advisory lock key held while one instance migrates and seeds the store ("CLSETUP").
SETUP_LOCK = 0x434C5345545550


@contextmanager
def setting_up(engine: Engine) -> Iterator[None]:
    """Several instances started together on one PostgreSQL store: one at a time migrates it and seeds
    its directory; the others wait, then find it done. (SQLite: one gateway per file; nothing to do.)"""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as connection:
        connection.execute(select(func.pg_advisory_lock(SETUP_LOCK)))
        connection.commit()
        try:
            yield
        finally:
            connection.execute(select(func.pg_advisory_unlock(SETUP_LOCK)))
            connection.commit()


def sqlite_directory(url: str) -> Path | None:
    """The directory of a SQLite database file; None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).parent


#: PostgreSQL's text cannot hold NUL; what a hostile form, payload or login sends with one is kept (or
#: looked up) with the replacement character instead of failing the whole statement.
_NUL, _REPLACEMENT = "\x00", "\ufffd"


def _without_nul(parameters: Any) -> Any:
    if isinstance(parameters, dict):
        if not any(isinstance(v, str) and _NUL in v for v in parameters.values()):
            return parameters
        return {k: v.replace(_NUL, _REPLACEMENT) if isinstance(v, str) else v for k, v in parameters.items()}
    if isinstance(parameters, list | tuple):
        if not any(isinstance(v, dict | list | tuple | str) for v in parameters):
            return parameters
        cleaned = [
            v.replace(_NUL, _REPLACEMENT) if isinstance(v, str) else _without_nul(v) for v in parameters
        ]
        return type(parameters)(cleaned)
    return parameters


def _postgresql_text_without_nul(
    _connection: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
) -> tuple[str, Any]:
    return statement, _without_nul(parameters)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling defers BEGIN; we emit our own (see below).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed incident survives power loss, not only a process crash.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    if connection.get_execution_options().get(READ_ONLY):
        # Readers take no lock: in WAL mode they never wait for (nor delay) the alarm path's commits.
        connection.exec_driver_sql("BEGIN")
        return
    # FULL: a committed alarm survives power loss. Escalation bookkeeping may use NORMAL (no fsync of its
    # own; the next FULL commit carries it to disk): after a power cut a notification may be sent twice,
    # and the alarm path never waits for a bookkeeping fsync.
    relaxed = connection.get_execution_options().get(RELAXED)
    connection.exec_driver_sql(f"PRAGMA synchronous={'NORMAL' if relaxed else 'FULL'}")
    # Writers take the write lock up front: upgrading a read transaction later fails at once with
    # "database is locked" instead of waiting for the busy timeout.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def relaxed(engine: Engine) -> Engine:
    """The same pool, for writes that may skip their own fsync (escalation bookkeeping)."""
    return engine.execution_options(**{RELAXED: True})


def read_only(engine: Engine) -> Engine:
    """The same pool, for reads: on SQLite they begin a plain (deferred) transaction."""
    return engine.execution_options(**{READ_ONLY: True})
