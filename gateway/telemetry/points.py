"""DeviceEvent → InfluxDB point, one line of line protocol per event.

Schema: measurement = event kind (``heart_rate``, ``sos``, ``door_open`` ...); tags ``site``, ``room``,
``resident``, ``device``, ``device_type`` (absent when unknown); field ``value`` plus each scalar of
``extra`` as ``x_<name>``; timestamp = ``event.ts`` in nanoseconds.

Field types are the code's, never the device's (`VALUE_TYPES`, `EXTRA_TYPES`): InfluxDB fixes a field's
type with the first point of a shard and refuses every later point of another type, so one device
sending ``"high"`` as a heart rate would make every numeric heart rate after it unstorable. A value of
the wrong type refuses the point (`value_problem`); an extra of the wrong type is left out of it
(`extra_problems`); the writer turns both into telemetry dead letters.

Tag values come from devices and may be hostile. All escaping is influxdb-client's `Point` serializer;
before it we only normalise what line protocol cannot carry in a tag value, so every value stays one
tag of one point:

* control characters (newline, CR, tab, NUL ... Unicode category Cc) become U+FFFD: the client writes
  a newline as the two characters ``\\n``, which InfluxDB stores literally, so it would not round-trip;
* a backslash at the very END of a tag value becomes U+FFFD: InfluxDB reads a final backslash as
  escaping the separator that follows it (the client works around it by appending a space, which
  changes the value);
* lone surrogates (possible from JSON ``"\\ud800"``) become U+FFFD in tags and string fields: they
  cannot be encoded as UTF-8 at all.

String FIELD values keep everything else, newlines included (they are quoted, and InfluxDB 1.x and 2.x
read them back exactly). `clean_tag_value` is public so InfluxQL filters normalise the same way and match.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from influxdb_client.client.write.point import Point

from devices.model import DeviceEvent, EventKind

REPLACEMENT = "\ufffd"
TAG_KEYS = ("site", "room", "resident", "device", "device_type")
VALUE_FIELD = "value"
EXTRA_PREFIX = "x_"
#: An ``extra`` name becomes part of a field key; anything but letters, digits and ``_`` becomes ``_``.
_FIELD_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_FIELD_NAME_MAX = 64
_CONTROL_OR_SURROGATE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_US = 1000

FieldValue = float | bool | str


class FieldType(enum.StrEnum):
    FLOAT = "a number"
    BOOLEAN = "a boolean"
    STRING = "a string"


#: Readings: the number is the point; an event without one cannot be stored.
_READINGS = (
    EventKind.BATTERY,
    EventKind.HEART_RATE,
    EventKind.SPO2,
    EventKind.BODY_TEMPERATURE,
    EventKind.TEMPERATURE,
    EventKind.HUMIDITY,
    EventKind.LINK_QUALITY,
    EventKind.WATER_TEMPERATURE,
)
#: Textual readings: a bed mat's position ("left", "back"), the carer a door tag was pressed by
#: (their responder id, docs/visits.md); stored as text, and they need one.
_TEXTS = (EventKind.BED_POSITION, EventKind.VISIT_TAG)
#: Happenings: a bare event is stored as 1.0, "it happened" (a number, if the device gives one).
_HAPPENINGS = (
    EventKind.SOS,
    EventKind.FALL,
    EventKind.FALL_CANCEL,
    EventKind.DOOR_OPEN,
    EventKind.DOOR_CLOSED,
    EventKind.SMOKE,
    EventKind.SMOKE_CLEAR,
    EventKind.TAMPER,
    EventKind.BATTERY_LOW,
    EventKind.HEARTBEAT,
    EventKind.VISIT_MISSED,
)
#: States: on or off; a bare event says the state holds (true).
_STATES = (
    EventKind.PRESENCE,
    EventKind.MOTION,
    EventKind.AVAILABILITY,
    EventKind.BED_OCCUPIED,
    EventKind.CHECK_IN,
)
#: The type of each measurement's ``value`` field. Only a bed's position and a door tag's carer are
#: textual; other textual states (an action, a radar's fall state, "online") travel as extras.
VALUE_TYPES: Mapping[EventKind, FieldType] = {
    **dict.fromkeys(_READINGS + _HAPPENINGS, FieldType.FLOAT),
    **dict.fromkeys(_STATES, FieldType.BOOLEAN),
    **dict.fromkeys(_TEXTS, FieldType.STRING),
}
#: What an event that carries no value stores; kinds not listed (readings) need a value.
BARE_VALUES: Mapping[EventKind, FieldValue] = {
    **dict.fromkeys(_HAPPENINGS, 1.0),
    **dict.fromkeys(_STATES, True),
}
#: The extras the device profiles produce, by name, with their types. Any other extra (a native device's
#: own) is stored as text: a device-chosen name cannot be given a type another device might contradict.
EXTRA_TYPES: Mapping[str, FieldType] = {
    **dict.fromkeys(
        ("action", "state", "fall_down_status", "fall_state", "fall_detection"), FieldType.STRING
    ),
    **dict.fromkeys(
        ("sos", "alarm", "fall", "fall_cancel", "contact", "smoke", "tamper", "battery_low"),
        FieldType.BOOLEAN,
    ),
}


class InvalidEventError(ValueError):
    """An event that cannot become a point (a value of the wrong type, a NaN reading)."""


def clean_tag_value(value: str) -> str:
    """The tag value InfluxDB will store for `value` (see the module docstring for the rules)."""
    cleaned = _CONTROL_OR_SURROGATE.sub(REPLACEMENT, value)
    if cleaned.endswith("\\"):
        cleaned = cleaned[:-1] + REPLACEMENT
    return cleaned


def clean_string_field(value: str) -> str:
    return _SURROGATE.sub(REPLACEMENT, value)


def extra_field_key(name: str) -> str:
    """``x_<name>``, restricted to ``[A-Za-z0-9_]`` so a field key never needs escaping or quoting."""
    return EXTRA_PREFIX + _FIELD_NAME_UNSAFE.sub("_", name)[:_FIELD_NAME_MAX]


def timestamp_ns(ts: datetime) -> int:
    """Nanoseconds since the epoch, exactly (no float rounding); a naive time is taken as UTC."""
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(microseconds=1) * _NS_PER_US


def tags_of(event: DeviceEvent) -> dict[str, str]:
    raw = {
        "site": event.site,
        "room": event.room,
        "resident": event.resident,
        "device": event.device_id,
        "device_type": str(event.device_type),
    }
    # An empty tag value is the same as no tag in InfluxDB; leave it out rather than rely on that.
    return {key: clean_tag_value(value) for key, value in raw.items() if value}


def typed_value(expected: FieldType, value: object) -> FieldValue | None:
    """`value` as a field of type `expected`; None when it is not of that type (or NaN, infinite).

    Integers become floats, so a device sending ``72`` and another ``72.5`` write one type.
    """
    if expected is FieldType.FLOAT:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        number = float(value)
        return number if math.isfinite(number) else None
    if expected is FieldType.BOOLEAN:
        return value if isinstance(value, bool) else None
    return clean_string_field(value) if isinstance(value, str) else None


def value_problem(event: DeviceEvent) -> str | None:
    """Why the event's value cannot be stored in its measurement, or None when it can."""
    try:
        _value_field(event)
    except InvalidEventError as exc:
        return str(exc)
    return None


