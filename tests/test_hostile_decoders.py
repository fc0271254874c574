"""Hostile bytes against every device decoder (issue 10): for any topic and any bytes, events or a
`DecodeError`, nothing else; an alarm from a bound alarm device survives a broken side field; where an
event comes from (site, room, resident) is the binding's, never the payload's; and the limits hold."""

from __future__ import annotations

import json
import math
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from harness import site_config
from hostile import (
    ALARM_NATIVE,
    BOUNDED,
    BROKEN_SIDE_FIELDS,
    NATIVE,
    OTHER_NATIVE,
    RECEIVED,
    REGISTRY,
    ZIGBEE,
    broken_payloads,
    message,
    native_topic,
    spliced,
    topics,
    valid_payloads,
    zigbee_topic,
)
from hypothesis import example, given
from hypothesis import strategies as st

from devices import careline_json, lenient_json, zigbee2mqtt
from devices.decode import MAX_PAYLOAD_BYTES, MAX_TOPIC_CHARS, decode
from devices.model import (
    ALARM_EVENT_KINDS,
    EARLIEST_EVENT_TIME,
    LATEST_EVENT_TIME,
    MAX_DEVICE_ID_CHARS,
    MAX_REASON_CHARS,
    Binding,
    DecodeError,
    DeviceEvent,
    DeviceType,
    EventKind,
    RawMessage,
    SpoofedMessageError,
)
from gateway.config import CarelineConfig
from gateway.directory import device_registry, rule_context
from gateway.telemetry.points import to_line
from rules import RuleEngine, default_rules

SALVAGED = sorted(careline_json.SALVAGED_KINDS)
NOT_SALVAGED = sorted(set(EventKind) - careline_json.SALVAGED_KINDS)


def outcome(raw: RawMessage) -> list[DeviceEvent] | DecodeError:
    """What ingest sees; any other exception fails the test with its traceback."""
    refused: DecodeError | None = None
    try:
        events = decode(raw, REGISTRY)
    except DecodeError as exc:
        refused = exc
    if refused is not None:
        assert len(refused.reason) <= MAX_REASON_CHARS
        assert refused.device_id is None or len(refused.device_id) <= MAX_DEVICE_ID_CHARS
        return refused
    for event in events:
        assert_storable(event)
    return events


def assert_storable(event: DeviceEvent) -> None:
    """What every store downstream needs: a binding's attribution, UTF-8-encodable text, a time in range."""
    binding = REGISTRY.by_id(event.device_id)
    assert binding is not None
    assert (event.site, event.room, event.resident, event.device_type) == (
        binding.site,
        binding.room,
        binding.resident,
        binding.device_type,
    )
    assert EARLIEST_EVENT_TIME <= event.ts < LATEST_EVENT_TIME
    texts = [event.message_key, *event.faults, *event.extra]
    texts += [value for value in (event.value, *event.extra.values()) if isinstance(value, str)]
    for text in texts:
        text.encode("utf-8")  # a lone surrogate would make the incident store refuse the alarm
    for number in (event.value, *event.extra.values()):
        if isinstance(number, float):
            assert math.isfinite(number)
    assert len(event.faults) <= 9


# --- any topic, any bytes ------------------------------------------------------------------------


@BOUNDED
@given(topic=topics(), payload=st.binary(max_size=300))
def test_any_topic_and_any_bytes_give_events_or_a_decode_error(topic: str, payload: bytes) -> None:
    outcome(message(topic, payload))


_JSON_TEXT = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
).map(json.dumps)
_ZIGBEE2MQTT_KEYS = [key for key, _ in zigbee2mqtt._EXTRACTORS] + ["last_seen", "state"]
_KEYS = st.sampled_from(["v", "event_id", "ts", "kind", "value", "extra", "test", *_ZIGBEE2MQTT_KEYS])


@st.composite
def json_objects(draw: st.DrawFn) -> bytes:
    """Objects with the keys the decoders read, and any JSON (or NaN / huge numbers) as their values."""
    raw = st.one_of(_JSON_TEXT, st.sampled_from(["NaN", "1e999999", "-0", "1" * 30, '"\\udfff"', '"sos"']))
    fields = draw(st.dictionaries(_KEYS, raw, max_size=8))
    return ("{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in fields.items()) + "}").encode()


