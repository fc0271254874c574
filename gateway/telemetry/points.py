"""DeviceEvent → InfluxDB point, one line of line protocol per event.

Schema: measurement = event kind (``heart_rate``, ``sos``, ``door_open`` ...); tags ``site``, ``room``,
``resident``, ``device``, ``device_type`` (absent when unknown); field ``value`` (float for numbers,
boolean for booleans, string for text; ``1.0`` = "it happened" for events without a value) plus each
scalar of ``extra`` as ``x_<name>``; timestamp = ``event.ts`` in nanoseconds.

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

import math
import re
from datetime import UTC, datetime, timedelta

from influxdb_client.client.write.point import Point

from devices.model import DeviceEvent

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


class InvalidEventError(ValueError):
    """An event that cannot become a point (e.g. a NaN reading); it is counted and dropped."""


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


def field_value(value: object) -> FieldValue | None:
    """The field value for a reading: bool stays bool, numbers become float, text stays text.

    Numbers are always floats so a device sending ``72`` and another ``72.5`` do not collide in
    InfluxDB's per-field type. None for values a field cannot hold (NaN, infinity, other types).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        return clean_string_field(value)
    return None


def fields_of(event: DeviceEvent) -> dict[str, FieldValue]:
    value = 1.0 if event.value is None else field_value(event.value)
    if value is None:
        raise InvalidEventError(
            f"{event.kind} from {event.device_id!r}: value {event.value!r} cannot be stored"
        )
    fields: dict[str, FieldValue] = {}
    for name, raw in event.extra.items():
        extra = field_value(raw)
        if extra is not None:
            fields[extra_field_key(name)] = extra
    fields[VALUE_FIELD] = value
    return fields


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
