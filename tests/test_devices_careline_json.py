"""Careline JSON profile: the native payload, its validation and its published schema."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from devices import careline_json
from devices.careline_json import CarelineEventPayload, careline_payload_json_schema, render_schema
from devices.model import (
    Binding,
    DecodeError,
    DeviceEvent,
    DeviceType,
    EventKind,
    Lane,
    RawMessage,
    SpoofedMessageError,
)
from devices.registry import DeviceRegistry
from gateway.alarm_lane import may_be_redelivery

RECEIVED = datetime(2025, 3, 14, 8, 30, tzinfo=UTC)
PENDANT = Binding("pendant-7", DeviceType.SOS_BUTTON, "sunrise", "204", "wang")
WATCH = Binding("watch-3", DeviceType.VITALS_MONITOR, "sunrise", None, "li")
ZIGBEE_DOOR = Binding("door-9", DeviceType.DOOR_SENSOR, "sunrise", "204", None, "zigbee2mqtt")
REGISTRY = DeviceRegistry([PENDANT, WATCH, ZIGBEE_DOOR])
TOPIC = "careline/sunrise/pendant-7/alarm"


def payload(**fields: object) -> dict[str, object]:
    document: dict[str, object] = {
        "v": 1,
        "event_id": "01HQ7ZK3V9",
        "ts": "2025-03-14T08:29:59Z",
        "kind": "sos",
    }
    document.update(fields)
    return document


def message(body: bytes | dict[str, object], topic: str = TOPIC) -> RawMessage:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return RawMessage(topic=topic, payload=raw, received_at=RECEIVED, lane=Lane.ALARM)


def decode(body: bytes | dict[str, object], topic: str = TOPIC) -> list[DeviceEvent]:
    return careline_json.decode(message(body, topic), REGISTRY)


def decode_error(body: bytes | dict[str, object], topic: str = TOPIC) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        decode(body, topic)
    return caught.value


# --- decoding -----------------------------------------------------------------------------------


def test_an_sos_payload_decodes_to_one_event_attributed_by_the_binding() -> None:
    [event] = decode(payload())

    assert event == DeviceEvent(
        device_id="pendant-7",
        device_type=DeviceType.SOS_BUTTON,
        site="sunrise",
        room="204",
        resident="wang",
        kind=EventKind.SOS,
        value=None,
        ts=datetime(2025, 3, 14, 8, 29, 59, tzinfo=UTC),
        received_at=RECEIVED,
        message_key="careline:pendant-7:01HQ7ZK3V9",
    )


def test_a_telemetry_reading_keeps_its_value_and_extra_fields() -> None:
    body = payload(kind="heart_rate", value=72, extra={"confidence": 0.93, "worn": True, "fw": "2.1.0"})

    [event] = decode(body, "careline/sunrise/watch-3/telemetry")

    assert (event.kind, event.value) == (EventKind.HEART_RATE, 72)
    assert event.extra == {"confidence": 0.93, "worn": True, "fw": "2.1.0"}
    assert event.room is None


def test_the_status_channel_is_accepted() -> None:
    [event] = decode(payload(kind="battery", value=87), "careline/sunrise/pendant-7/status")

    assert event.value == 87


def test_a_redelivery_has_the_same_message_key_and_another_event_id_does_not() -> None:
    first = decode(payload())[0].message_key

    assert decode(payload())[0].message_key == first
    assert decode(payload(event_id="01HQ7ZK3VA"))[0].message_key != first


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2025-03-14T16:29:59+08:00", datetime(2025, 3, 14, 16, 29, 59, tzinfo=timezone(timedelta(hours=8)))),
        ("2025-03-14T08:29:59.250Z", datetime(2025, 3, 14, 8, 29, 59, 250000, tzinfo=UTC)),
        (1741940999000, datetime(2025, 3, 14, 8, 29, 59, tzinfo=UTC)),
        (1741940999250.0, datetime(2025, 3, 14, 8, 29, 59, 250000, tzinfo=UTC)),
    ],
)
def test_event_time_is_iso_8601_with_an_offset_or_epoch_milliseconds(ts: object, expected: datetime) -> None:
    assert decode(payload(ts=ts))[0].ts == expected


# --- attribution and topics ---------------------------------------------------------------------


def test_an_unknown_device_is_a_decode_error_naming_it() -> None:
    error = decode_error(payload(), "careline/sunrise/ghost-1/alarm")

    assert error.reason == "unknown device 'ghost-1'"
    assert error.device_id == "ghost-1"


def test_a_device_reporting_under_another_site_is_rejected() -> None:
    error = decode_error(payload(), "careline/harbour/pendant-7/alarm")

    assert "bound to site 'sunrise'" in error.reason
    assert error.device_id == "pendant-7"


def test_a_zigbee2mqtt_device_cannot_report_through_the_careline_profile() -> None:
    assert "profile 'zigbee2mqtt'" in decode_error(payload(), "careline/sunrise/door-9/alarm").reason


@pytest.mark.parametrize("field", ["site", "room", "resident", "device_id", "device_type"])
def test_a_payload_cannot_claim_its_own_attribution(field: str) -> None:
    assert decode_error(payload(kind="battery", value=80, **{field: "elsewhere"})).reason == (
        f"invalid payload: {field}: Extra inputs are not permitted"
    )


@pytest.mark.parametrize("field", ["site", "room", "resident", "device_id", "device_type"])
def test_an_sos_claiming_its_own_attribution_is_still_attributed_by_the_binding(field: str) -> None:
    [event] = decode(payload(**{field: "elsewhere"}))

    assert (event.kind, event.device_id, event.site, event.room, event.resident) == (
        EventKind.SOS,
        "pendant-7",
        "sunrise",
        "204",
        "wang",
    )
    assert event.faults == (f"{field}: Extra inputs are not permitted; unknown key ignored",)


@pytest.mark.parametrize(
    "topic",
    [
        "careline/sunrise/pendant-7",
        "careline/sunrise/pendant-7/alarm/extra",
        "careline//pendant-7/alarm",
        "careline/sunrise/pendant-7/",
        "careline/sunrise/pendant-7/commands",
        "carelines/sunrise/pendant-7/alarm",
    ],
)
def test_malformed_topics_are_decode_errors(topic: str) -> None:
    assert re.search("careline topic|channel", decode_error(payload(), topic).reason)


# --- payload validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xc3\x28", "payload is not UTF-8"),
        (b"{sos}", "payload is not valid JSON"),
        (b'{"v": 1, "kind": "sos"', "payload is not valid JSON"),
        (b"[]", "payload must be a JSON object, got an array"),
        (b"null", "payload must be a JSON object, got null"),
        (b"42", "payload must be a JSON object, got a number"),
        (b"[" * 40_000, "payload is not valid JSON"),
        (b" " * (64 * 1024 + 1), "payload of 65537 bytes exceeds 65536"),
    ],
)
def test_payloads_that_are_not_a_json_object_are_decode_errors(body: bytes, reason: str) -> None:
    error = decode_error(body)

    assert error.reason == reason
    assert error.device_id == "pendant-7"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"v": 2}, "v: Value error, unsupported schema version 2 (expected 1)"),
        ({"v": True}, "v: Input should be a valid integer"),
        ({"v": "1"}, "v: Input should be a valid integer"),
        ({"event_id": "short"}, "event_id: String should have at least 8 characters"),
        ({"event_id": "x" * 65}, "event_id: String should have at most 64 characters"),
        ({"event_id": "has space"}, "event_id: String should match pattern"),
        ({"event_id": 12345678}, "event_id: Input should be a valid string"),
        ({"ts": "2025-03-14T08:29:59"}, "ts: Value error, ISO-8601 date-time needs a time zone offset"),
        ({"ts": "last tuesday"}, "ts: Value error, is not an ISO-8601 date-time"),
        ({"ts": 1741940999}, "ts: Value error, is before 2000-01-01 (epoch seconds"),
        ({"ts": 10**19}, "ts: Value error, epoch milliseconds out of range"),
        ({"ts": True}, "ts: Value error, must be an ISO-8601 string or epoch milliseconds"),
        ({"kind": "explosion"}, "kind: Input should be 'sos', 'fall'"),
        ({"value": {"bpm": 72}}, "value: Value error, must be a finite number, a boolean or a string"),
        ({"value": "x" * 257}, "value: Value error, string longer than 256 characters"),
        ({"extra": {"nested": {"a": 1}}}, "extra.nested: Value error, must be a finite number"),
        ({"extra": {"k" * 65: 1}}, f"extra.{'k' * 65}.[key]: String should have at most 64 characters"),
        ({"extra": {f"k{i}": i for i in range(33)}}, "extra: Dictionary should have at most 32 items"),
        ({"extra": ["a"]}, "extra: Input should be a valid dictionary"),
    ],
)
def test_invalid_fields_are_reported_with_the_field_and_the_first_problem(
    fields: dict[str, object], reason: str
) -> None:
    # A battery report: nothing an alarm device's fault would be forgiven for (see the salvage tests).
    assert decode_error({**payload(kind="battery"), **fields}).reason.startswith(f"invalid payload: {reason}")


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        (b"NaN", "value: Value error, must be a finite number"),
        (b"-Infinity", "value: Value error, must be a finite number"),
        (b"1" + b"0" * 10_000, "value: Value error, must be a finite number"),
    ],
)
def test_numbers_python_cannot_hold_cost_only_their_field(number: bytes, reason: str) -> None:
    body = json.dumps(payload(kind="battery")).encode().replace(b"}", b', "value": ' + number + b"}")

    assert decode_error(body).reason.startswith(f"invalid payload: {reason}")


def test_a_number_beyond_float_range_is_not_a_finite_value() -> None:
    body = json.dumps(payload(kind="battery")).encode().replace(b"}", b', "value": 1e400}')

    assert (
        decode_error(body).reason
        == "invalid payload: value: Value error, must be a finite number, a boolean or a string"
    )


@pytest.mark.parametrize("field", ["v", "event_id", "ts", "kind"])
def test_required_fields_must_be_present(field: str) -> None:
    body = payload(kind="battery")
    del body[field]

    assert decode_error(body).reason == f"invalid payload: {field}: Field required"


def test_long_validation_messages_are_shortened() -> None:
    assert len(decode_error(payload(kind="x" * 500)).reason) <= 300


# --- alarms read despite faults -----------------------------------------------------------------

RECEIVE_TIME_USED = "receive time used"


@pytest.mark.parametrize(
    ("fields", "fault"),
    [
        ({"ts": 0}, "ts: Value error, is before 2000-01-01 (epoch seconds sent instead of milliseconds?)"),
        ({"ts": 1741940999}, "ts: Value error, is before 2000-01-01"),
        ({"ts": "2025-03-14T08:29:59"}, "ts: Value error, ISO-8601 date-time needs a time zone offset"),
        ({"ts": None}, "ts: Value error, must be an ISO-8601 string or epoch milliseconds"),
    ],
)
def test_an_sos_with_an_unusable_device_time_is_timed_at_reception_and_says_so(
    fields: dict[str, object], fault: str
) -> None:
    [event] = decode(payload(**fields))

    assert (event.kind, event.ts, event.message_key) == (
        EventKind.SOS,
        RECEIVED,
        "careline:pendant-7:01HQ7ZK3V9",
    )
    [recorded] = event.faults
    assert recorded.startswith(fault)
    assert recorded.endswith(f"; {RECEIVE_TIME_USED}")


@pytest.mark.parametrize(
    ("body", "fault"),
    [
        (payload(v=2), "v: Value error, unsupported schema version 2 (expected 1); read as version 1"),
        (payload(colour="red"), "colour: Extra inputs are not permitted; unknown key ignored"),
        (
            payload(event_id="a1"),
            "event_id: String should have at least 8 characters; kept as the message id",
        ),
        (
            payload(value={"bpm": 72}),
            "value: Value error, must be a finite number, a boolean or a string; ignored",
        ),
        (
            payload(extra={"fw": ["2"]}),
            "extra.fw: Value error, must be a finite number, a boolean or a string",
        ),
    ],
)
def test_a_small_schema_fault_in_an_sos_is_recorded_on_the_event_not_dead_lettered(
    body: dict[str, object], fault: str
) -> None:
    [event] = decode(body)

    assert event.kind is EventKind.SOS
    assert event.ts == datetime(2025, 3, 14, 8, 29, 59, tzinfo=UTC)
    assert event.value is None
    assert event.extra == {}
    [recorded] = event.faults
    assert recorded.startswith(fault)


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"1" + b"0" * 10_000])
def test_an_unreadable_number_in_an_sos_costs_only_its_field(number: bytes) -> None:
    body = json.dumps(payload(extra={"fw": "2.1"})).encode().replace(b"}}", b'}, "value": ' + number + b"}")

    [event] = decode(body)

    assert (event.kind, event.value, event.extra) == (EventKind.SOS, None, {"fw": "2.1"})
    assert event.faults == ("value: Value error, must be a finite number, a boolean or a string; ignored",)


def test_a_short_event_id_still_recognises_a_redelivery() -> None:
    first, again = decode(payload(event_id="p-1")), decode(payload(event_id="p-1"))

    assert first[0].message_key == again[0].message_key == "careline:pendant-7:p-1"
    assert decode(payload(event_id="p-2"))[0].message_key != first[0].message_key


@pytest.mark.parametrize("event_id", [None, "", 42, "has space", "x" * 65])
def test_an_sos_without_a_usable_event_id_is_keyed_by_its_content(event_id: object) -> None:
    body = payload(event_id=event_id)
    if event_id is None:
        del body["event_id"]

    [event] = decode(body)
    [redelivered] = decode(body)
    [other] = decode({**body, "ts": "2025-03-14T08:30:00Z"})

    assert re.fullmatch(r"careline-content:[0-9a-f]{32}", event.message_key)
    assert redelivered.message_key == event.message_key != other.message_key
    assert event.faults[0].endswith("; redelivery recognised by content only")
    # Compared only when the broker says it is a resend: two identical presses are two presses.
    new_press = message(body)
    resend = RawMessage(new_press.topic, new_press.payload, RECEIVED, Lane.ALARM, duplicate=True)
    assert not may_be_redelivery(new_press, event)
    assert may_be_redelivery(resend, event)


@pytest.mark.parametrize("kind", [EventKind.FALL, EventKind.SMOKE])
def test_a_fall_or_smoke_with_a_fault_is_read_too(kind: EventKind) -> None:
    [event] = decode(payload(kind=kind.value, ts=0))

    assert (event.kind, event.ts) == (kind, RECEIVED)
    assert event.faults


@pytest.mark.parametrize("kind", ["fall_cancel", "door_open", "door_closed", "smoke_clear", "battery"])
def test_a_faulty_message_that_reports_no_emergency_stays_a_dead_letter(kind: str) -> None:
    # A faulty cancel must never close a real fall.
    assert decode_error(payload(kind=kind, ts=0)).reason.startswith("invalid payload: ts: Value error")


def test_a_faulty_sos_from_a_device_that_is_not_an_alarm_device_stays_a_dead_letter() -> None:
    error = decode_error(payload(ts=0), "careline/sunrise/watch-3/alarm")

    assert error.reason.startswith("invalid payload: ts: Value error")


def test_an_sos_with_a_key_that_is_not_valid_unicode_is_still_an_sos() -> None:
    body = json.dumps(payload()).encode().replace(b"}", b', "\\ud800": 1}')

    [event] = decode(body)

    assert event.kind is EventKind.SOS
    # The lone surrogate became U+FFFD when parsed (devices/lenient_json.py): a key no store could hold.
    assert event.faults == ("\ufffd: Extra inputs are not permitted; unknown key ignored",)


def test_the_faults_kept_on_an_event_are_bounded() -> None:
    [event] = decode(payload(**{f"k{i}": i for i in range(40)}))

    assert len(event.faults) == 9
    assert event.faults[-1] == "32 more faults"


# --- device tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("fields", [{"test": True}, {"extra": {"test": True}}])
def test_a_test_flag_is_carried_on_the_event(fields: dict[str, object]) -> None:
    [event] = decode(payload(kind="smoke", value=True, **fields))

    assert event.test is True
    assert event.faults == ()


@pytest.mark.parametrize("fields", [{}, {"test": False}, {"extra": {"test": "yes"}}])
def test_without_a_true_test_flag_the_event_is_no_test(fields: dict[str, object]) -> None:
    assert decode(payload(kind="smoke", **fields))[0].test is False


def test_a_malformed_test_flag_on_smoke_is_a_fault_and_the_smoke_counts_as_real() -> None:
    [event] = decode(payload(kind="smoke", test="yes"))

    assert event.test is False
    assert event.faults == ("test: Input should be a valid boolean; not treated as a test",)


# --- schema -------------------------------------------------------------------------------------


def test_the_schema_describes_the_payload_model() -> None:
    schema = careline_payload_json_schema()

    assert schema["$id"] == careline_json.SCHEMA_ID
    assert schema["title"] == "Careline device event"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"v", "event_id", "ts", "kind"}
    assert schema["$defs"]["EventKind"]["enum"] == [kind.value for kind in EventKind]


@pytest.mark.parametrize("path", careline_json.SCHEMA_PATHS, ids=lambda path: str(path.parent.name))
def test_the_published_schema_files_match_the_model(path: Path) -> None:
    # If this fails, the model changed: run `python -m devices.careline_json` and commit both files.
    assert path.read_text(encoding="utf-8") == render_schema()


def test_the_schema_script_writes_both_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    targets = (tmp_path / "devices" / "schemas" / "a.json", tmp_path / "docs" / "a.json")
    monkeypatch.setattr(careline_json, "SCHEMA_PATHS", targets)

    careline_json.write_schema_files()

    assert [json.loads(target.read_text()) for target in targets] == [careline_payload_json_schema()] * 2


def test_the_model_is_the_one_the_schema_was_generated_from() -> None:
    parsed = CarelineEventPayload.model_validate(payload(value=True))

    assert parsed.value is True
    assert parsed.kind is EventKind.SOS


# --- fuzz ---------------------------------------------------------------------------------------


def _random_value(rng: random.Random, depth: int = 0) -> object:
    pick = rng.randrange(8 if depth < 3 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.random() < 0.5
    if pick == 2:
        return rng.choice([1, 0, -1, 2**53, rng.randint(0, 2 * 10**12)])
    if pick == 3:
        return rng.uniform(-1e13, 1e13)
    if pick == 4:
        return rng.choice(
            ["sos", "fall", "2025-03-14T08:00:00+08:00", "", "x" * rng.randrange(100), "\ud7ff"]
        )
    if pick == 5:
        return rng.randbytes(rng.randrange(12)).decode("latin-1")
    if pick == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    keys = ["v", "event_id", "ts", "kind", "value", "extra", "site"]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randrange(6))}


def _random_body(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.25:
        return rng.randbytes(rng.randrange(80))
    if roll < 0.6:
        # Start from a valid payload and break one field, so validation (not JSON parsing) is exercised.
        body = payload()
        body[rng.choice([*body, "value", "extra"])] = _random_value(rng)
        return json.dumps(body).encode()
    return json.dumps(_random_value(rng)).encode()


def test_random_payloads_only_ever_produce_events_or_decode_errors() -> None:
    rng = random.Random(1403)
    for _ in range(2000):
        try:
            events = decode(_random_body(rng))
        except DecodeError:
            continue
        assert [event.device_id for event in events] == ["pendant-7"]


# --- speaking for another device ----------------------------------------------------------------


def test_a_payload_naming_its_own_device_is_read() -> None:
    [event] = decode(payload(device="pendant-7"))

    assert (event.device_id, event.kind) == ("pendant-7", EventKind.SOS)


@pytest.mark.parametrize("kind", ["sos", "fall", "smoke", "fall_cancel", "heartbeat"])
def test_a_payload_naming_another_device_is_refused_as_spoofing_even_for_an_alarm(kind: str) -> None:
    error = decode_error(payload(kind=kind, device="pendant-8"))

    assert isinstance(error, SpoofedMessageError)
    assert error.reason.startswith("spoofing: payload names device 'pendant-8'")
    assert error.device_id == "pendant-7"


def test_a_spoofing_sos_is_refused_although_its_other_fields_are_broken() -> None:
    """Salvage reads a broken alarm; it must never read one that claims to be someone else."""
    error = decode_error(payload(ts="yesterday", value=[1], device="pendant-8"))

    assert isinstance(error, SpoofedMessageError)


def test_a_device_field_that_is_not_a_string_is_a_side_fault_that_costs_no_alarm() -> None:
    [event] = decode(payload(device=7))

    assert event.kind is EventKind.SOS
    assert any(fault.startswith("device:") and fault.endswith("; ignored") for fault in event.faults)