@BOUNDED
@given(
    binding=st.sampled_from([*NATIVE.values(), *ZIGBEE.values()]),
    payload=json_objects(),
    channel=st.sampled_from(["alarm", "telemetry", "status"]),
)
def test_json_objects_with_the_keys_decoders_read_give_events_or_a_decode_error(
    binding: Binding, payload: bytes, channel: str
) -> None:
    topic = zigbee_topic(binding) if binding.profile == "zigbee2mqtt" else native_topic(binding, channel)
    outcome(message(topic, payload))


# --- native payloads: round trip ------------------------------------------------------------------


@BOUNDED
@given(binding=st.sampled_from(list(NATIVE.values())), document=valid_payloads())
def test_a_valid_native_payload_decodes_to_the_values_sent_attributed_by_the_binding(
    binding: Binding, document: dict[str, object]
) -> None:
    [event] = careline_json.decode(message(native_topic(binding), json.dumps(document).encode()), REGISTRY)
    assert_storable(event)
    assert (event.kind.value, event.value, event.extra) == (
        document["kind"],
        document.get("value"),
        document.get("extra", {}),
    )
    sent = document["ts"]
    expected = datetime.fromisoformat(sent) if isinstance(sent, str) else None
    if expected is not None:
        assert event.ts == expected
    else:
        assert isinstance(sent, int)
        assert abs(event.ts.timestamp() * 1000 - sent) < 1
    extra = document.get("extra", {})
    assert isinstance(extra, dict)
    assert event.test is (document.get("test") is True or extra.get("test") is True)
    assert event.faults == ()
    assert event.message_key == f"careline:{binding.device_id}:{document['event_id']}"


# --- native payloads: one broken side field --------------------------------------------------------


@BOUNDED
@given(
    binding=st.sampled_from(ALARM_NATIVE),
    broken=broken_payloads(st.sampled_from(SALVAGED)),
)
def test_an_alarm_from_an_alarm_device_survives_any_one_broken_side_field(
    binding: Binding, broken: tuple[str, bytes]
) -> None:
    field, payload = broken
    [event] = careline_json.decode(message(native_topic(binding), payload), REGISTRY)
    assert_storable(event)
    assert event.kind in careline_json.SALVAGED_KINDS
    assert event.kind.value == json.loads(payload)["kind"]
    assert any(fault.startswith(field) for fault in event.faults), event.faults
    if field == "ts":
        assert event.ts == RECEIVED


@BOUNDED
@given(
    binding=st.sampled_from(list(NATIVE.values())),
    broken=broken_payloads(st.sampled_from(NOT_SALVAGED)),
)
def test_a_non_alarm_kind_with_a_broken_side_field_is_refused_naming_the_field(
    binding: Binding, broken: tuple[str, bytes]
) -> None:
    field, payload = broken
    with pytest.raises(DecodeError) as refused:
        careline_json.decode(message(native_topic(binding), payload), REGISTRY)
    assert refused.value.reason.startswith(f"invalid payload: {field}"), refused.value.reason
    assert refused.value.device_id == binding.device_id


@BOUNDED
@given(
    binding=st.sampled_from(OTHER_NATIVE),
    broken=broken_payloads(st.sampled_from(SALVAGED)),
)
def test_an_alarm_kind_from_a_device_that_raises_no_alarms_is_not_salvaged(
    binding: Binding, broken: tuple[str, bytes]
) -> None:
    _, payload = broken
    with pytest.raises(DecodeError, match=r"^invalid payload: "):
        careline_json.decode(message(native_topic(binding), payload), REGISTRY)


@BOUNDED
@given(
    binding=st.sampled_from(list(NATIVE.values())),
    document=valid_payloads(),
    claimed=st.one_of(
        st.sampled_from([b.device_id for b in NATIVE.values()]), st.text(min_size=1, max_size=64)
    ),
)
def test_a_payload_naming_another_device_is_refused_as_spoofing_even_for_an_alarm(
    binding: Binding, document: dict[str, object], claimed: str
) -> None:
    raw = message(native_topic(binding), json.dumps(document | {"device": claimed}).encode())
    if claimed == binding.device_id:
        [event] = careline_json.decode(raw, REGISTRY)
        assert event.device_id == binding.device_id
        return
    with pytest.raises(SpoofedMessageError) as refused:
        careline_json.decode(raw, REGISTRY)
    assert refused.value.device_id == binding.device_id
    assert len(refused.value.reason) <= MAX_REASON_CHARS


