"""The native Careline JSON profile: `careline/<site>/<device_id>/<channel>` carrying one event.

The payload says *what* happened and *when*; *where* and *to whom* always come from the configured
`Binding`, so a device that is moved or mis-flashed can never attribute an alarm to another room.

Run `python -m devices.careline_json` to regenerate the published JSON Schema files.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

from devices import lenient_json
from devices.model import (
    ALARM_DEVICE_TYPES,
    EARLIEST_EVENT_TIME,
    Binding,
    DecodeError,
    DeviceEvent,
    EventKind,
    RawMessage,
    SpoofedMessageError,
    UnboundDeviceError,
    storable_time,
)
from devices.registry import DeviceRegistry

PROFILE = "careline"
TOPIC_ROOT = "careline"
CHANNELS = frozenset({"alarm", "telemetry", "status"})
SCHEMA_VERSION = 1
#: Real events are a few hundred bytes; anything this large is a broken or hostile publisher.
MAX_PAYLOAD_BYTES = 64 * 1024
_MAX_REASON_CHARS = 300
_MAX_TEXT_CHARS = 256
#: An alarm read despite faults keeps this many of them; the rest are only counted.
_MAX_FAULTS = 8

#: Kinds an alarm device's faulty message is still read for: each is an emergency on its own. Not
#: fall_cancel (a faulty cancel must never close a real fall) and not door events (a door alarm depends
#: on the rest of the message being right, and a wrong one is no emergency by itself).
SALVAGED_KINDS = frozenset({EventKind.SOS, EventKind.FALL, EventKind.SMOKE})
#: The schema asks for 8+ characters; a shorter id still tells a redelivery from a new press.
_USABLE_EVENT_ID = re.compile(r"[!-~]{1,64}")

SCHEMA_ID = "urn:careline:schema:careline-event:1"
SCHEMA_FILE_NAME = "careline-event.schema.json"
_PACKAGE_DIR = Path(__file__).resolve().parent
SCHEMA_PATHS = (_PACKAGE_DIR / "schemas" / SCHEMA_FILE_NAME, _PACKAGE_DIR.parent / "docs" / SCHEMA_FILE_NAME)


def _event_time(raw: object) -> datetime:
    """Accept an ISO-8601 string with an offset or epoch milliseconds; return an aware datetime."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueError("must be an ISO-8601 string or epoch milliseconds")
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError("is not an ISO-8601 date-time") from None
        if parsed.tzinfo is None:
            # A naive time is ambiguous across sites in different zones; refuse to guess.
            raise ValueError("ISO-8601 date-time needs a time zone offset")
    else:
        try:
            parsed = datetime.fromtimestamp(raw / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError("epoch milliseconds out of range") from None
    if parsed < EARLIEST_EVENT_TIME:
        raise ValueError("is before 2000-01-01 (epoch seconds sent instead of milliseconds?)")
    if storable_time(parsed) is None:
        raise ValueError("is after 2262-04-11 (no store keeps it)")
    return parsed


def _supported_version(version: int) -> int:
    if version != SCHEMA_VERSION:
        raise ValueError(f"unsupported schema version {version} (expected {SCHEMA_VERSION})")
    return version


def _scalar(raw: object) -> int | float | bool | str:
    # One hand-written check instead of a pydantic union: a union reports one error per member
    # ("value.int: ...", "value.float: ..."), which is no reason a device maker can act on.
    if isinstance(raw, str):
        if len(raw) > _MAX_TEXT_CHARS:
            raise ValueError(f"string longer than {_MAX_TEXT_CHARS} characters")
        return raw
    if isinstance(raw, bool | int) or (isinstance(raw, float) and math.isfinite(raw)):
        return raw
    raise ValueError("must be a finite number, a boolean or a string")


def _optional_scalar(raw: object) -> int | float | bool | str | None:
    return None if raw is None else _scalar(raw)


_SCALAR_SCHEMAS: list[dict[str, Any]] = [
    {"type": "number"},
    {"type": "boolean"},
    {"type": "string", "maxLength": _MAX_TEXT_CHARS},
]
Scalar = Annotated[
    int | float | bool | str, PlainValidator(_scalar), WithJsonSchema({"anyOf": _SCALAR_SCHEMAS})
]
OptionalScalar = Annotated[
    int | float | bool | str | None,
    PlainValidator(_optional_scalar),
    WithJsonSchema({"anyOf": [*_SCALAR_SCHEMAS, {"type": "null"}]}),
]
ExtraKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ExtraReadings = Annotated[dict[ExtraKey, Scalar], Field(max_length=32)]


class CarelineEventPayload(BaseModel):
    """One event reported by a Careline-native device."""

    # strict: JSON `true` must not pass as version 1, nor `12345678` as an event id.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    v: Annotated[
        int,
        AfterValidator(_supported_version),
        WithJsonSchema({"type": "integer", "const": SCHEMA_VERSION}),
    ] = Field(description="Payload schema version; always 1.")
    event_id: Annotated[str, StringConstraints(min_length=8, max_length=64, pattern=r"^[!-~]+$")] = Field(
        description="Device-generated unique id of this event (printable ASCII, no spaces); "
        "a repeat of the same id is treated as a redelivery."
    )
    ts: Annotated[
        datetime,
        BeforeValidator(_event_time),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "format": "date-time"},
                    {"type": "number", "minimum": int(EARLIEST_EVENT_TIME.timestamp() * 1000)},
                ]
            }
        ),
    ] = Field(description="When the event happened: ISO-8601 with a time zone offset, or epoch milliseconds.")
    # Lax for this one field only: strict mode wants an EventKind instance, not its JSON string.
    kind: Annotated[EventKind, Field(strict=False)] = Field(description="What happened.")
    value: OptionalScalar = Field(
        default=None, description="Reading or state for the kind, e.g. 72 for heart_rate, 87 for battery."
    )
    extra: ExtraReadings = Field(
        default_factory=dict, description="Further device-specific readings (at most 32)."
    )
    device: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        default=None,
        description="The sending device's own id, if it says it. When present it must be the device id "
        "of the topic: a message naming another device is refused as spoofing.",
    )
    test: bool = Field(
        default=False,
        description="True while the device is being tested (a smoke detector's test button): a smoke "
        "detector's test is recorded as a test, not raised as an alarm.",
    )


