"""Shared pieces of the hostile-input tests: bounded hypothesis profiles, a registry of every kind of
bound device, and strategies for topics and payloads built from what the decoders know.

`CARELINE_HOSTILE_PROFILE=ci` (or `dev`, the default, or `thorough`) picks how many examples each property
draws; `dev` keeps each property file well under a minute on two shared cores.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from devices import careline_json
from devices.model import ALARM_DEVICE_TYPES, Binding, DeviceType, EventKind, Lane, RawMessage
from devices.registry import DeviceRegistry

_SUPPRESSED = [HealthCheck.too_slow, HealthCheck.data_too_large]
# ci is derandomized: a red build replays with the same examples; dev and thorough explore afresh.
for _name, _examples in (("dev", 150), ("ci", 150), ("thorough", 5000)):
    settings.register_profile(
        f"hostile-{_name}",
        max_examples=_examples,
        deadline=None,
        suppress_health_check=_SUPPRESSED,
        derandomize=_name == "ci",
    )
#: Applied to each hostile-input property (not loaded globally: other files keep their own settings).
BOUNDED = settings.get_profile(f"hostile-{os.environ.get('CARELINE_HOSTILE_PROFILE', 'dev')}")

RECEIVED = datetime(2025, 3, 14, 8, 30, tzinfo=UTC)
SITE = "sunrise"

#: One native device of every type, so every salvage rule is exercised; ids say what each is.
NATIVE = {
    device_type: Binding(f"n-{device_type.value}", device_type, SITE, "204", "wang")
    for device_type in DeviceType
}
ZIGBEE = {
    device_type: Binding(
        f"z-{device_type.value}",
        device_type,
        SITE,
        "101",
        "chen",
        "zigbee2mqtt",
        f"wing-a/{device_type.value}",
    )
    for device_type in DeviceType
}
REGISTRY = DeviceRegistry([*NATIVE.values(), *ZIGBEE.values()])
ALARM_NATIVE = [binding for binding in NATIVE.values() if binding.device_type in ALARM_DEVICE_TYPES]
OTHER_NATIVE = [binding for binding in NATIVE.values() if binding.device_type not in ALARM_DEVICE_TYPES]


def message(topic: str, payload: bytes, *, received_size: int | None = None) -> RawMessage:
    return RawMessage(topic, payload, RECEIVED, Lane.ALARM, qos=1, received_size=received_size)


def native_topic(binding: Binding, channel: str = "alarm") -> str:
    return f"careline/{binding.site}/{binding.device_id}/{channel}"


def zigbee_topic(binding: Binding) -> str:
    return f"zigbee2mqtt/{binding.friendly_name}"


def spliced(document: dict[str, Any], raw_fields: dict[str, str]) -> bytes:
    """`document` as JSON with `raw_fields` appended as raw JSON text: NaN, 1e999999 and lone
    surrogates cannot be written by json.dumps, but devices send them."""
    text = json.dumps(document)
    if raw_fields:
        tail = "".join(f", {json.dumps(key)}: {raw}" for key, raw in raw_fields.items())
        text = (text[:-1] + tail + "}") if document else "{" + tail.removeprefix(", ") + "}"
    return text.encode()


# -- topics ------------------------------------------------------------------------------------------

_SEGMENT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
_KNOWN_SEGMENTS = st.sampled_from(
    [SITE, "harbour", *(b.device_id for b in NATIVE.values()), "alarm", "telemetry", "status", "", "+", "#"]
)
_KNOWN_NAMES = st.sampled_from([b.friendly_name or "" for b in ZIGBEE.values()] + ["bridge", "bridge/state"])


@st.composite
def topics(draw: st.DrawFn) -> str:
    """Any topic: random text, or the profiles' shapes with real and made-up pieces."""
    shape = draw(st.sampled_from(["text", "careline", "zigbee", "zigbee-suffix"]))
    if shape == "text":
        return draw(st.text(st.characters(blacklist_categories=["Cs"]), max_size=40))
    if shape == "careline":
        parts = draw(st.lists(st.one_of(_KNOWN_SEGMENTS, _SEGMENT), min_size=1, max_size=5))
        return "/".join(["careline", *parts])
    name = draw(st.one_of(_KNOWN_NAMES, _SEGMENT))
    if shape == "zigbee-suffix":
        name += draw(st.sampled_from(["/availability", "/set", "/get", "/set/state", "/x/availability"]))
    return f"zigbee2mqtt/{name}"


