"""Telemetry against a real InfluxDB 1.6.7: v1 writes, InfluxQL reads, outages, the spool, and hostile input.

One server for the module; each test writes to its own database.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from services import InfluxDB1
from telemetry_fixtures import (
    T0,
    RecordingBackend,
    count_points,
    dead_url,
    event,
    eventually,
    influxdb1_fixture,  # noqa: F401 - the `influxdb1` fixture
    new_database,
    v1_config,
    values,
)

from devices.model import EventKind
from gateway.telemetry.backends import InfluxV1Backend, make_backend
from gateway.telemetry.points import clean_string_field, clean_tag_value, timestamp_ns, to_line
from gateway.telemetry.reads import SensorFilter, SensorLogReader, to_csv
from gateway.telemetry.writer import InfluxWriter

END = T0 + timedelta(hours=1)
#: Characters line protocol and InfluxQL treat specially, mixed with anything else Unicode has.
HOSTILE = st.text(
    st.one_of(st.sampled_from(list(" ,=\"'\\\n\r\t;#-*/\x00\u2028é中")), st.characters(codec="utf-8")),
    min_size=1,
    max_size=30,
)
PROPERTY = settings(
    max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def _reader(server: InfluxDB1, database: str) -> SensorLogReader:
    return SensorLogReader(server.url, database)


async def _write_all(writer: InfluxWriter, events: list[Any]) -> None:
    task = asyncio.create_task(writer.run())
    writer(events)
    assert await writer.drain(10)
    await writer.close()
    await task


# --- write and read back ----------------------------------------------------------------------------------


async def test_v1_write_and_influxql_reads_round_trip(influxdb1: InfluxDB1, tmp_path: Path) -> None:
    db = new_database(influxdb1)
    writer = InfluxWriter(v1_config(influxdb1.url, db, tmp_path))
    events = [event(i * 1000, device=f"vitals-{i % 2}", value=60.0 + i) for i in range(120)]
    events.append(event(5, kind=EventKind.SOS, device="pendant-1", room=None, extra={"button": "red"}))
    await _write_all(writer, events)
    assert writer.written_points == 121

    async with _reader(influxdb1, db) as reader:
        rows = await reader.raw(EventKind.HEART_RATE, SensorFilter(device="vitals-1"), T0, END, limit=1000)
        assert [row.value for row in rows] == [60.0 + i for i in range(1, 120, 2)]
        assert rows[0].tags == {
            "site": "site-a",
            "room": "101",
            "resident": "res-1",
            "device": "vitals-1",
            "device_type": "vitals_monitor",
        }
        assert rows[0].time == T0 + timedelta(seconds=1)
        limited = await reader.raw(EventKind.HEART_RATE, SensorFilter(), T0, END, limit=3)
        assert [row.value for row in limited] == [60.0, 61.0, 62.0]

        [sos] = await reader.raw(EventKind.SOS, SensorFilter(site="site-a"), T0, END)
        assert sos.value == 1.0  # "it happened"
        assert "room" not in sos.tags

        per_minute = await reader.aggregated(EventKind.HEART_RATE, SensorFilter(), T0, END, "1m", "mean")
        assert [(row.time, row.value) for row in per_minute] == [
            (T0, 89.5),
            (T0 + timedelta(minutes=1), 149.5),
        ]
        counts = await reader.aggregated(
            EventKind.HEART_RATE, SensorFilter(resident="res-1"), T0, END, "1h", "count", by=["device"]
        )
        assert [(row.tags["device"], row.value) for row in counts] == [("vitals-0", 60.0), ("vitals-1", 60.0)]
        assert all(row.tags["resident"] == "res-1" for row in counts)
        highest = await reader.aggregated(EventKind.HEART_RATE, SensorFilter(), T0, END, "1h", "max")
        assert [row.value for row in highest] == [179.0]

    text = to_csv(rows[:2])
    assert text.splitlines()[1] == "2026-01-05T08:00:01.000000Z,site-a,101,res-1,vitals-1,vitals_monitor,61.0"
    extra = influxdb1.query('SELECT "x_button" FROM "sos"', db=db)
    assert extra["results"][0]["series"][0]["values"][0][1] == "red"  # type: ignore[index]


async def test_a_string_heart_rate_is_refused_and_the_numbers_after_it_are_stored(
    influxdb1: InfluxDB1, tmp_path: Path
) -> None:
    """Written first, "high" would fix heart_rate's `value` as a string for the shard, and InfluxDB would
    refuse every numeric heart rate after it."""
    db = new_database(influxdb1)
    refused: list[str] = []
    config = v1_config(influxdb1.url, db, tmp_path)
    writer = InfluxWriter(config, on_refused=lambda _event, reason: refused.append(reason))
    task = asyncio.create_task(writer.run())
    writer([event(1, value="high")])
    assert await writer.drain(10)
    writer([event(2, value=72.0), event(3, value=75)])
    assert await writer.drain(10)
    await writer.close()
    await task

    assert values(influxdb1, db) == [72.0, 75.0]
    assert refused == [
        "not stored in InfluxDB: heart_rate from 'vitals-1': value 'high' is not a finite number"
    ]
    assert (writer.written_points, writer.refused_points, writer.failed_writes) == (2, 1, 0)
    field_types: Any = influxdb1.query('SHOW FIELD KEYS FROM "heart_rate"', db=db)
    assert field_types["results"][0]["series"][0]["values"] == [["value", "float"]]


async def test_a_batch_the_server_rejects_is_counted_and_dropped(
    influxdb1: InfluxDB1, tmp_path: Path
) -> None:
    db = new_database(influxdb1)
    # A field an earlier version wrote as a number; this one writes a device's own extras as text.
    earlier = InfluxV1Backend(influxdb1.url, db)
    earlier.write([f"heart_rate,device=vitals-1 value=70,x_note=1 {timestamp_ns(T0)}"])
    earlier.close()
    writer = InfluxWriter(v1_config(influxdb1.url, db, tmp_path / "b"))
    # The text `x_note` collides with the float one: InfluxDB stores the other two points and answers
    # 400 partial write, dropped=1. Retrying could never help.
    await _write_all(writer, [event(1), event(2, extra={"note": "n"}), event(3)])
    assert (writer.written_points, writer.dropped_points, writer.failed_writes) == (2, 1, 1)
    assert writer.status()["spool_points"] == 0
    assert values(influxdb1, db) == [70.0, 1.0, 3.0]


async def test_a_missing_database_is_waited_for_not_dropped(influxdb1: InfluxDB1, tmp_path: Path) -> None:
    db = "created_later"
    writer = InfluxWriter(v1_config(influxdb1.url, db, tmp_path))
    task = asyncio.create_task(writer.run())
    writer([event(i) for i in range(10)])
    # 404 database not found: an operator's mistake to fix, not bad data; spooled and retried.
    await eventually(lambda: writer.status()["spool_points"] == 10)
    assert writer.failed_writes >= 1
    influxdb1.create_database(db)
    assert await writer.drain(10)
    await writer.close()
    await task
    assert count_points(influxdb1, db) == 10


# --- outages ---------------------------------------------------------------------------------------------


async def test_server_stops_mid_stream_and_nothing_is_lost_or_reordered(
    influxdb1: InfluxDB1, tmp_path: Path
) -> None:
    db = new_database(influxdb1)
    config = v1_config(influxdb1.url, db, tmp_path, batch_size=50)
    backend = RecordingBackend(make_backend(config))
    writer = InfluxWriter(config, backend=backend)
    task = asyncio.create_task(writer.run())
    total = 3000
    for i in range(0, total, 25):
        writer([event(j) for j in range(i, i + 25)])
        if i == 750:
            await asyncio.to_thread(influxdb1.stop)
        if i == 2250:
            await eventually(lambda: not writer.status()["healthy"])
            await asyncio.to_thread(influxdb1.start)
        await asyncio.sleep(0.002)
    assert await writer.drain(20)
    await writer.close()
    await task

    assert count_points(influxdb1, db) == total
    assert values(influxdb1, db) == [float(i) for i in range(total)]
    # The order the server accepted the points in is the order they arrived in.
    accepted = [float(line.split("value=")[1].split(" ")[0]) for line in backend.accepted]
    assert accepted == [float(i) for i in range(total)]
    assert writer.spooled_points > 0
    assert writer.failed_writes > 0
    assert writer.dropped_points == 0


async def test_the_spool_survives_a_writer_restart(influxdb1: InfluxDB1, tmp_path: Path) -> None:
    db = new_database(influxdb1)
    down = InfluxWriter(v1_config(dead_url(), db, tmp_path))
    await _run_briefly(down, [event(i) for i in range(250)])
    assert down.status()["spool_points"] == 250

    up = InfluxWriter(v1_config(influxdb1.url, db, tmp_path))
    assert up.status()["spool_points"] == 250
    await _write_all(up, [event(i) for i in range(250, 300)])
    assert values(influxdb1, db) == [float(i) for i in range(300)]
    assert up.written_points == 300


async def test_the_spool_cap_drops_only_the_oldest_and_counts_them(
    influxdb1: InfluxDB1, tmp_path: Path
) -> None:
    db = new_database(influxdb1)
    down = InfluxWriter(v1_config(dead_url(), db, tmp_path, spool_max_points=100))
    await _run_briefly(down, [event(i) for i in range(300)])
    status = down.status()
    assert (status["spool_points"], status["spool_dropped_total"], status["dropped_points"]) == (
        100,
        200,
        200,
    )

    up = InfluxWriter(v1_config(influxdb1.url, db, tmp_path, spool_max_points=100))
    await _write_all(up, [])
    assert values(influxdb1, db) == [float(i) for i in range(200, 300)]
    assert up.status()["spool_dropped_total"] == 200  # remembered across the restart


async def _run_briefly(writer: InfluxWriter, events: list[Any]) -> None:
    task = asyncio.create_task(writer.run())
    for i in range(0, len(events), 50):
        writer(events[i : i + 50])
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    await writer.close()
    await task


# --- hostile input ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_db(influxdb1: InfluxDB1) -> str:
    return new_database(influxdb1)


@PROPERTY
@given(device=HOSTILE, resident=HOSTILE, room=HOSTILE, text=HOSTILE, note=HOSTILE)
@example(device="a\\", resident="x' OR 1=1 --", room="r\nevil value=1 1", text='"\n', note="\\")
@example(device="d,evil=1", resident="a b", room="=", text="x\\", note='", injected=1')
def test_hostile_tags_and_fields_round_trip_as_one_point(
    influxdb1: InfluxDB1, hostile_db: str, device: str, resident: str, room: str, text: str, note: str
) -> None:
    """Written with `to_line` and the v1 backend, exactly what the writer's worker thread does."""
    written = count_points(influxdb1, hostile_db, "check_in")
    ts = T0 + timedelta(microseconds=written)
    hostile = event(
        0, kind=EventKind.CHECK_IN, device=device, resident=resident, room=room,
        extra={"text": text, "note": note}, ts=ts,
    )  # fmt: skip
    line = to_line(hostile)
    backend = InfluxV1Backend(influxdb1.url, hostile_db)
    backend.write([line])
    backend.close()

    measurements = influxdb1.query("SHOW MEASUREMENTS", db=hostile_db)
    assert measurements["results"][0]["series"][0]["values"] == [["check_in"]]  # type: ignore[index]
    assert count_points(influxdb1, hostile_db, "check_in") == written + 1
    ns = timestamp_ns(ts)
    answer: Any = influxdb1.query(f'SELECT * FROM "check_in" WHERE time = {ns}', db=hostile_db)
    series = answer["results"][0]["series"][0]
    [row] = [dict(zip(series["columns"], values_, strict=True)) for values_ in series["values"]]
    assert row["device"] == clean_tag_value(device)
    assert row["resident"] == clean_tag_value(resident)
    assert row["room"] == clean_tag_value(room)
    assert row["value"] is True  # a bare check-in: "I am OK"
    assert row["x_text"] == clean_string_field(text)
    assert row["x_note"] == clean_string_field(note)

    # ... and the reader finds it by its hostile tags, and only it.
    rows = asyncio.run(
        _read(influxdb1, hostile_db, SensorFilter(device=device, resident=resident, room=room), ts)
    )
    assert [(r.time_ns, r.value) for r in rows] == [(ns, True)]


