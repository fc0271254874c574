"""The Zigbee2MQTT profile: device state on `zigbee2mqtt/<friendly_name>` and its `/availability`.

Zigbee2MQTT publishes the device's whole exposed state as one flat JSON object, so a single message
can carry an alarm, a battery reading and the link quality at once; each becomes its own event.
Key names follow the Zigbee2MQTT converters (zigbee-herdsman-converters, src/converters/fromZigbee.ts,
src/lib/exposes.ts, src/lib/tuya.ts) and https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple

from devices import lenient_json
from devices.lenient_json import UnreadableNumber
from devices.model import (
    ALARM_EVENT_KINDS,
    Binding,
    DecodeError,
    DeviceEvent,
    DeviceType,
    EventKind,
    RawMessage,
    SpoofedMessageError,
    UnboundDeviceError,
    storable_time,
)
from devices.registry import ZIGBEE2MQTT_BASE, DeviceRegistry

log = logging.getLogger(__name__)

PROFILE = "zigbee2mqtt"
TOPIC_ROOT = ZIGBEE2MQTT_BASE
#: Zigbee2MQTT state objects are well under a kilobyte; same ceiling as the native profile.
MAX_PAYLOAD_BYTES = 64 * 1024
_PREFIX = TOPIC_ROOT + "/"
_AVAILABILITY_SUFFIX = "/availability"
#: `<name>/set`, `<name>/get` and their `/set/<attribute>` forms are commands *to* devices, not reports.
_COMMAND_SEGMENTS = frozenset({"set", "get"})

#: Actions that mean "help" whatever the device; `emergency` is what Heiman SOS buttons send
#: (fromZigbee.ts `heiman_smart_controller_emergency`, an IAS ACE emergency command). Tuya's TS0218
#: sends that same command as action `click` (`TS0218_click`), which the pendant rule in `_action` covers.
_SOS_ACTIONS = frozenset({"sos", "emergency", "panic", "alarm"})
#: Enum states of mmWave fall radars; Tuya's `fall_down_status` is none | maybe_fall | fall (tuya.ts
#: `tuyaRadar.fallDown`). `maybe_fall` is deliberately not a fall: the radar confirms with `fall`
#: once the person stays down for `tumble_alarm_time`, and alarming earlier flags every stumble.
_FALL_STATE_KEYS = ("fall_down_status", "fall_state", "fall_detection")
_FALL_STATES = frozenset({"fall", "fall_detected", "fallen"})


class _Reading(NamedTuple):
    kind: EventKind
    value: float | bool | str | None
    extra: dict[str, float | bool | str]


class _Decoded(NamedTuple):
    """What one state message says, and what was wrong with it but did not cost its alarm."""

    readings: list[_Reading]
    ts: datetime
    faults: tuple[str, ...]
    test: bool


#: Turns the value of one state key into at most one reading; raises DecodeError on a wrong type.
_Extractor = Callable[[str, object, Binding], _Reading | None]


def decode(message: RawMessage, registry: DeviceRegistry) -> list[DeviceEvent]:
    """Decode one Zigbee2MQTT message into zero or more attributed events, or raise `DecodeError`.

    Bridge and command topics return [] because they describe Zigbee2MQTT itself, not a resident.
    """
    route = _route(message.topic, registry)
    if route is None:
        return []
    binding, is_availability = route
    if message.size > MAX_PAYLOAD_BYTES:
        raise DecodeError(
            f"payload of {message.size} bytes exceeds {MAX_PAYLOAD_BYTES}",
            device_id=binding.device_id,
        )
    if is_availability:
        decoded = _Decoded([_availability(message.payload, binding)], message.received_at, (), False)
    else:
        state = _load_state(message.payload, binding)
        _refuse_claim_of_another_device(state, binding)
        decoded = _read_state(state, binding, message.received_at)
    digest = hashlib.sha256(
        message.topic.encode("utf-8", "surrogatepass") + b"\0" + message.payload
    ).hexdigest()[:32]
    return [
        _event(binding, reading, decoded, message.received_at, f"z2m:{digest}:{reading.kind}")
        for reading in decoded.readings
    ]


def _route(topic: str, registry: DeviceRegistry) -> tuple[Binding, bool] | None:
    """Resolve the friendly name (which may itself contain `/`); None for topics we deliberately skip."""
    if not topic.startswith(_PREFIX):
        raise DecodeError(f"not a {ZIGBEE2MQTT_BASE} topic: {topic!r}")
    name = topic.removeprefix(_PREFIX)
    if name == "bridge" or name.startswith("bridge/"):
        return None
    binding = registry.by_friendly_name(name)
    if binding is not None:
        return binding, False
    if name.endswith(_AVAILABILITY_SUFFIX):
        binding = registry.by_friendly_name(name.removesuffix(_AVAILABILITY_SUFFIX))
        if binding is not None:
            return binding, True
    if _is_command(name):
        return None
    # No device_id: a friendly name is not a device id.
    unknown = name.removesuffix(_AVAILABILITY_SUFFIX)
    raise UnboundDeviceError(f"unknown device {unknown!r}", profile=PROFILE, identifier=unknown)


def _is_command(name: str) -> bool:
    segments = name.split("/")
    return segments[-1] in _COMMAND_SEGMENTS or (len(segments) > 2 and segments[-2] in _COMMAND_SEGMENTS)


def _availability(payload: bytes, binding: Binding) -> _Reading:
    """`{"state":"online"}` since Zigbee2MQTT 1.21, bare `online` with legacy_availability_payload."""
    text = _text(payload, binding).strip()
    state: object = text
    if text.startswith("{"):
        document = _load_json(text, binding)
        state = document.get("state") if isinstance(document, dict) else None
    if state not in ("online", "offline"):
        raise DecodeError("availability must be online or offline", device_id=binding.device_id)
    return _Reading(EventKind.AVAILABILITY, state == "online", {"state": str(state)})


def _load_state(payload: bytes, binding: Binding) -> dict[str, object]:
    try:
        document = lenient_json.loads_payload(payload)
    except lenient_json.UnreadablePayloadError:
        raise DecodeError("payload is not UTF-8", device_id=binding.device_id) from None
    except (ValueError, RecursionError):
        raise DecodeError("payload is not valid JSON", device_id=binding.device_id) from None
    if not isinstance(document, dict):
        raise DecodeError("device state must be a JSON object", device_id=binding.device_id)
    return document


def _refuse_claim_of_another_device(state: dict[str, object], binding: Binding) -> None:
    """With `include_device_information` Zigbee2MQTT names the device in every state message; a name
    other than the topic's is another hub speaking for this device (or a mix-up), never an alarm."""
    device = state.get("device")
    claimed = device.get("friendlyName") if isinstance(device, dict) else None
    own = binding.friendly_name or binding.device_id
    if isinstance(claimed, str) and claimed != own:
        raise SpoofedMessageError.naming(claimed, topic_name=own, device_id=binding.device_id)


