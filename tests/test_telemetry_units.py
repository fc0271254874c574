"""Telemetry without a server: config validation, point conversion, the spool, query building, CSV, and
the writer's batching / spooling / ordering logic against a fake backend."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import math
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from telemetry_fixtures import T0, GatedBackend, event, eventually

from common.errors import ConfigError
from devices.model import EventKind
from gateway.headroom import Headroom
from gateway.telemetry.backends import (
    InfluxV1Backend,
    RejectedBatchError,
    TransientWriteError,
    raise_for_status,
)
from gateway.telemetry.config import TelemetryConfig
from gateway.telemetry.points import (
    BARE_VALUES,
    REPLACEMENT,
    VALUE_TYPES,
    FieldType,
    InvalidEventError,
    clean_tag_value,
    extra_field_key,
    extra_problems,
    timestamp_ns,
    to_line,
    value_problem,
)
from gateway.telemetry.reads import (
    SensorFilter,
    SensorRow,
    TelemetryQueryError,
    build_aggregate_query,
    build_raw_query,
    parse_rows,
    quote_literal,
    to_csv,
)
from gateway.telemetry.spool import Spool
from gateway.telemetry.writer import InfluxWriter, RefusedEvent, create_writer

END = T0 + timedelta(hours=1)

# --- config -------------------------------------------------------------------------------------------


def _config_error(**settings: object) -> str:
    with pytest.raises(ValidationError) as info:
        TelemetryConfig.model_validate(settings)
    return str(info.value)


def test_config_defaults_to_no_backend() -> None:
    config = TelemetryConfig()
    assert not config.enabled
    assert (config.batch_size, config.flush_interval_ms, config.spool_max_points) == (5000, 1000, 1_000_000)
    assert create_writer(config) is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"backend": "influxdb2", "url": "http://h:8086", "org": "o"}, "needs bucket"),
        ({"backend": "influxdb1", "url": "http://h:8086"}, "needs database"),
        ({"backend": "influxdb1", "database": "d"}, "needs a url"),
        ({"backend": "influxdb1", "url": "http://h", "database": "d", "org": "o"}, "org is an influxdb2"),
        (
            {"backend": "influxdb2", "url": "http://h", "org": "o", "bucket": "b", "username": "u"},
            "influxdb1",
        ),
        ({"backend": "influxdb1", "url": "http://h", "database": "d", "username": "u"}, "password_env"),
        ({"url": "ftp://h"}, "http://host:8086"),
        ({"url": "http://user:pw@h:8086"}, "credentials"),
        ({"batch_size": 0}, "greater than or equal to 1"),
        ({"batch_size": 100, "buffer_max_points": 10}, "buffer_max_points must be at least batch_size"),
        ({"retry_min_s": 5, "retry_max_s": 1}, "retry_min_s must not exceed retry_max_s"),
        ({"token_env": "not a name"}, "String should match pattern"),
        ({"flush_interval_ms": 1}, "greater than or equal to 10"),
        ({"buket": "typo"}, "Extra inputs are not permitted"),
    ],
)
def test_config_refuses_with_a_clear_message(settings: dict[str, object], message: str) -> None:
    assert message in _config_error(**settings)


def test_config_secrets_come_from_the_environment() -> None:
    config = TelemetryConfig(backend="influxdb2", url="http://h:8086/", org="o", bucket="b", token_env="TOK")
    assert config.url == "http://h:8086"
    assert config.token({"TOK": "secret"}) == "secret"
    assert config.read_database == "b"
    with pytest.raises(ConfigError, match="TOK is not set"):
        config.token({})
    with pytest.raises(ValidationError):
        config.batch_size = 1  # type: ignore[misc]


# --- points -------------------------------------------------------------------------------------------


def test_event_becomes_one_line_with_tags_fields_and_ns_time() -> None:
    ts = datetime(2026, 1, 5, 8, 0, 0, 123456, tzinfo=UTC)
    extra = {"rssi": -60, "ok": True, "note": "a b", "bad": math.nan, "contact": False}
    line = to_line(event(0, value=72, ts=ts, extra=extra))
    # A device's own extras are text; the profiles' own (here `contact`) keep their fixed types.
    assert line == (
        "heart_rate,device=vitals-1,device_type=vitals_monitor,resident=res-1,room=101,site=site-a "
        'value=72,x_contact=false,x_note="a b",x_ok="true",x_rssi="-60" 1767600000123456000'
    )


@pytest.mark.parametrize(
    ("kind", "value", "field"),
    [
        (EventKind.SOS, None, "value=1 "),
        (EventKind.SOS, 3, "value=3 "),
        (EventKind.HEART_RATE, 72.5, "value=72.5 "),
        (EventKind.PRESENCE, False, "value=false "),
        (EventKind.MOTION, None, "value=true "),
    ],
)
def test_value_types(kind: EventKind, value: float | bool | str | None, field: str) -> None:
    assert field in to_line(event(0, kind=kind, value=value))


def test_every_kind_has_one_value_type_and_only_readings_need_a_value() -> None:
    assert set(VALUE_TYPES) == set(EventKind)
    needs_a_value = set(EventKind) - set(BARE_VALUES)
    assert needs_a_value == {
        EventKind.BATTERY,
        EventKind.HEART_RATE,
        EventKind.SPO2,
        EventKind.BODY_TEMPERATURE,
        EventKind.TEMPERATURE,
        EventKind.HUMIDITY,
        EventKind.LINK_QUALITY,
        EventKind.WATER_TEMPERATURE,
        EventKind.BED_POSITION,
        EventKind.VISIT_TAG,
    }
    texts = {EventKind.BED_POSITION, EventKind.VISIT_TAG}
    assert all(VALUE_TYPES[kind] is FieldType.FLOAT for kind in needs_a_value - texts)
    assert all(VALUE_TYPES[kind] is FieldType.STRING for kind in texts)


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        (EventKind.HEART_RATE, "high", "heart_rate from 'vitals-1': value 'high' is not a finite number"),
        (EventKind.HEART_RATE, True, "value True is not a finite number"),
        (EventKind.HEART_RATE, None, "heart_rate from 'vitals-1' has no value; it needs a number"),
        (EventKind.PRESENCE, 1, "value 1 is not a boolean"),
        (EventKind.CHECK_IN, "ok", "value 'ok' is not a boolean"),
        (EventKind.SOS, "pressed", "value 'pressed' is not a finite number"),
    ],
)
def test_a_value_of_the_wrong_type_for_its_measurement_is_refused(
    kind: EventKind, value: float | bool | str | None, reason: str
) -> None:
    # dataclasses.replace: the `event` helper gives a heart rate without a value a number.
    wrong = dataclasses.replace(event(0, kind=kind), value=value)
    problem = value_problem(wrong)
    assert problem is not None
    assert reason in problem
    with pytest.raises(InvalidEventError, match=re.escape(problem)):
        to_line(wrong)


def test_an_extra_of_the_wrong_type_is_left_out_and_named() -> None:
    partly = event(0, value=70, extra={"contact": "open", "action": "single"})
    assert extra_problems(partly) == ["extra 'contact' of heart_rate: 'open' is not a boolean"]
    line = to_line(partly)
    assert "x_contact" not in line
    assert 'x_action="single"' in line


def test_values_that_cannot_be_stored_are_refused() -> None:
    with pytest.raises(InvalidEventError):
        to_line(event(0, value=math.inf))


def test_missing_tags_are_left_out() -> None:
    line = to_line(event(0, room=None, resident=None))
    assert "room=" not in line
    assert "resident=" not in line


def test_tag_normalisation_is_documented_and_minimal() -> None:
    assert clean_tag_value("a,b c=d\"e'f\\g") == "a,b c=d\"e'f\\g"
    assert clean_tag_value("line1\nline2\r\t\x00") == f"line1{REPLACEMENT}line2{REPLACEMENT * 3}"
    assert clean_tag_value("ends\\") == f"ends{REPLACEMENT}"
    assert clean_tag_value("lone\ud800") == f"lone{REPLACEMENT}"
    assert extra_field_key("a b,c=d\n") == "x_a_b_c_d_"


def test_naive_times_are_utc() -> None:
    assert timestamp_ns(datetime(1970, 1, 1, 0, 0, 1)) == 1_000_000_000
    assert timestamp_ns(datetime(1970, 1, 1, 8, 0, 1, 5, tzinfo=UTC) - timedelta(hours=8)) == 1_000_005_000


# --- spool --------------------------------------------------------------------------------------------


def test_spool_is_fifo_and_survives_reopening(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_points=100)
    spool.push(["a", "b", "c"])
    spool.push(["d"])
    first = spool.peek(2)
    assert [p.line for p in first] == ["a", "b"]
    spool.ack([p.id for p in first])
    assert spool.count == 2
    spool.close()
    again = Spool(tmp_path, max_points=100)
    assert again.count == 2
    assert [p.line for p in again.peek(10)] == ["c", "d"]
    again.push(["e"])
    assert [p.line for p in again.peek(10)] == ["c", "d", "e"]


def test_spool_cap_drops_exactly_the_oldest_and_remembers(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_points=5)
    assert spool.push([f"p{i}" for i in range(4)]) == 0
    assert spool.push([f"p{i}" for i in range(4, 7)]) == 2
    assert [p.line for p in spool.peek(10)] == ["p2", "p3", "p4", "p5", "p6"]
    assert spool.push([f"q{i}" for i in range(8)]) == 8  # 5 spooled + 3 of its own oldest
    assert [p.line for p in spool.peek(10)] == ["q3", "q4", "q5", "q6", "q7"]
    assert (spool.count, spool.dropped_total) == (5, 10)
    spool.close()
    assert Spool(tmp_path, max_points=5).dropped_total == 10


# --- backends -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429, 401, 403, 404])
def test_statuses_worth_retrying(status: int) -> None:
    with pytest.raises(TransientWriteError):
        raise_for_status(status, "")


def test_a_bad_batch_is_rejected_with_the_servers_count() -> None:
    raise_for_status(204, "")
    with pytest.raises(RejectedBatchError) as info:
        raise_for_status(400, '{"error":"partial write: field type conflict: ... dropped=2"}')
    assert info.value.dropped == 2
    with pytest.raises(RejectedBatchError) as whole:
        raise_for_status(413, "too large")
    assert whole.value.dropped is None


def test_v1_backend_posts_line_protocol_with_basic_auth() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    backend = InfluxV1Backend(
        "http://influx:8086", "care", retention_policy="week", username="u", password="p w",
        transport=httpx.MockTransport(handler),
    )  # fmt: skip
    backend.write(["m value=1 1", "m value=2 2"])
    request = seen[0]
    assert request.url.path == "/write"
    assert dict(request.url.params) == {"db": "care", "rp": "week", "precision": "ns"}
    assert request.headers["authorization"].startswith("Basic ")
    assert request.content == b"m value=1 1\nm value=2 2"


def test_v1_backend_connection_refused_is_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    backend = InfluxV1Backend("http://influx:8086", "care", transport=httpx.MockTransport(refuse))
    with pytest.raises(TransientWriteError, match="ConnectError"):
        backend.write(["m value=1 1"])


# --- query building and parsing ---------------------------------------------------------------------------


def test_raw_query_quotes_everything() -> None:
    query = build_raw_query(
        EventKind.HEART_RATE, SensorFilter(resident="x' OR 1=1 --", device="a\\b"), T0, END, 100
    )
    assert query == (
        'SELECT "value", "site", "room", "resident", "device", "device_type" FROM "heart_rate" '
        "WHERE time >= '2026-01-05T08:00:00.000000Z' AND time < '2026-01-05T09:00:00.000000Z' "
        "AND \"resident\" = 'x\\' OR 1=1 --' AND \"device\" = 'a\\\\b' ORDER BY time ASC LIMIT 100"
    )


def test_aggregate_query() -> None:
    query = build_aggregate_query("spo2", SensorFilter(site="s"), T0, END, "5m", "max", by=["device"])
    assert query.startswith('SELECT max("value") AS "value" FROM "spo2" WHERE ')
    assert query.endswith('AND "site" = \'s\' GROUP BY time(5m), "device" fill(none)')


@pytest.mark.parametrize(
    "build",
    [
        lambda: build_raw_query('heart_rate" ; DROP', SensorFilter(), T0, END, 10),
        lambda: build_raw_query("heart_rate", SensorFilter(), END, T0, 10),
        lambda: build_raw_query("heart_rate", SensorFilter(), T0.replace(tzinfo=None), END, 10),
        lambda: build_raw_query("heart_rate", SensorFilter(), T0, END, 0),
        lambda: build_raw_query("heart_rate", SensorFilter(room=""), T0, END, 10),
        lambda: build_aggregate_query("heart_rate", SensorFilter(), T0, END, "1m); DROP", "mean"),
        lambda: build_aggregate_query("heart_rate", SensorFilter(), T0, END, "1m", "sum"),  # type: ignore[arg-type]
        lambda: build_aggregate_query("heart_rate", SensorFilter(), T0, END, "1m", "mean", by=["x"]),
    ],
)
def test_suspicious_query_arguments_are_refused(build: object) -> None:
    assert callable(build)
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        build()


def test_filter_literals_normalise_like_tags() -> None:
    assert quote_literal("a\nb\\") == f"'a{REPLACEMENT}b{REPLACEMENT}'"


def test_parse_rows_types_and_errors() -> None:
    payload = {
        "results": [
            {
                "series": [
                    {
                        "name": "heart_rate",
                        "columns": ["time", "value", "site", "room", "resident", "device", "device_type"],
                        "values": [[1767600000000000001, 72, "s", None, "r", "d", "vitals_monitor"]],
                    }
                ]
            }
        ]
    }
    [row] = parse_rows(payload)
    assert row.time_ns == 1767600000000000001
    assert row.time == T0
    assert row.value == 72.0
    assert isinstance(row.value, float)
    assert row.tags == {"site": "s", "resident": "r", "device": "d", "device_type": "vitals_monitor"}
    with pytest.raises(TelemetryQueryError, match="database not found"):
        parse_rows({"results": [{"error": "database not found: x"}]})


def test_csv_is_parseable_and_formula_safe() -> None:
    rows = [
        SensorRow(T0, 0, 72.5, {"site": "s", "device": '=HYPERLINK("x")', "resident": 'a,"b"\nc'}),
        SensorRow(T0, 0, "-note", {}),
        SensorRow(T0, 0, True, {}),
    ]
    parsed = list(csv.reader(io.StringIO(to_csv(rows))))
    assert parsed[0] == ["time", "site", "room", "resident", "device", "device_type", "value"]
    assert parsed[1] == ["2026-01-05T08:00:00.000000Z", "s", "", 'a,"b"\nc', '\'=HYPERLINK("x")', "", "72.5"]
    assert parsed[2][-1] == "'-note"
    assert parsed[3][-1] == "true"


# --- the writer against a fake server ------------------------------------------------------------------


def _writer(
    tmp_path: Path,
    backend: GatedBackend,
    on_refused: RefusedEvent | None = None,
    headroom: Headroom | None = None,
    **overrides: object,
) -> InfluxWriter:
    settings: dict[str, object] = {
        "backend": "influxdb1",
        "url": "http://unused:8086",
        "database": "d",
        "spool_dir": tmp_path / "spool",
        "batch_size": 10,
        "flush_interval_ms": 20,
        "retry_min_s": 0.02,
        "retry_max_s": 0.05,
    }
    config = TelemetryConfig.model_validate(settings | overrides)
    return InfluxWriter(config, backend=backend, on_refused=on_refused, headroom=headroom)


def _seqs(lines: list[str]) -> list[int]:
    return [int(line.split("value=")[1].split(" ")[0]) for line in lines]


async def test_writer_flushes_by_size_and_by_time(tmp_path: Path) -> None:
    backend = GatedBackend()
    writer = _writer(tmp_path, backend, flush_interval_ms=1000)
    task = asyncio.create_task(writer.run())
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer([event(i) for i in range(25)])
    await eventually(lambda: len(backend.accepted) >= 20)
    assert loop.time() - started < 0.9  # two full batches go at once ...
    assert _seqs(backend.accepted) == list(range(20))
    await eventually(lambda: len(backend.accepted) == 25, timeout_s=3)
    assert loop.time() - started >= 0.9  # ... the partial one after the flush interval
    assert writer.status()["written_points"] == 25
    await writer.close()
    await task
    assert backend.closed


async def test_writer_spools_through_an_outage_and_keeps_order(tmp_path: Path) -> None:
    backend = GatedBackend()
    backend.fail = TransientWriteError("connection refused")
    writer = _writer(tmp_path, backend)
    task = asyncio.create_task(writer.run())
    for i in range(0, 60, 6):
        writer([event(j) for j in range(i, i + 6)])
        await asyncio.sleep(0.01)
    await eventually(lambda: writer.status()["spool_points"] > 0)
    status = writer.status()
    assert status["healthy"] is False
    assert status["spool_points"] + status["buffered_points"] == 60
    assert status["failed_writes"] >= 1
    assert "connection refused" in status["last_error"]
    backend.fail = None
    writer([event(j) for j in range(60, 70)])
    assert await writer.drain(5)
    assert _seqs(backend.accepted) == list(range(70))
    assert writer.status()["healthy"] is True
    assert (writer.written_points, writer.dropped_points) == (70, 0)
    await writer.close()
    await task


async def test_short_of_disk_space_the_writer_spools_nothing_and_counts_it(tmp_path: Path) -> None:
    backend = GatedBackend()
    backend.fail = TransientWriteError("connection refused")
    # More than any disk has free: the real filesystem of tmp_path is always short of it.
    writer = _writer(tmp_path, backend, headroom=Headroom(tmp_path, min_free_bytes=2**62))
    task = asyncio.create_task(writer.run())
    writer([event(i) for i in range(30)])
    await eventually(lambda: writer.disk_refused_points == 30)
    status = writer.status()
    assert (status["spool_points"], status["disk_refused_points"], status["dropped_points"]) == (0, 30, 30)
    await writer.close()
    await task


async def test_writer_drops_a_rejected_batch_instead_of_retrying_it(tmp_path: Path) -> None:
    backend = GatedBackend()
    backend.fail = RejectedBatchError("HTTP 400: partial write ... dropped=1", 1)
    writer = _writer(tmp_path, backend)
    task = asyncio.create_task(writer.run())
    writer([event(i) for i in range(5)])
    assert await writer.drain(5)
    assert (writer.written_points, writer.dropped_points, writer.failed_writes) == (4, 1, 1)
    assert writer.status()["spool_points"] == 0
    await writer.close()
    await task


async def test_a_full_buffer_moves_to_the_spool_in_order(tmp_path: Path) -> None:
    backend = GatedBackend()
    backend.gate.clear()  # the server hangs on the first write
    writer = _writer(tmp_path, backend, batch_size=10, buffer_max_points=30)
    task = asyncio.create_task(writer.run())
    writer([event(i) for i in range(10)])
    await asyncio.to_thread(backend.entered.wait, 5)
    for i in range(10, 100, 10):  # 90 more while the first batch hangs: the buffer spills twice
        writer([event(j) for j in range(i, i + 10)])
    assert writer.status()["buffered_points"] <= 100
    backend.gate.set()
    assert await writer.drain(5)
    assert _seqs(backend.accepted) == list(range(100))
    assert writer.spooled_points >= 60
    await writer.close()
    await task


async def test_close_spools_what_a_failing_server_did_not_take_and_a_new_writer_replays_it(
    tmp_path: Path,
) -> None:
    backend = GatedBackend()
    backend.fail = TransientWriteError("down")
    writer = _writer(tmp_path, backend)
    task = asyncio.create_task(writer.run())
    writer([event(i) for i in range(15)])
    await eventually(lambda: writer.failed_writes > 0)
    writer([event(i) for i in range(15, 18)])
    await writer.close()
    await task
    writer([event(99)])
    assert writer.dropped_points == 1  # after close there is nowhere to put it, and it is counted

    fresh = GatedBackend()
    second = _writer(tmp_path, fresh)
    assert second.status()["spool_points"] == 18
    task = asyncio.create_task(second.run())
    assert await second.drain(5)
    assert _seqs(fresh.accepted) == list(range(18))
    await second.close()
    await task


async def test_events_of_the_wrong_type_never_reach_the_buffer_and_are_reported(tmp_path: Path) -> None:
    backend = GatedBackend()
    refused: list[tuple[str, str]] = []
    writer = _writer(tmp_path, backend, lambda e, reason: refused.append((e.message_key, reason)))
    task = asyncio.create_task(writer.run())
    wrong, partly = event(2, value="high"), event(3, extra={"contact": "open"})
    writer([event(1), wrong, partly])
    assert writer.status()["buffered_points"] == 2
    assert await writer.drain(5)
    assert _seqs(backend.accepted) == [1, 3]
    assert "x_contact" not in backend.accepted[1]
    assert [key for key, _ in refused] == [wrong.message_key, partly.message_key]
    assert refused[0][1].startswith("not stored in InfluxDB: heart_rate")
    assert refused[1][1].startswith("stored in InfluxDB without extra 'contact'")
    assert (writer.refused_points, writer.dropped_points) == (1, 1)
    await writer.close()
    await task


async def test_unstorable_events_are_counted_not_written(tmp_path: Path) -> None:
    backend = GatedBackend()
    writer = _writer(tmp_path, backend)
    task = asyncio.create_task(writer.run())
    writer([event(1), event(2, value=math.nan), event(3)])
    assert await writer.drain(5)
    assert _seqs(backend.accepted) == [1, 3]
    assert writer.dropped_points == 1
    await writer.close()
    await task


async def test_cancelling_the_task_loses_nothing_in_flight(tmp_path: Path) -> None:
    backend = GatedBackend()
    backend.gate.clear()
    writer = _writer(tmp_path, backend)
    task = asyncio.create_task(writer.run())
    writer([event(i) for i in range(10)])
    await asyncio.to_thread(backend.entered.wait, 5)
    writer([event(i) for i in range(10, 15)])
    task.cancel()
    threading.Timer(0.05, backend.gate.set).start()
    await writer.close()
    assert _seqs(backend.accepted) == list(range(15))


async def test_calling_the_sink_does_not_convert_or_block(tmp_path: Path) -> None:
    backend = GatedBackend()
    backend.gate.clear()
    writer = _writer(tmp_path, backend, batch_size=1000, buffer_max_points=100_000)
    events = [event(i) for i in range(20_000)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(0, len(events), 1000):
        writer(events[i : i + 1000])
    # Conversion costs ~13 µs a point (0.26 s here); the sink only appends, on the event loop.
    assert loop.time() - started < 0.1
    backend.gate.set()
    await writer.close()