@BOUNDED
@given(
    binding=st.sampled_from(list(ZIGBEE.values())),
    claimed=st.text(min_size=1, max_size=80),
)
def test_a_zigbee2mqtt_state_naming_another_device_is_refused_as_spoofing(
    binding: Binding, claimed: str
) -> None:
    state = {"action": "emergency", "smoke": True, "device": {"friendlyName": claimed}}
    raw = message(zigbee_topic(binding), json.dumps(state).encode())
    if claimed == binding.friendly_name:
        assert zigbee2mqtt.decode(raw, REGISTRY)
        return
    with pytest.raises(SpoofedMessageError):
        zigbee2mqtt.decode(raw, REGISTRY)


# --- Zigbee2MQTT states ---------------------------------------------------------------------------

_NUMBERS = {
    "battery": (EventKind.BATTERY, st.integers(0, 100)),
    "linkquality": (EventKind.LINK_QUALITY, st.integers(0, 255)),
    "temperature": (EventKind.TEMPERATURE, st.floats(-40, 80, allow_nan=False)),
    "humidity": (EventKind.HUMIDITY, st.floats(0, 100, allow_nan=False)),
    "heart_rate": (EventKind.HEART_RATE, st.integers(20, 250)),
}
#: Per alarm device type, one state key that raises its alarm, and the alarm.
_ALARM_KEYS = {
    DeviceType.SOS_BUTTON: ("action", "emergency", EventKind.SOS),
    DeviceType.FALL_SENSOR: ("fall_down_status", "fall", EventKind.FALL),
    DeviceType.SMOKE_DETECTOR: ("smoke", True, EventKind.SMOKE),
    DeviceType.DOOR_SENSOR: ("contact", False, EventKind.DOOR_OPEN),
}
_BROKEN_READINGS = ["battery", "linkquality", "temperature", "humidity", "tamper", "battery_low", "motion"]
_BROKEN_VALUES = ['"high"', "NaN", "1e999999", "[]", "{}", '"\\ud800"', "1" * 25, "true"]


@BOUNDED
@given(
    binding=st.sampled_from(list(ZIGBEE.values())),
    readings=st.fixed_dictionaries({}, optional={key: strategy for key, (_, strategy) in _NUMBERS.items()}),
)
def test_zigbee2mqtt_readings_decode_to_the_values_sent(binding: Binding, readings: dict[str, float]) -> None:
    events = zigbee2mqtt.decode(message(zigbee_topic(binding), json.dumps(readings).encode()), REGISTRY)
    for event in events:
        assert_storable(event)
    assert {event.kind: event.value for event in events} == {
        _NUMBERS[key][0]: value for key, value in readings.items()
    }


@BOUNDED
@given(
    device_type=st.sampled_from(sorted(_ALARM_KEYS)),
    key=st.sampled_from(_BROKEN_READINGS),
    raw=st.sampled_from(_BROKEN_VALUES),
    last_seen=st.sampled_from(["", '"9999-12-31T23:59:59-23:59"', "1e300", "-1", '"x"']),
)
def test_a_zigbee2mqtt_alarm_survives_a_broken_reading_beside_it(
    device_type: DeviceType, key: str, raw: str, last_seen: str
) -> None:
    if raw == "true" and key in ("tamper", "battery_low", "motion"):
        raw = '"true"'  # a boolean is right for these keys
    alarm_key, alarm_value, kind = _ALARM_KEYS[device_type]
    binding = ZIGBEE[device_type]
    fields = {key: raw} | ({"last_seen": last_seen} if last_seen else {})
    payload = spliced({alarm_key: alarm_value}, fields)
    events = zigbee2mqtt.decode(message(zigbee_topic(binding), payload), REGISTRY)
    for event in events:
        assert_storable(event)
    [alarm] = [event for event in events if event.kind is kind]
    assert any(fault.startswith(key) for fault in alarm.faults), alarm.faults
    if last_seen:
        assert alarm.ts == RECEIVED