def _text(payload: bytes, binding: Binding) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("payload is not UTF-8", device_id=binding.device_id) from None


def _load_json(text: str, binding: Binding) -> object:
    try:
        return lenient_json.loads(text)
    except (ValueError, RecursionError):
        raise DecodeError("payload is not valid JSON", device_id=binding.device_id) from None


def _read_state(state: dict[str, object], binding: Binding, received_at: datetime) -> _Decoded:
    """A malformed key never costs an alarm: if the payload also carries an alarm reading, the bad key
    is skipped and becomes a fault of the payload's events; only a payload with no alarm in it is
    rejected as a whole."""
    readings, errors = _readings(state, binding)
    has_alarm = any(reading.kind in ALARM_EVENT_KINDS for reading in readings)
    if errors and not has_alarm:
        raise errors[0]
    faults = [f"{error.reason}; ignored" for error in errors]
    test = state.get("test")
    if test is not None and not isinstance(test, bool):
        # Never a reason to reject: treating a smoke alarm as real is the safe side.
        faults.append(f"{_bad_type('test', 'a boolean', test, binding).reason}; not treated as a test")
    ts = _last_seen(state.get("last_seen"))
    if ts is None:
        if state.get("last_seen") is not None:
            # A bad `last_seen` only costs the better timestamp, so it never rejects the message.
            faults.append("last_seen is not a usable time; receive time used")
        ts = received_at
    if has_alarm and faults:
        log.warning("device %s: alarm kept despite faults: %s", binding.device_id, "; ".join(faults))
    return _Decoded(readings, ts, tuple(faults), test is True)


