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
from devices.model import Binding, DecodeError, DeviceEvent, DeviceType, EventKind, Lane, RawMessage
from devices.registry import DeviceRegistry

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
    assert decode_error(payload(**{field: "elsewhere"})).reason == (
        f"invalid payload: {field}: Extra inputs are not permitted"
    )


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
        (b'{"v": 1, "value": NaN}', "payload is not valid JSON"),
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
        ({"ts": 10**20}, "ts: Value error, epoch milliseconds out of range"),
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
    assert decode_error(payload(**fields)).reason.startswith(f"invalid payload: {reason}")


def test_a_number_beyond_float_range_is_not_a_finite_value() -> None:
    body = json.dumps(payload()).encode().replace(b"}", b', "value": 1e400}')

    assert (
        decode_error(body).reason
        == "invalid payload: value: Value error, must be a finite number, a boolean or a string"
    )


@pytest.mark.parametrize("field", ["v", "event_id", "ts", "kind"])
def test_required_fields_must_be_present(field: str) -> None:
    body = payload()
    del body[field]

    assert decode_error(body).reason == f"invalid payload: {field}: Field required"


def test_long_validation_messages_are_shortened() -> None:
    assert len(decode_error(payload(kind="x" * 500)).reason) <= 300


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
