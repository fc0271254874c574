"""Sensor-log reads over InfluxQL (``/query``), the read path InfluxDB 1.x, 2.x (DBRP) and 3.x all serve.

Queries are built here from typed arguments, never from caller-supplied InfluxQL:

* identifiers (measurement, tag keys) must be plain names (``[A-Za-z_][A-Za-z0-9_]*``, anything else
  is refused) and are double-quoted anyway;
* filter values are string literals: normalised exactly as tag values are at write time (so they match
  what was stored), then single-quoted with backslash escapes for ``\\`` and ``'``; after the
  normalisation no control character is left, so nothing else needs escaping;
* times are RFC 3339 literals from timezone-aware datetimes; the aggregation window is a checked duration.

A hostile filter such as ``x' OR 1=1 --`` therefore matches the tag value ``x' OR 1=1 --``, and nothing
else; ``x'; DROP DATABASE d`` cannot become a second statement.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx

from common.errors import CarelineError
from devices.model import EventKind
from gateway.telemetry.config import TelemetryConfig
from gateway.telemetry.points import TAG_KEYS, VALUE_FIELD, clean_tag_value

Aggregate = Literal["mean", "count", "min", "max"]
AGGREGATES: frozenset[str] = frozenset({"mean", "count", "min", "max"})
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_DURATION = re.compile(r"^[1-9][0-9]{0,5}(s|m|h|d|w)$")
_FILTER_MAX_CHARS = 1024
MAX_ROWS = 100_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Cells a spreadsheet would run as a formula (CSV injection); text starting so gets a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = ("time", *TAG_KEYS, "value")


class TelemetryQueryError(CarelineError):
    """The sensor log could not be read (server unreachable, or it refused the query)."""


@dataclass(frozen=True, slots=True)
class SensorFilter:
    """Which series to read; None means any. Values are matched exactly (after tag normalisation)."""

    site: str | None = None
    room: str | None = None
    resident: str | None = None
    device: str | None = None
    device_type: str | None = None

    def items(self) -> list[tuple[str, str]]:
        pairs = [(key, getattr(self, key)) for key in TAG_KEYS]
        return [(key, value) for key, value in pairs if value is not None]


@dataclass(frozen=True, slots=True)
class SensorRow:
    """One reading (raw) or one window (aggregated, `time` = window start)."""

    time: datetime
    #: The exact timestamp; `time` is only microsecond-precise.
    time_ns: int
    value: float | bool | str | None
    tags: Mapping[str, str] = field(default_factory=dict)


# --- query building (pure functions; the property tests aim at these) -----------------------------------


def quote_identifier(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')  # no-op after the check; kept as the rule
    return f'"{escaped}"'


def quote_literal(value: str) -> str:
    if not value:
        raise ValueError("an empty filter value would match series without the tag; give None instead")
    if len(value) > _FILTER_MAX_CHARS:
        raise ValueError(f"filter value longer than {_FILTER_MAX_CHARS} characters")
    cleaned = clean_tag_value(value)
    return "'" + cleaned.replace("\\", "\\\\").replace("'", "\\'") + "'"


def time_literal(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("give timezone-aware datetimes (a naive time is ambiguous)")
    return "'" + moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"


def _where(filters: SensorFilter, start: datetime, end: datetime) -> str:
    clauses = [f"time >= {time_literal(start)}", f"time < {time_literal(end)}"]
    if start >= end:
        raise ValueError("start must be before end")
    clauses += [f"{quote_identifier(key)} = {quote_literal(value)}" for key, value in filters.items()]
    return " AND ".join(clauses)


def build_raw_query(
    measurement: EventKind | str, filters: SensorFilter, start: datetime, end: datetime, limit: int
) -> str:
    if not 1 <= limit <= MAX_ROWS:
        raise ValueError(f"limit must be between 1 and {MAX_ROWS}")
    columns = ", ".join(quote_identifier(name) for name in (VALUE_FIELD, *TAG_KEYS))
    return (
        f"SELECT {columns} FROM {quote_identifier(str(measurement))} "
        f"WHERE {_where(filters, start, end)} ORDER BY time ASC LIMIT {limit}"
    )


def build_aggregate_query(
    measurement: EventKind | str,
    filters: SensorFilter,
    start: datetime,
    end: datetime,
    every: str,
    fn: Aggregate,
    by: Sequence[str] = (),
) -> str:
    if fn not in AGGREGATES:
        raise ValueError(f"fn must be one of {sorted(AGGREGATES)}")
    if not _DURATION.fullmatch(every):
        raise ValueError("every must be a duration such as 30s, 1m, 15m, 1h, 1d")
    unknown = [key for key in by if key not in TAG_KEYS]
    if unknown:
        raise ValueError(f"can only group by {', '.join(TAG_KEYS)}; not {unknown}")
    group = ", ".join([f"time({every})", *(quote_identifier(key) for key in by)])
    value = quote_identifier(VALUE_FIELD)
    return (
        f"SELECT {fn}({value}) AS {value} FROM {quote_identifier(str(measurement))} "
        f"WHERE {_where(filters, start, end)} GROUP BY {group} fill(none)"
    )


# --- parsing -----------------------------------------------------------------------------------------


def _from_ns(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _typed(value: object) -> float | bool | str | None:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return float(value)
    raise TelemetryQueryError(f"unexpected value in query result: {value!r}")


def parse_rows(payload: Mapping[str, Any], fixed_tags: Mapping[str, str] | None = None) -> list[SensorRow]:
    """Rows of the first statement of an InfluxQL JSON answer (``epoch=ns``), time-ordered."""
    if "error" in payload:
        raise TelemetryQueryError(str(payload["error"]))
    results = payload.get("results") or [{}]
    first = results[0]
    if "error" in first:
        raise TelemetryQueryError(str(first["error"]))
    rows: list[SensorRow] = []
    for series in first.get("series", []):
        rows += _series_rows(series, dict(fixed_tags or {}))
    rows.sort(key=lambda row: (row.time_ns, sorted(row.tags.items())))
    return rows


def _series_rows(series: Mapping[str, Any], fixed: dict[str, str]) -> list[SensorRow]:
    columns: list[str] = series["columns"]
    group_tags = {**fixed, **series.get("tags", {})}
    rows = []
    for values in series.get("values", []):
        record = dict(zip(columns, values, strict=True))
        tags = dict(group_tags)
        tags.update({key: record[key] for key in TAG_KEYS if record.get(key) is not None})
        ns = int(record["time"])
        rows.append(SensorRow(_from_ns(ns), ns, _typed(record.get(VALUE_FIELD)), tags))
    return rows


# --- the reader ----------------------------------------------------------------------------------------


class SensorLogReader:
    """Reads the sensor log with InfluxQL over HTTP (async httpx).

    InfluxDB 1.x: `database` (+ `retention_policy`), `username`/`password`. InfluxDB 2.x: `database` is the
    DBRP-mapped name (the bucket's by default), `token` authenticates. InfluxDB 3.x: `database` + `token`.
    """

    def __init__(
        self,
        url: str,
        database: str,
        *,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._params = {
            "db": database,
            "epoch": "ns",
            **({"rp": retention_policy} if retention_policy else {}),
        }
        headers = {"Authorization": f"Token {token}"} if token else {}
        auth = httpx.BasicAuth(username, password or "") if username else None
        self._client = httpx.AsyncClient(
            base_url=url, headers=headers, auth=auth, timeout=timeout_s, transport=transport
        )

    @classmethod
    def from_config(
        cls, config: TelemetryConfig, environ: Mapping[str, str] | None = None
    ) -> SensorLogReader:
        database = config.read_database
        if config.url is None or database is None:
            raise ValueError("telemetry backend is none: there is no sensor log to read")
        return cls(
            config.url,
            database,
            retention_policy=config.retention_policy,
            username=config.username,
            password=config.password(environ),
            token=config.token(environ),
            timeout_s=config.request_timeout_s,
        )

    async def raw(
        self,
        measurement: EventKind | str,
        filters: SensorFilter,
        start: datetime,
        end: datetime,
        limit: int = 10_000,
    ) -> list[SensorRow]:
        """Readings in [start, end), oldest first, at most `limit`."""
        return await self._rows(build_raw_query(measurement, filters, start, end, limit))

    async def aggregated(
        self,
        measurement: EventKind | str,
        filters: SensorFilter,
        start: datetime,
        end: datetime,
        every: str = "1m",
        fn: Aggregate = "mean",
        by: Sequence[str] = (),
    ) -> list[SensorRow]:
        """`fn` of the readings per `every` window (empty windows left out), optionally per tag in `by`.

        Rows carry the filter's tags plus the `by` tags. mean/min/max need numeric values; count takes any.
        """
        query = build_aggregate_query(measurement, filters, start, end, every, fn, by)
        return await self._rows(query, dict(filters.items()))

    async def _rows(self, query: str, fixed_tags: Mapping[str, str] | None = None) -> list[SensorRow]:
        try:
            response = await self._client.get("/query", params={**self._params, "q": query})
        except httpx.HTTPError as exc:
            raise TelemetryQueryError(f"sensor log unavailable: {type(exc).__name__}: {exc}") from exc
        try:
            payload = response.json()
        except ValueError:
            raise TelemetryQueryError(f"sensor log query failed: HTTP {response.status_code}") from None
        if response.status_code != 200 or not isinstance(payload, dict):
            raise TelemetryQueryError(f"sensor log query failed: HTTP {response.status_code}: {payload}")
        return parse_rows(payload, fixed_tags)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> SensorLogReader:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


def to_csv(rows: Sequence[SensorRow]) -> str:
    """CSV with a header (time in RFC 3339 UTC, the five tags, value); text cells are formula-safe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        stamp = row.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        cells = [_csv_text(row.tags.get(key, "")) for key in TAG_KEYS]
        writer.writerow([stamp, *cells, _csv_value(row.value)])
    return out.getvalue()


def _csv_text(text: str) -> str:
    # A device named "=HYPERLINK(...)" must not become a live formula in the spreadsheet of whoever
    # opens the export; the OWASP advice is a leading apostrophe.
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_value(value: float | bool | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _csv_text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