def _last_seen(raw: object) -> datetime | None:
    """The device time Zigbee2MQTT adds when `advanced.last_seen` is enabled; None if absent, odd, or
    outside the window every store keeps (`storable_time`)."""
    try:
        if isinstance(raw, str):
            return storable_time(datetime.fromisoformat(raw))
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            # last_seen: epoch is milliseconds
            return storable_time(datetime.fromtimestamp(raw / 1000, tz=UTC))
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _readings(state: dict[str, object], binding: Binding) -> tuple[list[_Reading], list[DecodeError]]:
    """One reading per event kind, and the keys that could not be read. When two keys say the same
    thing the first in `_EXTRACTORS` wins, which keeps every message key of the payload distinct."""
    readings: dict[EventKind, _Reading] = {}
    errors: list[DecodeError] = []
    # Only the keys the payload has, in the extractors' order: a state message names a handful of the
    # keys we read, and asking for all of them was a fifth of the decoder's time.
    for key in sorted(_EXTRACTOR_KEYS.intersection(state), key=_EXTRACTOR_ORDER.__getitem__):
        extract, raw = _EXTRACTOR_OF[key], state[key]
        # Zigbee2MQTT publishes null for attributes it has not heard yet; that is "no news", not an error.
        if raw is None:
            continue
        try:
            reading = extract(key, raw, binding)
        except DecodeError as exc:
            errors.append(exc)
            continue
        if reading is not None and reading.kind not in readings:
            readings[reading.kind] = reading
    return list(readings.values()), errors


def _event(
    binding: Binding, reading: _Reading, decoded: _Decoded, received_at: datetime, key: str
) -> DeviceEvent:
    return binding.event(
        reading.kind,
        reading.value,
        ts=decoded.ts,
        received_at=received_at,
        message_key=key,
        extra=reading.extra,
        faults=decoded.faults,
        test=decoded.test,
    )


# --- value checks -------------------------------------------------------------------------------


def _bad_type(key: str, expected: str, raw: object, binding: Binding) -> DecodeError:
    # Name an unreadable number (NaN, a 10,000-digit integer): "must be a number" alone would puzzle.
    got = f" (got {raw})" if isinstance(raw, UnreadableNumber) else ""
    return DecodeError(f"{key} must be {expected}{got}", device_id=binding.device_id)


def _require_bool(key: str, raw: object, binding: Binding) -> bool:
    if not isinstance(raw, bool):
        raise _bad_type(key, "a boolean", raw, binding)
    return raw


def _require_str(key: str, raw: object, binding: Binding) -> str:
    if not isinstance(raw, str):
        raise _bad_type(key, "a string", raw, binding)
    return raw


def _require_number(key: str, raw: object, binding: Binding) -> float:
    # bool is an int in Python, but `true` is never a reading.
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise _bad_type(key, "a number", raw, binding)
    return raw


# --- extractors ---------------------------------------------------------------------------------


def _action(key: str, raw: object, binding: Binding) -> _Reading | None:
    action = _require_str(key, raw, binding)
    extra: dict[str, float | bool | str] = {key: action}
    if action in _SOS_ACTIONS:
        return _Reading(EventKind.SOS, None, extra)
    if action == "fall_cancel" or (action == "cancel" and binding.device_type is DeviceType.FALL_SENSOR):
        return _Reading(EventKind.FALL_CANCEL, None, extra)
    # A pendant's only button is the SOS button, so any press ("single", "double", "hold") is a call
    # for help. On other devices an unknown action is a remote or a scene switch: not ours to guess.
    # An empty action is the reset Zigbee2MQTT sends after each press for Home Assistant.
    # Letting go after a long press (Aqara "release", Hue "on_hold_release") is the end of the press
    # that already raised the SOS, not a second call for help.
    if binding.device_type is DeviceType.SOS_BUTTON and action and not action.endswith("release"):
        return _Reading(EventKind.SOS, None, extra)
    return None


def _sos_button_alarm(key: str, raw: object, binding: Binding) -> _Reading | None:
    # `alarm` is a setting on sirens and thermostats; only on a pendant does it mean "help".
    if binding.device_type is not DeviceType.SOS_BUTTON:
        return None
    return _Reading(EventKind.SOS, None, {key: True}) if _require_bool(key, raw, binding) else None