def extra_problems(event: DeviceEvent) -> list[str]:
    """The extras `fields_of` leaves out of the point, each with why."""
    return [
        f"extra {name!r} of {event.kind}: {_shown(raw)} is not {_described(EXTRA_TYPES.get(name))}"
        for name, raw in event.extra.items()
        if _extra_field(name, raw) is None
    ]


def fields_of(event: DeviceEvent) -> dict[str, FieldValue]:
    """The point's fields; raises `InvalidEventError` when the value cannot be stored, and leaves out the
    extras `extra_problems` names."""
    fields: dict[str, FieldValue] = {}
    for name, raw in event.extra.items():
        extra = _extra_field(name, raw)
        if extra is not None:
            fields[extra_field_key(name)] = extra
    fields[VALUE_FIELD] = _value_field(event)
    return fields


def _value_field(event: DeviceEvent) -> FieldValue:
    expected = VALUE_TYPES[event.kind]
    if event.value is None:
        bare = BARE_VALUES.get(event.kind)
        if bare is None:
            raise InvalidEventError(
                f"{event.kind} from {event.device_id!r} has no value; it needs {expected}"
            )
        return bare
    value = typed_value(expected, event.value)
    if value is None:
        shown, wanted = _shown(event.value), _described(expected)
        raise InvalidEventError(f"{event.kind} from {event.device_id!r}: value {shown} is not {wanted}")
    return value