async def _read(server: InfluxDB1, db: str, filters: SensorFilter, ts: Any) -> list[Any]:
    async with _reader(server, db) as reader:
        return await reader.raw(EventKind.CHECK_IN, filters, ts, ts + timedelta(microseconds=1))


# --- hostile filters --------------------------------------------------------------------------------------

KNOWN_RESIDENTS = ["alice", "bob", "x' OR 1=1 --", "o'brien", "back\\slash", 'say "hi"', "semi; colon"]


@pytest.fixture(scope="module")
def filter_db(influxdb1: InfluxDB1) -> str:
    db = new_database(influxdb1)
    backend = InfluxV1Backend(influxdb1.url, db)
    backend.write([to_line(event(i, resident=name)) for i, name in enumerate(KNOWN_RESIDENTS)])
    backend.close()
    return db


@PROPERTY
@given(resident=HOSTILE | st.sampled_from(KNOWN_RESIDENTS), device=st.none() | HOSTILE)
@example(resident="x' OR 1=1 --", device=None)
@example(resident="x' OR '1'='1", device=None)
@example(resident="alice' OR resident =~ /.*/ --", device=None)
@example(resident="alice'; DROP DATABASE \"x\"; SELECT '", device=None)
@example(resident="\\' OR 1=1 --", device="\\")
def test_hostile_filter_values_never_change_the_querys_meaning(
    influxdb1: InfluxDB1, filter_db: str, resident: str, device: str | None
) -> None:
    rows = asyncio.run(_read_residents(influxdb1, filter_db, SensorFilter(resident=resident, device=device)))
    expected = [
        float(i)
        for i, name in enumerate(KNOWN_RESIDENTS)
        if name == clean_tag_value(resident) and device in (None, "vitals-1")
    ]
    assert [row.value for row in rows] == expected
    assert count_points(influxdb1, filter_db) == len(KNOWN_RESIDENTS)  # still there, still whole


async def _read_residents(server: InfluxDB1, db: str, filters: SensorFilter) -> list[Any]:
    async with _reader(server, db) as reader:
        return await reader.raw(EventKind.HEART_RATE, filters, T0, END)