@BOUNDED
@given(
    binding=st.sampled_from(list(ZIGBEE.values())),
    key=st.sampled_from(_BROKEN_READINGS),
    raw=st.sampled_from(_BROKEN_VALUES[:-1]),
)
def test_a_zigbee2mqtt_state_without_an_alarm_is_refused_naming_its_broken_key(
    binding: Binding, key: str, raw: str
) -> None:
    with pytest.raises(DecodeError) as refused:
        zigbee2mqtt.decode(message(zigbee_topic(binding), spliced({"linkquality": 90}, {key: raw})), REGISTRY)
    assert refused.value.reason.startswith(key), refused.value.reason


# --- limits and classic hostile payloads ------------------------------------------------------------

SOS = {"v": 1, "event_id": "01HQ7ZK3V9AB", "ts": "2025-03-14T08:29:59Z", "kind": "sos"}
PENDANT = NATIVE[DeviceType.SOS_BUTTON]
ZIGBEE_PENDANT = ZIGBEE[DeviceType.SOS_BUTTON]


@pytest.mark.parametrize("topic", [native_topic(PENDANT), zigbee_topic(ZIGBEE_PENDANT)])
def test_a_payload_above_the_limit_is_refused_without_being_parsed(
    topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[bytes] = []
    real_loads = lenient_json.loads_payload

    def counted_loads(payload: bytes) -> object:
        parsed.append(payload)
        return real_loads(payload)

    monkeypatch.setattr(lenient_json, "loads_payload", counted_loads)
    valid_but_large = spliced(SOS, {"pad": json.dumps(" " * MAX_PAYLOAD_BYTES)})
    with pytest.raises(DecodeError, match=f"exceeds {MAX_PAYLOAD_BYTES}"):
        decode(message(topic, valid_but_large), REGISTRY)
    assert parsed == []
    # At the limit it is parsed (and this one, with an unknown key, is still an SOS).
    at_limit = spliced(SOS, {"pad": json.dumps(" " * (MAX_PAYLOAD_BYTES - 200))})
    assert len(at_limit) <= MAX_PAYLOAD_BYTES
    decode(message(topic, at_limit), REGISTRY)
    assert len(parsed) == 1


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * (MAX_PAYLOAD_BYTES // 2) + b"]" * (MAX_PAYLOAD_BYTES // 2),
        b'{"a":' * (MAX_PAYLOAD_BYTES // 6) + b"1" + b"}" * (MAX_PAYLOAD_BYTES // 6),
        b'{"v":1,"extra":' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        b"1" * MAX_PAYLOAD_BYTES,
        b'{"battery":' + b"9" * (MAX_PAYLOAD_BYTES - 20) + b"}",
        b'{"battery":0.' + b"9" * (MAX_PAYLOAD_BYTES - 20) + b"}",
        b'{"battery":1e' + b"9" * (MAX_PAYLOAD_BYTES - 20) + b"}",
        b'"' + b"\\u0000" * (MAX_PAYLOAD_BYTES // 7) + b'"',
    ],
    ids=[
        "deep-array",
        "deep-object",
        "deep-extra",
        "long-integer",
        "long-key-integer",
        "long-fraction",
        "huge-exponent",
        "escapes",
    ],
)
@pytest.mark.parametrize("topic", [native_topic(PENDANT), zigbee_topic(ZIGBEE_PENDANT)])
def test_pathological_json_within_the_limit_is_decided_quickly_in_little_memory(
    topic: str, payload: bytes
) -> None:
    assert len(payload) <= MAX_PAYLOAD_BYTES
    tracemalloc.start()
    started = time.perf_counter()
    try:
        outcome(message(topic, payload))
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0  # tracemalloc slows it down; undisturbed, each takes a few milliseconds
    assert peak < 4 * 1024 * 1024, f"{peak / 1e6:.1f} MB for a {len(payload)}-byte payload"


@pytest.mark.parametrize(
    ("raw_fields", "faulty"),
    [
        ({"value": "NaN"}, "value"),
        ({"value": "1e999999"}, "value"),
        ({"value": "-Infinity"}, "value"),
        ({"value": "1" * 5000}, "value"),
        ({"ts": "1e999999"}, "ts"),
        ({"extra": '{"spo2": NaN}'}, "extra"),
    ],
)
def test_unreadable_numbers_cost_only_their_field(raw_fields: dict[str, str], faulty: str) -> None:
    document = {key: value for key, value in SOS.items() if key not in raw_fields}
    [event] = decode(message(native_topic(PENDANT), spliced(document, raw_fields)), REGISTRY)
    assert event.kind is EventKind.SOS
    assert [fault.split(":")[0].split(".")[0] for fault in event.faults] == [faulty]


def test_a_duplicated_key_counts_once_the_last_one_as_json_says() -> None:
    sos_then_heartbeat = spliced(SOS, {"kind": '"heartbeat"'})
    [event] = decode(message(native_topic(PENDANT), sos_then_heartbeat), REGISTRY)
    assert (event.kind, event.faults) == (EventKind.HEARTBEAT, ())
    heartbeat_then_sos = spliced(SOS | {"kind": "heartbeat"}, {"kind": '"sos"'})
    [event] = decode(message(native_topic(PENDANT), heartbeat_then_sos), REGISTRY)
    assert event.kind is EventKind.SOS


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "x\\udc00y", "\\ud83d"])
@pytest.mark.parametrize("field", ["value", "extra-value", "extra-key"])
def test_a_lone_surrogate_becomes_a_replacement_character_and_the_sos_is_read(
    escape: str, field: str
) -> None:
    raw = {
        "value": {"value": f'"{escape}"'},
        "extra-value": {"extra": f'{{"note": "{escape}"}}'},
        "extra-key": {"extra": f'{{"{escape}": 1}}'},
    }[field]
    [event] = decode(message(native_topic(PENDANT), spliced(SOS, raw)), REGISTRY)
    assert event.kind is EventKind.SOS
    assert_storable(event)
    shown = [event.value, *event.extra, *event.extra.values()]
    assert any(isinstance(text, str) and "\ufffd" in text for text in shown), event


