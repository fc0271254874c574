"""`LineEncoder` writes exactly what influxdb-client's serializer (`to_line`) writes, for any event.

The encoder keeps each series' serialized measurement and tags and formats only the fields itself; if it
ever disagreed with the library, InfluxDB would store a different series or value than the sensor log
reads back. Hypothesis generates events with hostile tags (separators, backslashes, control characters,
lone surrogates), every kind, values of every type (right and wrong for the kind) and extras.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.model import DeviceEvent, DeviceType, EventKind
from gateway.telemetry.points import InvalidEventError, LineEncoder, to_line

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
#: Tags as devices and directories can spell them: line protocol's separators and escapes included.
hostile_text = st.text(alphabet=st.sampled_from(list("ab ,=\\\"'\n\t\x00é楼\ud800")), max_size=12)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
extra_names = st.sampled_from(["action", "contact", "rssi", "note", "sos", "weird key!", "state"])
extras = st.dictionaries(extra_names, values.filter(lambda v: v is not None), max_size=3)


@st.composite
def events(draw: st.DrawFn) -> DeviceEvent:
    return DeviceEvent(
        device_id=draw(hostile_text.filter(bool)),
        device_type=draw(st.sampled_from(list(DeviceType))),
        site=draw(hostile_text.filter(bool)),
        room=draw(st.none() | hostile_text),
        resident=draw(st.none() | hostile_text),
        kind=draw(st.sampled_from(list(EventKind))),
        value=draw(values),
        ts=T0 + timedelta(microseconds=draw(st.integers(0, 10**12))),
        received_at=T0,
        message_key="k",
        extra=draw(extras),
    )


def _encoded(encode: object, event: DeviceEvent) -> str:
    assert callable(encode)
    try:
        return str(encode(event))
    except InvalidEventError as exc:
        return f"refused: {exc}"


@settings(max_examples=400, deadline=None)
@given(st.lists(events(), min_size=1, max_size=6))
def test_the_encoder_writes_what_the_library_writes(batch: list[DeviceEvent]) -> None:
    encoder = LineEncoder()
    # Twice: the second pass takes every series' text from the encoder's cache.
    for event in batch + batch:
        assert _encoded(encoder.line, event) == _encoded(to_line, event)


def test_a_device_moved_to_another_room_is_a_new_series() -> None:
    encoder = LineEncoder()
    base = DeviceEvent("m-1", DeviceType.MOTION_SENSOR, "s", "101", "r", EventKind.MOTION, True, T0, T0, "k")
    moved = DeviceEvent("m-1", DeviceType.MOTION_SENSOR, "s", "102", "r", EventKind.MOTION, True, T0, T0, "k")
    assert "room=101" in encoder.line(base)
    assert "room=102" in encoder.line(moved)


def test_the_series_cache_is_bounded() -> None:
    encoder = LineEncoder(max_series=10)
    for n in range(25):
        event = DeviceEvent(f"d{n}", DeviceType.OTHER, "s", None, None, EventKind.BATTERY, 90, T0, T0, "k")
        assert encoder.line(event) == to_line(event)
    assert len(encoder._prefixes) <= 10


def test_a_refused_value_is_refused_as_the_library_refuses_it() -> None:
    encoder = LineEncoder()
    kind = EventKind.HEART_RATE
    wrong = DeviceEvent("v", DeviceType.VITALS_MONITOR, "s", None, None, kind, "high", T0, T0, "k")
    with pytest.raises(InvalidEventError, match="not a finite number"):
        encoder.line(wrong)
