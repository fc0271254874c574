"""SQL the reports share, written once per dialect where the dialects differ."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Float, String, and_, false, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from gateway.incidents.schema import Incident


class epoch_seconds(FunctionElement[float]):  # noqa: N801 - reads as the SQL function it stands for
    """Seconds since 1970 of a UTC timestamp column, as a float: what durations are computed from."""

    type = Float()
    inherit_cache = True


@compiles(epoch_seconds)
def _epoch_default(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    return f"EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})"


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    # SQLite keeps the store's UTC times as text; julianday() reads them, day 2440587.5 is 1970-01-01.
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def acted_by(column: ColumnElement[String] | Any, actor: str) -> ColumnElement[bool]:
    """`column` names `actor`: exactly ("user:li") or with the channel it answered through
    ("responder:r1 via sms" is responder:r1)."""
    return or_(column == actor, column.like(f"{escape_like(actor)} via %", escape="\\"))


def in_sites(sites: frozenset[str] | None) -> ColumnElement[bool] | None:
    """The condition keeping incidents of `sites` (None: every site, no condition)."""
    if sites is None:
        return None
    if not sites:
        return false()
    return Incident.site.in_(sorted(sites))


def all_of(*conditions: ColumnElement[bool] | None) -> ColumnElement[bool]:
    return and_(*(c for c in conditions if c is not None))