def test_a_surrogate_pair_escape_is_the_character_it_encodes() -> None:
    [event] = decode(message(native_topic(PENDANT), spliced(SOS, {"value": '"\\ud83d\\udea8"'})), REGISTRY)
    assert event.value == "🚨"


def test_a_byte_order_mark_before_the_payload_is_skipped() -> None:
    for topic, body in (
        (native_topic(PENDANT), SOS),
        (zigbee_topic(ZIGBEE_PENDANT), {"action": "emergency"}),
    ):
        [event, *_] = decode(message(topic, b"\xef\xbb\xbf" + json.dumps(body).encode()), REGISTRY)
        assert event.kind is EventKind.SOS


@pytest.mark.parametrize(
    "payload",
    [
        json.dumps(SOS | {"value": "救命"}, ensure_ascii=False).encode("gbk"),
        json.dumps(SOS, ensure_ascii=False).encode("utf-16"),
        json.dumps(SOS).encode("utf-32"),
        b"\xff\xfe" + json.dumps(SOS).encode(),
        json.dumps(SOS).encode()[:-1] + b"\xed\xa0\x80}",  # a surrogate encoded as UTF-8 bytes
    ],
    ids=["gbk", "utf-16", "utf-32", "utf-16-bom", "cesu-surrogate"],
)
def test_a_payload_that_is_not_utf8_is_refused_as_such(payload: bytes) -> None:
    with pytest.raises(DecodeError, match="not UTF-8") as refused:
        decode(message(native_topic(PENDANT), payload), REGISTRY)
    assert refused.value.device_id == PENDANT.device_id


@pytest.mark.parametrize(
    "topic",
    [
        "careline/" + "s" * 70_000 + "/alarm",
        "careline/sunrise/" + "d" * 70_000 + "/alarm",
        "zigbee2mqtt/" + "n" * 70_000,
        "x" * (MAX_TOPIC_CHARS + 1),
    ],
)
def test_a_topic_above_the_limit_is_refused_briefly(topic: str) -> None:
    refused = outcome(message(topic, json.dumps(SOS).encode()))
    assert isinstance(refused, DecodeError)
    assert refused.reason == f"topic of {len(topic)} characters exceeds {MAX_TOPIC_CHARS}"


def test_the_longest_topic_of_a_bound_device_is_within_the_limit() -> None:
    longest_name = "n" * 256  # gateway.config.DeviceConfig.friendly_name's bound
    assert len(f"zigbee2mqtt/{longest_name}/availability") <= MAX_TOPIC_CHARS
    assert len(f"careline/{'s' * 64}/{'d' * 64}/telemetry") <= MAX_TOPIC_CHARS