def _extra_field(name: str, raw: object) -> FieldValue | None:
    expected = EXTRA_TYPES.get(name)
    if expected is not None:
        return typed_value(expected, raw)
    if isinstance(raw, str):
        return clean_string_field(raw)
    if isinstance(raw, bool) or (isinstance(raw, int | float) and math.isfinite(raw)):
        # An extra of a device's own is text, written as JSON writes it: 72 -> "72", true -> "true".
        return json.dumps(raw)
    return None


def _described(expected: FieldType | None) -> str:
    """What a field takes; None for a device's own extra (text, or a finite number or boolean as text)."""
    if expected is None:
        return "storable (text, a finite number or a boolean)"
    return "a finite number" if expected is FieldType.FLOAT else str(expected)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def to_point(event: DeviceEvent) -> Point:
    record = {
        "measurement": str(event.kind),
        "tags": tags_of(event),
        "fields": fields_of(event),
        "time": timestamp_ns(event.ts),
    }
    # An int time is taken as is, in the serializer's default precision: nanoseconds.
    point: Point = Point.from_dict(record)
    return point


def to_line(event: DeviceEvent) -> str:
    """One line of line protocol, serialized (and escaped) by influxdb-client."""
    line = str(to_point(event))
    if not line:
        raise InvalidEventError(f"{event.kind} from {event.device_id!r} has no storable field")
    return line


#: The point a series' prefix is cut from: a value whose text is known, at time 0 (see `LineEncoder`).
_PROBE_FIELDS, _PROBE_TAIL = {VALUE_FIELD: 0.5}, f"{VALUE_FIELD}=0.5 0"
_SERIES_MAX = 200_000


class LineEncoder:
    """`to_line`, fast: what influxdb-client serializes for each event, byte for byte, at a fraction of the
    cost (measured in docs/benchmarks.md, "Telemetry at the speed of the wire").

    A series (measurement and tags) is serialized and escaped by the library once, the first time it is
    seen, and its text is kept; per point only numbers and booleans are formatted, the way the library
    formats them (`str(float)` without a trailing ``.0``, ``true``/``false``, fields in key order; no key
    needs escaping, see `extra_field_key`). A point with a string field is left to the library whole.
    `tests/test_line_encoder.py` compares the two on generated events.

    Not thread-safe: the writer keeps one per worker thread.
    """

    def __init__(self, max_series: int = _SERIES_MAX) -> None:
        self._prefixes: dict[tuple[object, ...], str] = {}
        self._max_series = max_series
        self._last_ts: datetime | None = None
        self._last_ns = 0

    def line(self, event: DeviceEvent) -> str:
        """The event's line; raises `InvalidEventError` as `to_line` does."""
        if event.extra:
            fields = fields_of(event)
            if any(isinstance(value, str) for value in fields.values()):
                return to_line(event)
            text = ",".join(f"{key}={_number_text(fields[key])}" for key in sorted(fields))
        else:
            value = _value_field(event)  # most telemetry: the value alone
            if isinstance(value, str):
                return to_line(event)
            text = f"{VALUE_FIELD}={_number_text(value)}"
        return f"{self._prefix(event)}{text} {self._time(event.ts)}"

    def _prefix(self, event: DeviceEvent) -> str:
        key = (event.kind, event.site, event.room, event.resident, event.device_id, event.device_type)
        prefix = self._prefixes.get(key)
        if prefix is None:
            if len(self._prefixes) >= self._max_series:
                self._prefixes.clear()  # bounded: a directory of that size re-serializes, never grows
            prefix = self._prefixes[key] = _series_text(event)
        return prefix

    def _time(self, ts: datetime) -> int:
        # The events of one message share its time: converted once.
        if ts is not self._last_ts:
            self._last_ts, self._last_ns = ts, timestamp_ns(ts)
        return self._last_ns


def _series_text(event: DeviceEvent) -> str:
    """The measurement and tags of the event's series, as the library serializes and escapes them."""
    probe = {"measurement": str(event.kind), "tags": tags_of(event), "fields": _PROBE_FIELDS, "time": 0}
    line = str(Point.from_dict(probe))
    if not line.endswith(_PROBE_TAIL):  # another library version's format: better to stop than store junk
        raise RuntimeError(f"influxdb-client wrote {line!r}, not a line ending {_PROBE_TAIL!r}")
    return line[: -len(_PROBE_TAIL)]


def _number_text(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text[:-2] if text.endswith(".0") else text