# -- native payloads (devices/schemas/careline-event.schema.json) ---------------------------------------

_PRINTABLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
EVENT_IDS = st.text(_PRINTABLE, min_size=8, max_size=64)
_TEXT = st.text(max_size=256)  # hypothesis never draws surrogates (category Cs) by default
SCALARS = st.one_of(
    st.integers(min_value=-(10**19), max_value=10**19),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    _TEXT,
)
EXTRAS = st.dictionaries(st.text(min_size=1, max_size=64), SCALARS, max_size=32)
_OFFSETS = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
EVENT_TIMES = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime(2262, 4, 9), timezones=st.just(UTC)
).flatmap(lambda utc: _OFFSETS.map(lambda zone: utc.astimezone(zone)))


@st.composite
def valid_payloads(draw: st.DrawFn, kinds: st.SearchStrategy[EventKind] | None = None) -> dict[str, Any]:
    """A payload the published schema accepts; `ts` as ISO-8601 with an offset or epoch milliseconds."""
    ts = draw(EVENT_TIMES)
    document: dict[str, Any] = {
        "v": careline_json.SCHEMA_VERSION,
        "event_id": draw(EVENT_IDS),
        "ts": ts.isoformat() if draw(st.booleans()) else int(ts.timestamp() * 1000),
        "kind": draw(st.sampled_from(list(EventKind)) if kinds is None else kinds).value,
    }
    if draw(st.booleans()):
        document["value"] = draw(st.one_of(st.none(), SCALARS))
    if draw(st.booleans()):
        document["extra"] = draw(EXTRAS)
    if draw(st.booleans()):
        document["test"] = draw(st.booleans())
    return document


#: Per side field, values the schema refuses, as raw JSON text (some are not JSON at all to Python).
BROKEN_SIDE_FIELDS: dict[str, list[str]] = {
    "ts": [
        '"yesterday"',
        '"2025-03-14T08:29:58"',
        "0",
        "1e999999",
        "-1e999999",
        "NaN",
        "Infinity",
        "true",
        "[1]",
        "{}",
        "99999999999999999999999",
        '"9999-12-31T23:59:59-23:59"',
        '"2999-01-01T00:00:00Z"',
        '"\\ud800"',
    ],
    "value": ["[1, 2]", '{"a": 1}', "NaN", "-Infinity", "1e999999", json.dumps("x" * 257), "1" * 40],
    "extra": [
        "[]",
        '"x"',
        "7",
        json.dumps({f"k{i}": i for i in range(33)}),
        json.dumps({"k" * 65: 1}),
        '{"": 1}',
        '{"nested": {"a": 1}}',
        '{"n": NaN}',
        '{"big": ' + "9" * 30 + "}",
    ],
    "test": ['"yes"', "1", "null", "[]"],
    "v": ["2", '"1"', "true", "1.0", "null"],
    "event_id": [
        "12345678",
        '"short"',
        '"with space in it"',
        json.dumps("e" * 65),
        '"\\u00e9\\u00e9\\u00e9\\u00e9x"',
    ],
    # `device` may only name the topic's own device (any other string is spoofing, refused even for an
    # alarm); a value that is not a string is a side fault.
    "device": ["5", "true", "[]", "{}", "1.5"],
    # The payload never says where: a device cannot move an alarm to another room or resident.
    "site": ['"harbour"'],
    "room": ['"999"'],
    "resident": ['"somebody-else"'],
}


@st.composite
def broken_payloads(draw: st.DrawFn, kinds: st.SearchStrategy[EventKind]) -> tuple[str, bytes]:
    """A valid payload of one of `kinds` with exactly one side field broken: (field, bytes)."""
    document = draw(valid_payloads(kinds))
    field = draw(st.sampled_from(sorted(BROKEN_SIDE_FIELDS)))
    document.pop(field, None)
    return field, spliced(document, {field: draw(st.sampled_from(BROKEN_SIDE_FIELDS[field]))})