def test_a_reason_quoting_a_long_topic_is_bounded() -> None:
    topic = "careline/sunrise/" + "d" * 400 + "/nowhere"
    refused = outcome(message(topic, b"{}"))
    assert isinstance(refused, DecodeError)
    assert refused.reason.startswith("unknown careline channel")
    assert refused.device_id == "d" * MAX_DEVICE_ID_CHARS


@example(ts="9999-12-31T23:59:59-23:59")
@example(ts="0001-01-01T00:00:00+23:59")
@example(ts="2262-04-11T00:00:00+00:00")
@BOUNDED
@given(ts=st.datetimes(timezones=st.timezones() | st.just(UTC)).map(lambda t: t.isoformat()))
def test_an_sos_at_any_device_time_is_read_and_timed_within_the_stores_range(ts: str) -> None:
    [event] = decode(message(native_topic(PENDANT), json.dumps(SOS | {"ts": ts}).encode()), REGISTRY)
    assert event.kind is EventKind.SOS
    assert_storable(event)
    if event.faults:
        assert event.ts == RECEIVED
        assert [fault.split(":")[0] for fault in event.faults] == ["ts"]


def test_every_alarm_kind_is_either_salvaged_or_named_as_not() -> None:
    # If a new alarm kind is added, decide here whether a faulty one is still read.
    assert {EventKind.SOS, EventKind.FALL, EventKind.SMOKE} == careline_json.SALVAGED_KINDS
    assert careline_json.SALVAGED_KINDS <= ALARM_EVENT_KINDS
    assert set(BROKEN_SIDE_FIELDS) >= {"ts", "value", "extra", "test", "v", "event_id", "device"}
    assert RECEIVED.tzinfo is UTC


# --- what the decoders let through never crashes the alarm rules ---------------------------------------

_CONFIG = CarelineConfig.model_validate(site_config("mqtt://127.0.0.1:1", Path("/nonexistent.db"), 8080))
_REGISTRY = device_registry(_CONFIG)
_RULES = RuleEngine(default_rules(rule_context(_CONFIG)))
_BOUND_TOPICS = [
    f"zigbee2mqtt/{b.friendly_name or b.device_id}"
    if b.profile == "zigbee2mqtt"
    else f"careline/{b.site}/{b.device_id}/{channel}"
    for b in _REGISTRY.bindings()
    for channel in ("alarm", "telemetry")
]


@BOUNDED
@given(
    topic=st.sampled_from(_BOUND_TOPICS),
    payload=st.one_of(
        json_objects(), broken_payloads(st.sampled_from(list(EventKind))).map(lambda broken: broken[1])
    ),
    later_s=st.integers(0, 7 * 24 * 3600),
)
def test_whatever_the_decoders_let_through_never_crashes_the_alarm_rules(
    topic: str, payload: bytes, later_s: int
) -> None:
    # A rule that raised on a decoded event would stop the alarm lane on a message it never acknowledges:
    # the broker would hand it back after every restart.
    try:
        events = decode(message(topic, payload), _REGISTRY)
    except DecodeError:
        return
    now = datetime.now(UTC)
    for event in events:
        _RULES.handle(event, now)
    _RULES.tick(now + timedelta(seconds=later_s))


@BOUNDED
@given(
    binding=st.sampled_from([*NATIVE.values(), *ZIGBEE.values()]),
    payload=st.one_of(
        json_objects(),
        valid_payloads().map(lambda document: json.dumps(document).encode()),
        broken_payloads(st.sampled_from(SALVAGED)).map(lambda broken: broken[1]),
    ),
)
def test_every_decoded_event_becomes_a_telemetry_line_or_a_counted_refusal(
    binding: Binding, payload: bytes
) -> None:
    # The InfluxDB writer drops (and counts) what raises ValueError or TypeError; anything else would
    # stop the telemetry process's writer, and a line that is not UTF-8 would fail a whole batch.
    topic = zigbee_topic(binding) if binding.profile == "zigbee2mqtt" else native_topic(binding, "telemetry")
    refused = outcome(message(topic, payload))
    for event in [] if isinstance(refused, DecodeError) else refused:
        try:
            line = to_line(event)
        except ValueError:  # InvalidEventError is one
            continue
        # (A newline inside a quoted string field is fine: gateway/telemetry/points.py, tested against
        # a real InfluxDB in test_telemetry_influxdb1.py.)
        line.encode("utf-8")
        assert 0 <= int(line.rsplit(" ", 1)[1]) < 2**63