_EXTRA_READINGS: TypeAdapter[dict[str, int | float | bool | str]] = TypeAdapter(
    ExtraReadings, config=ConfigDict(strict=True)
)


def careline_payload_json_schema() -> dict[str, Any]:
    """The published JSON Schema of a Careline event payload."""
    schema = CarelineEventPayload.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "Careline device event"
    schema["description"] = (
        "Payload of an MQTT message on careline/<site>/<device_id>/<alarm|telemetry|status>. "
        "Site, room and resident come from the gateway configuration, never from the payload."
    )
    return schema


def render_schema() -> str:
    """The schema exactly as stored in the repository: sorted keys, two-space indent, final newline."""
    return json.dumps(careline_payload_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schema_files() -> list[Path]:
    text = render_schema()
    for path in SCHEMA_PATHS:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(SCHEMA_PATHS)


def decode(message: RawMessage, registry: DeviceRegistry) -> list[DeviceEvent]:
    """Decode one Careline message into exactly one attributed event, or raise `DecodeError`.

    A message that breaks the schema is still read when it reports an alarm (`SALVAGED_KINDS`) from a
    bound alarm device: the event carries the faults, and whatever was unusable is replaced (the
    gateway's receive time for a bad `ts`) or left out."""
    site, device_id = _parse_topic(message.topic)
    binding = _binding_for(registry, site, device_id)
    document = _parse_document(message.payload, message.size, device_id)
    _refuse_claim_of_another_device(document, device_id)
    try:
        payload = CarelineEventPayload.model_validate(document)
    except ValidationError as exc:
        return [_salvage(document, exc, binding, message)]
    event = binding.event(
        payload.kind,
        payload.value,
        ts=payload.ts,
        received_at=message.received_at,
        message_key=_id_key(binding, payload.event_id),
        extra=dict(payload.extra),
        test=payload.test or payload.extra.get("test") is True,
    )
    return [event]


def _refuse_claim_of_another_device(document: dict[str, object], device_id: str) -> None:
    """Checked before any salvage: an alarm is never read from a message speaking for someone else.

    Only a string can disagree; any other `device` value is a faulty side field (an alarm survives it)."""
    claimed = document.get("device")
    if isinstance(claimed, str) and claimed != device_id:
        raise SpoofedMessageError.naming(claimed, topic_name=device_id, device_id=device_id)


def _id_key(binding: Binding, event_id: str) -> str:
    return f"careline:{binding.device_id}:{event_id}"


def _salvage(
    document: dict[str, object], exc: ValidationError, binding: Binding, message: RawMessage
) -> DeviceEvent:
    kind = document.get("kind")
    if not (isinstance(kind, str) and kind in SALVAGED_KINDS and binding.device_type in ALARM_DEVICE_TYPES):
        raise DecodeError(_first_error(exc), device_id=binding.device_id) from None
    event_id = document.get("event_id")
    usable_id = event_id if isinstance(event_id, str) and _USABLE_EVENT_ID.fullmatch(event_id) else None
    extra = _or_none(_EXTRA_READINGS.validate_python, document.get("extra", {})) or {}
    return binding.event(
        EventKind(kind),
        _or_none(_optional_scalar, document.get("value")),
        ts=_or_none(_event_time, document.get("ts")) or message.received_at,
        received_at=message.received_at,
        # No usable id: keyed by content, like Zigbee2MQTT, so only a DUP-flagged resend is compared.
        message_key=_id_key(binding, usable_id) if usable_id else f"careline-content:{_digest(message)}",
        extra=extra,
        faults=_faults(exc, id_usable=usable_id is not None),
        test=document.get("test") is True or extra.get("test") is True,
    )


_T = TypeVar("_T")


def _or_none(check: Callable[[object], _T], raw: object) -> _T | None:
    try:
        return check(raw)
    except ValueError:  # pydantic's ValidationError is one too
        return None


#: What the gateway does instead, per faulty field of a salvaged alarm; the fault says so.
_CONSEQUENCES = {
    # The whole object failed (a key that is not valid Unicode): what could be read was read.
    "payload": "read field by field",
    "v": "read as version 1",
    "ts": "receive time used",
    "value": "ignored",
    "extra": "extra ignored",
    "test": "not treated as a test",
    "device": "ignored",
}


def _faults(exc: ValidationError, *, id_usable: bool) -> tuple[str, ...]:
    errors = exc.errors(include_url=False, include_input=False)
    faults: list[str] = []
    for error in errors[:_MAX_FAULTS]:
        field = str(error["loc"][0]) if error["loc"] else "payload"
        if field == "event_id":
            consequence = "kept as the message id" if id_usable else "redelivery recognised by content only"
        else:
            consequence = _CONSEQUENCES.get(field, "unknown key ignored")
        faults.append(_shortened(f"{_location(error['loc'])}: {error['msg']}; {consequence}"))
    if len(errors) > _MAX_FAULTS:
        faults.append(f"{len(errors) - _MAX_FAULTS} more faults")
    return tuple(faults)


def _digest(message: RawMessage) -> str:
    return hashlib.sha256(
        message.topic.encode("utf-8", "surrogatepass") + b"\0" + message.payload
    ).hexdigest()[:32]


def _parse_topic(topic: str) -> tuple[str, str]:
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != TOPIC_ROOT or not all(parts):
        raise DecodeError(f"careline topic must be careline/<site>/<device_id>/<channel>, got {topic!r}")
    _, site, device_id, channel = parts
    if channel not in CHANNELS:
        raise DecodeError(f"unknown careline channel {channel!r}", device_id=device_id)
    return site, device_id


def _binding_for(registry: DeviceRegistry, site: str, device_id: str) -> Binding:
    binding = registry.by_id(device_id)
    if binding is None:
        raise UnboundDeviceError(
            f"unknown device {device_id!r}", profile=PROFILE, identifier=device_id, site=site
        )
    if binding.profile != PROFILE:
        # A Zigbee device cannot speak this profile; such a message is a misconfiguration or a spoof.
        raise DecodeError(
            f"device {device_id!r} is bound to profile {binding.profile!r}, not {PROFILE!r}",
            device_id=device_id,
        )
    if binding.site != site:
        raise DecodeError(
            f"device {device_id!r} is bound to site {binding.site!r}, not {site!r}", device_id=device_id
        )
    return binding


def _parse_document(payload: bytes, size: int, device_id: str) -> dict[str, object]:
    if size > MAX_PAYLOAD_BYTES:
        raise DecodeError(f"payload of {size} bytes exceeds {MAX_PAYLOAD_BYTES}", device_id=device_id)
    try:
        document = lenient_json.loads_payload(payload)
    except lenient_json.UnreadablePayloadError:
        raise DecodeError("payload is not UTF-8", device_id=device_id) from None
    except (ValueError, RecursionError):
        raise DecodeError("payload is not valid JSON", device_id=device_id) from None
    if not isinstance(document, dict):
        raise DecodeError(f"payload must be a JSON object, got {_json_type(document)}", device_id=device_id)
    return document


_JSON_TYPE_NAMES = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}


def _json_type(document: object) -> str:
    return "null" if document is None else _JSON_TYPE_NAMES.get(type(document), "a value")


def _first_error(exc: ValidationError) -> str:
    """The first validation problem as `field: message`; one clear reason beats a wall of them."""
    error = exc.errors(include_url=False, include_input=False)[0]
    return _shortened(f"invalid payload: {_location(error['loc'])}: {error['msg']}")


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "payload"


def _shortened(reason: str) -> str:
    return reason if len(reason) <= _MAX_REASON_CHARS else reason[: _MAX_REASON_CHARS - 1] + "…"


if __name__ == "__main__":
    for written in write_schema_files():
        print(f"wrote {written}")