def _when_true(kind: EventKind) -> _Extractor:
    """Flags such as `sos`, `tamper` and `battery_low` only report news when they are true."""

    def extract(key: str, raw: object, binding: Binding) -> _Reading | None:
        return _Reading(kind, None, {key: True}) if _require_bool(key, raw, binding) else None

    return extract


def _either(when_true: EventKind, when_false: EventKind) -> _Extractor:
    def extract(key: str, raw: object, binding: Binding) -> _Reading:
        flag = _require_bool(key, raw, binding)
        return _Reading(when_true if flag else when_false, None, {key: flag})

    return extract


def _boolean(kind: EventKind) -> _Extractor:
    def extract(key: str, raw: object, binding: Binding) -> _Reading:
        return _Reading(kind, _require_bool(key, raw, binding), {})

    return extract


def _number(kind: EventKind, low: float = -math.inf, high: float = math.inf) -> _Extractor:
    def extract(key: str, raw: object, binding: Binding) -> _Reading:
        number = _require_number(key, raw, binding)
        if not low <= number <= high:
            raise DecodeError(f"{key} {number} is outside {low:g}..{high:g}", device_id=binding.device_id)
        return _Reading(kind, number, {})

    return extract


def _string(kind: EventKind) -> _Extractor:
    def extract(key: str, raw: object, binding: Binding) -> _Reading:
        return _Reading(kind, _require_str(key, raw, binding), {})

    return extract


def _fall_state(key: str, raw: object, binding: Binding) -> _Reading | None:
    # "normal", "none", "cancel", "maybe_fall" and vendor states we do not know are not falls. A
    # "cancel" here is only the radar returning to idle, and a false FALL_CANCEL could close a real
    # fall alarm, so cancellation comes solely from explicit `fall_cancel` / cancel actions.
    state = _require_str(key, raw, binding)
    return _Reading(EventKind.FALL, None, {key: state}) if state.lower() in _FALL_STATES else None


#: Evaluated in order; for a kind reported by several keys the first one wins (see `_readings`).
_EXTRACTORS: tuple[tuple[str, _Extractor], ...] = (
    ("action", _action),
    ("sos", _when_true(EventKind.SOS)),  # fromZigbee.ts ias_sos_alarm_2
    ("alarm", _sos_button_alarm),
    ("fall", _when_true(EventKind.FALL)),
    *((key, _fall_state) for key in _FALL_STATE_KEYS),
    ("fall_cancel", _when_true(EventKind.FALL_CANCEL)),
    # Zigbee2MQTT: contact=true means the magnet is near, i.e. the door is closed.
    ("contact", _either(EventKind.DOOR_CLOSED, EventKind.DOOR_OPEN)),
    ("smoke", _either(EventKind.SMOKE, EventKind.SMOKE_CLEAR)),  # fromZigbee.ts ias_smoke_alarm_1
    ("tamper", _when_true(EventKind.TAMPER)),
    ("battery_low", _when_true(EventKind.BATTERY_LOW)),
    ("battery", _number(EventKind.BATTERY, 0, 100)),
    # mmWave radars report `presence`; PIR sensors `occupancy`. Prefer the radar's when both appear.
    ("presence", _boolean(EventKind.PRESENCE)),
    ("occupancy", _boolean(EventKind.PRESENCE)),
    ("motion", _boolean(EventKind.MOTION)),
    ("heart_rate", _number(EventKind.HEART_RATE)),
    # Not `device_temperature`: that is the chip's own temperature, not the room's.
    ("temperature", _number(EventKind.TEMPERATURE)),
    ("humidity", _number(EventKind.HUMIDITY)),
    # Not published by stock converters: a bed mat's or a water probe's external converter names them
    # so (docs/devices.md, "Risk sensors").
    ("posture", _string(EventKind.BED_POSITION)),
    ("water_temperature", _number(EventKind.WATER_TEMPERATURE, 0, 100)),
    ("linkquality", _number(EventKind.LINK_QUALITY)),
)
#: The keys read, each with its extractor and its place in `_EXTRACTORS`.
_EXTRACTOR_OF: dict[str, _Extractor] = dict(_EXTRACTORS)
_EXTRACTOR_ORDER: dict[str, int] = {key: place for place, (key, _) in enumerate(_EXTRACTORS)}
_EXTRACTOR_KEYS = frozenset(_EXTRACTOR_OF)
