"""Zigbee2MQTT profile: real device payloads in, attributed events out."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from devices import zigbee2mqtt
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

FIXTURES = Path(__file__).parent / "fixtures" / "zigbee2mqtt"
RECEIVED = datetime(2025, 3, 14, 8, 30, tzinfo=UTC)

PENDANT = Binding(
    "pendant-101", DeviceType.SOS_BUTTON, "sunrise", "101", "chen", "zigbee2mqtt", "wing-a/101/sos"
)
DOOR = Binding("door-101", DeviceType.DOOR_SENSOR, "sunrise", "101", "chen", "zigbee2mqtt", "wing-a/101/door")
RADAR = Binding(
    "radar-101", DeviceType.FALL_SENSOR, "sunrise", "101-bath", "chen", "zigbee2mqtt", "bath-radar"
)
SMOKE = Binding("smoke-1", DeviceType.SMOKE_DETECTOR, "sunrise", "kitchen", None, "zigbee2mqtt")
CLIMATE = Binding("climate-101", DeviceType.OTHER, "sunrise", "101", None, "zigbee2mqtt", "climate-101")
REGISTRY = DeviceRegistry([PENDANT, DOOR, RADAR, SMOKE, CLIMATE])


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def message(topic: str, payload: bytes | str | dict[str, object]) -> RawMessage:
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    return RawMessage(topic=topic, payload=payload, received_at=RECEIVED, lane=Lane.ALARM)


def decode(binding: Binding, payload: bytes | str | dict[str, object]) -> list[DeviceEvent]:
    return zigbee2mqtt.decode(
        message(f"zigbee2mqtt/{binding.friendly_name or binding.device_id}", payload), REGISTRY
    )


def kinds(events: list[DeviceEvent]) -> list[EventKind]:
    return [event.kind for event in events]


def only(events: list[DeviceEvent], kind: EventKind) -> DeviceEvent:
    matching = [event for event in events if event.kind is kind]
    assert len(matching) == 1, kinds(events)
    return matching[0]


# --- SOS ----------------------------------------------------------------------------------------


def test_an_emergency_action_from_a_tuya_sos_button_raises_sos_with_its_telemetry() -> None:
    events = decode(PENDANT, fixture("tuya_sos_button_emergency"))

    assert kinds(events) == [EventKind.SOS, EventKind.BATTERY, EventKind.LINK_QUALITY]
    assert only(events, EventKind.SOS).extra == {"action": "emergency"}
    assert only(events, EventKind.BATTERY).value == 100
    assert only(events, EventKind.LINK_QUALITY).value == 120


@pytest.mark.parametrize("action", ["sos", "emergency", "panic", "alarm"])
def test_help_actions_raise_sos_on_any_device_type(action: str) -> None:
    assert kinds(decode(DOOR, {"action": action})) == [EventKind.SOS]


def test_an_ias_sos_flag_raises_sos() -> None:
    events = decode(PENDANT, fixture("ias_sos_button_alarm"))

    assert EventKind.SOS in kinds(events)
    assert EventKind.TAMPER not in kinds(events)
    assert EventKind.BATTERY_LOW not in kinds(events)


@pytest.mark.parametrize("action", ["single", "double", "hold", "click"])
def test_any_press_of_a_pendant_button_is_a_call_for_help(action: str) -> None:
    assert only(decode(PENDANT, {"action": action}), EventKind.SOS).extra == {"action": action}


def test_an_aqara_button_used_as_a_pendant_raises_sos_on_a_single_press() -> None:
    assert EventKind.SOS in kinds(decode(PENDANT, fixture("aqara_button_single")))


def test_the_same_press_on_a_device_that_is_not_a_pendant_is_ignored() -> None:
    assert EventKind.SOS not in kinds(decode(CLIMATE, fixture("aqara_button_single")))


@pytest.mark.parametrize("action", ["release", "on_hold_release", ""])
def test_a_release_or_the_empty_action_reset_is_not_a_second_call_for_help(action: str) -> None:
    assert decode(PENDANT, {"action": action}) == []


def test_alarm_true_on_a_pendant_is_an_sos_but_on_other_devices_it_is_a_setting() -> None:
    assert kinds(decode(PENDANT, {"alarm": True})) == [EventKind.SOS]
    assert decode(PENDANT, {"alarm": False}) == []
    assert decode(SMOKE, {"alarm": True}) == []


def test_an_sos_reported_by_two_keys_of_one_payload_is_one_event() -> None:
    events = decode(PENDANT, {"action": "emergency", "sos": True, "alarm": True})

    assert kinds(events) == [EventKind.SOS]


# --- doors and smoke ----------------------------------------------------------------------------


def test_contact_false_means_the_door_opened() -> None:
    events = decode(DOOR, fixture("aqara_door_contact_open"))

    assert kinds(events) == [EventKind.DOOR_OPEN, EventKind.BATTERY, EventKind.LINK_QUALITY]
    assert only(events, EventKind.DOOR_OPEN).extra == {"contact": False}


def test_contact_true_means_the_door_closed() -> None:
    assert EventKind.DOOR_CLOSED in kinds(decode(DOOR, fixture("aqara_door_contact_closed")))


def test_a_heiman_smoke_detector_raises_smoke_and_later_clears_it() -> None:
    assert EventKind.SMOKE in kinds(decode(SMOKE, fixture("heiman_smoke_detector_alarm")))
    assert EventKind.SMOKE_CLEAR in kinds(decode(SMOKE, fixture("heiman_smoke_detector_clear")))


def test_the_chip_temperature_of_a_door_sensor_is_not_reported_as_room_temperature() -> None:
    assert EventKind.TEMPERATURE not in kinds(decode(DOOR, fixture("aqara_door_contact_open")))


# --- falls --------------------------------------------------------------------------------------


def test_a_tuya_mmwave_radar_reporting_a_fall_raises_fall_and_presence_once() -> None:
    events = decode(RADAR, fixture("tuya_mmwave_fall_radar"))

    assert kinds(events) == [EventKind.FALL, EventKind.PRESENCE, EventKind.LINK_QUALITY]
    assert only(events, EventKind.FALL).extra == {"fall_down_status": "fall"}
    assert only(events, EventKind.PRESENCE).value is True


@pytest.mark.parametrize("key", ["fall_down_status", "fall_state", "fall_detection"])
@pytest.mark.parametrize("state", ["fall", "fall_detected", "fallen", "FALL"])
def test_fall_states_of_radars_raise_fall(key: str, state: str) -> None:
    assert kinds(decode(RADAR, {key: state})) == [EventKind.FALL]


@pytest.mark.parametrize("state", ["none", "normal", "cancel", "maybe_fall", "unknown_vendor_state"])
def test_idle_and_unconfirmed_radar_states_raise_nothing(state: str) -> None:
    assert decode(RADAR, {"fall_down_status": state}) == []


def test_a_fall_boolean_raises_fall_only_when_true() -> None:
    assert kinds(decode(RADAR, {"fall": True})) == [EventKind.FALL]
    assert decode(RADAR, {"fall": False}) == []


@pytest.mark.parametrize("payload", [{"fall_cancel": True}, {"action": "fall_cancel"}, {"action": "cancel"}])
def test_an_explicit_cancel_on_a_fall_sensor_cancels_the_fall(payload: dict[str, object]) -> None:
    assert kinds(decode(RADAR, payload)) == [EventKind.FALL_CANCEL]


def test_a_cancel_action_on_a_door_sensor_cancels_nothing() -> None:
    assert decode(DOOR, {"action": "cancel"}) == []


# --- telemetry ----------------------------------------------------------------------------------


def test_an_aqara_climate_sensor_reports_temperature_humidity_battery_and_link_quality() -> None:
    events = decode(CLIMATE, fixture("aqara_temperature_humidity"))

    assert {event.kind: event.value for event in events} == {
        EventKind.BATTERY: 100,
        EventKind.TEMPERATURE: 22.61,
        EventKind.HUMIDITY: 52.33,
        EventKind.LINK_QUALITY: 87,
    }


def test_occupancy_of_a_pir_sensor_is_reported_as_presence() -> None:
    events = decode(CLIMATE, fixture("aqara_motion_occupancy"))

    assert only(events, EventKind.PRESENCE).value is True


def test_motion_and_heart_rate_are_reported_with_their_values() -> None:
    events = decode(RADAR, {"motion": False, "heart_rate": 64})

    assert only(events, EventKind.MOTION).value is False
    assert only(events, EventKind.HEART_RATE).value == 64


def test_battery_low_and_tamper_are_news_only_when_true() -> None:
    assert kinds(decode(SMOKE, {"battery_low": True, "tamper": True})) == [
        EventKind.TAMPER,
        EventKind.BATTERY_LOW,
    ]
    assert decode(SMOKE, {"battery_low": False, "tamper": False}) == []


def test_a_payload_with_only_unknown_keys_yields_no_events() -> None:
    assert decode(CLIMATE, fixture("ikea_plug_state_only")) == []


def test_null_values_for_attributes_not_yet_heard_are_skipped() -> None:
    assert kinds(decode(DOOR, {"contact": None, "battery": None, "linkquality": 40})) == [
        EventKind.LINK_QUALITY
    ]


# --- availability -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "online"),
    [
        (fixture("availability_online"), True),
        (fixture("availability_offline"), False),
        (b"online", True),
        (b"offline\n", False),
    ],
)
def test_availability_is_understood_in_json_and_legacy_plain_form(payload: bytes, online: bool) -> None:
    events = zigbee2mqtt.decode(message("zigbee2mqtt/wing-a/101/door/availability", payload), REGISTRY)

    assert kinds(events) == [EventKind.AVAILABILITY]
    assert events[0].value is online
    assert events[0].device_id == "door-101"
    assert events[0].ts == RECEIVED


@pytest.mark.parametrize("payload", [b"maybe", b'{"state":"sleeping"}', b'{"online":true}', b"[]", b"{"])
def test_availability_other_than_online_or_offline_is_rejected(payload: bytes) -> None:
    with pytest.raises(DecodeError, match=r"availability|JSON"):
        zigbee2mqtt.decode(message("zigbee2mqtt/bath-radar/availability", payload), REGISTRY)


# --- topics -------------------------------------------------------------------------------------


def test_a_friendly_name_containing_slashes_resolves_to_its_device() -> None:
    events = zigbee2mqtt.decode(message("zigbee2mqtt/wing-a/101/door", {"contact": False}), REGISTRY)

    assert [event.device_id for event in events] == ["door-101"]


def test_a_device_without_a_friendly_name_is_addressed_by_its_id() -> None:
    assert kinds(zigbee2mqtt.decode(message("zigbee2mqtt/smoke-1", {"smoke": True}), REGISTRY)) == [
        EventKind.SMOKE
    ]


@pytest.mark.parametrize(
    "topic",
    [
        "zigbee2mqtt/bridge",
        "zigbee2mqtt/bridge/state",
        "zigbee2mqtt/bridge/devices",
        "zigbee2mqtt/bridge/event",
        "zigbee2mqtt/wing-a/101/door/set",
        "zigbee2mqtt/wing-a/101/door/get",
        "zigbee2mqtt/bath-radar/set/radar_sensitivity",
        "zigbee2mqtt/not-ours/set",
    ],
)
def test_bridge_and_command_topics_are_ignored(topic: str) -> None:
    assert zigbee2mqtt.decode(message(topic, {"state": "ON", "smoke": "garbage"}), REGISTRY) == []


@pytest.mark.parametrize(
    ("topic", "name"),
    [("zigbee2mqtt/hallway/door", "hallway/door"), ("zigbee2mqtt/hallway/availability", "hallway")],
)
def test_an_unknown_friendly_name_is_a_decode_error(topic: str, name: str) -> None:
    with pytest.raises(DecodeError, match=f"unknown device '{name}'"):
        zigbee2mqtt.decode(message(topic, {"contact": False}), REGISTRY)


# --- identity, time and attribution -------------------------------------------------------------


def test_the_events_of_one_payload_have_distinct_stable_message_keys() -> None:
    first = decode(DOOR, fixture("aqara_door_contact_open"))
    redelivered = decode(DOOR, fixture("aqara_door_contact_open"))

    keys = [event.message_key for event in first]
    assert len(set(keys)) == len(keys)
    assert keys == [event.message_key for event in redelivered]
    assert all(re.fullmatch(r"z2m:[0-9a-f]{32}:[a-z_]+", key) for key in keys)
    assert keys[0].endswith(":door_open")


def test_the_same_payload_on_another_topic_has_other_message_keys() -> None:
    door = decode(DOOR, {"battery": 50})
    pendant = decode(PENDANT, {"battery": 50})

    assert door[0].message_key != pendant[0].message_key


def test_attribution_comes_from_the_binding() -> None:
    event = decode(RADAR, {"fall": True, "room": "elsewhere", "resident": "someone-else"})[0]

    assert (event.device_id, event.device_type, event.site, event.room, event.resident) == (
        "radar-101",
        DeviceType.FALL_SENSOR,
        "sunrise",
        "101-bath",
        "chen",
    )


def test_events_are_timed_at_reception_when_zigbee2mqtt_sends_no_last_seen() -> None:
    event = decode(DOOR, {"contact": False})[0]

    assert event.ts == RECEIVED
    assert event.received_at == RECEIVED


@pytest.mark.parametrize(
    ("last_seen", "expected"),
    [
        ("2025-03-14T08:29:58.120Z", datetime(2025, 3, 14, 8, 29, 58, 120000, tzinfo=UTC)),
        ("2025-03-14T16:29:58+08:00", datetime(2025, 3, 14, 16, 29, 58, tzinfo=timezone(timedelta(hours=8)))),
        (1741940998000, datetime(2025, 3, 14, 8, 29, 58, tzinfo=UTC)),
    ],
)
def test_last_seen_gives_the_device_time_when_present(last_seen: object, expected: datetime) -> None:
    assert decode(DOOR, {"contact": False, "last_seen": last_seen})[0].ts == expected


@pytest.mark.parametrize("last_seen", ["yesterday", "2025-03-14T08:29:58", True, 10**30, ["x"]])
def test_an_unusable_last_seen_falls_back_to_reception_time_and_says_so(last_seen: object) -> None:
    [event] = decode(DOOR, {"contact": False, "last_seen": last_seen})

    assert event.ts == RECEIVED
    assert event.faults == ("last_seen is not a usable time; receive time used",)


# --- malformed payloads -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"contact=false", "not valid JSON"),
        (b'{"battery": NaN}', "battery must be a number (got NaN)"),
        (b'{"linkquality": -Infinity}', "linkquality must be a number (got -Infinity)"),
        (b'{"battery": 1' + b"0" * 10_000 + b"}", "battery must be a number (got a 10001-digit integer)"),
        (b"[1, 2]", "JSON object"),
        (b'"online"', "JSON object"),
        (b'{"battery": "lots"}', "battery must be a number"),
        (b'{"battery": true}', "battery must be a number"),
        (b'{"battery": 150}', "battery 150 is outside 0..100"),
        (b'{"battery": 1e400}', "battery must be a number"),
        (b'{"contact": "open"}', "contact must be a boolean"),
        (b'{"action": 1}', "action must be a string"),
        (b'{"fall_down_status": false}', "fall_down_status must be a string"),
        (b'{"alarm": "yes"}', "alarm must be a boolean"),
        (b"[" * 100_000, "exceeds"),
    ],
)
def test_malformed_payloads_are_decode_errors_naming_the_device(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=re.escape(reason)) as caught:
        decode(PENDANT, payload)

    assert caught.value.device_id == "pendant-101"


def test_deeply_nested_json_within_the_size_limit_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="not valid JSON"):
        decode(PENDANT, b"[" * 30_000 + b"]" * 30_000)


# --- fuzz ---------------------------------------------------------------------------------------

_KNOWN_KEYS = [key for key, _ in zigbee2mqtt._EXTRACTORS] + ["last_seen", "state"]


def _random_json(rng: random.Random, depth: int = 0) -> object:
    choice = rng.randrange(9 if depth < 3 else 6)
    scalars: list[object] = [
        None,
        rng.random() < 0.5,
        rng.randint(-(2**40), 2**40),
        rng.uniform(-1e6, 1e6),
        rng.choice(["", "online", "fall", "emergency", "single", "\u00e9\u0000", "2025-03-14T08:00:00Z"]),
        rng.randbytes(rng.randrange(8)).decode("latin-1"),
    ]
    if choice < 6:
        return scalars[choice]
    if choice < 8:
        return {rng.choice(_KNOWN_KEYS): _random_json(rng, depth + 1) for _ in range(rng.randrange(5))}
    return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]


def _random_payload(rng: random.Random) -> bytes:
    if rng.random() < 0.3:
        return rng.randbytes(rng.randrange(64))
    if rng.random() < 0.3:
        original = bytearray(fixture(rng.choice([path.stem for path in FIXTURES.glob("*.json")])))
        original[rng.randrange(len(original))] = rng.randrange(256)
        return bytes(original)
    return json.dumps(_random_json(rng)).encode()


@pytest.mark.parametrize("topic", ["zigbee2mqtt/bath-radar", "zigbee2mqtt/wing-a/101/sos/availability"])
def test_random_payloads_only_ever_produce_events_or_decode_errors(topic: str) -> None:
    rng = random.Random(20250314)
    for _ in range(2000):
        try:
            events = zigbee2mqtt.decode(message(topic, _random_payload(rng)), REGISTRY)
        except DecodeError:
            continue
        assert isinstance(events, list)
        assert all(isinstance(event, DeviceEvent) for event in events)


def test_a_malformed_side_reading_never_costs_the_alarm_in_the_same_payload() -> None:
    binding = Binding(
        "door-x", DeviceType.DOOR_SENSOR, "site-a", room="101", profile="zigbee2mqtt", friendly_name="door-x"
    )
    registry = DeviceRegistry([binding])
    message = RawMessage(
        "zigbee2mqtt/door-x",
        b'{"contact": false, "battery": "lots"}',
        datetime(2026, 1, 5, tzinfo=UTC),
        Lane.ALARM,
    )
    events = zigbee2mqtt.decode(message, registry)
    assert [e.kind for e in events] == [EventKind.DOOR_OPEN]
    assert events[0].faults == ("battery must be a number; ignored",)


def test_an_emergency_beside_nan_infinity_and_a_huge_integer_is_kept_with_the_faults() -> None:
    payload = (
        b'{"action": "emergency", "battery": NaN, "linkquality": Infinity,'
        b' "temperature": 1' + b"0" * 10_000 + b', "voltage": NaN}'
    )

    events = decode(PENDANT, payload)

    assert kinds(events) == [EventKind.SOS]
    # `voltage` is not a key this profile reads, so its NaN is no fault.
    assert events[0].faults == (
        "battery must be a number (got NaN); ignored",
        "temperature must be a number (got a 10001-digit integer); ignored",
        "linkquality must be a number (got Infinity); ignored",
    )


def test_a_clean_payload_has_no_faults() -> None:
    assert all(event.faults == () for event in decode(PENDANT, fixture("tuya_sos_button_emergency")))


# --- self-tests ---------------------------------------------------------------------------------


def test_a_smoke_detector_held_on_its_test_button_reports_smoke_marked_as_a_test() -> None:
    events = decode(SMOKE, {"smoke": True, "test": True, "battery": 90})

    assert kinds(events) == [EventKind.SMOKE, EventKind.BATTERY]
    assert all(event.test for event in events)
    assert only(events, EventKind.SMOKE).faults == ()


@pytest.mark.parametrize("payload", [{"smoke": True}, {"smoke": True, "test": False}])
def test_smoke_without_the_test_flag_is_no_test(payload: dict[str, object]) -> None:
    assert decode(SMOKE, payload)[0].test is False


def test_a_malformed_test_flag_is_a_fault_and_never_makes_smoke_a_test() -> None:
    [event] = decode(SMOKE, {"smoke": True, "test": "yes"})

    assert event.test is False
    assert event.faults == ("test must be a boolean; not treated as a test",)


# --- include_device_information: the payload names its device -----------------------------------


def test_a_state_naming_its_own_device_is_read() -> None:
    information = {"friendlyName": "bath-radar", "ieeeAddr": "0x00124b0024"}
    events = decode(RADAR, {"fall": True, "device": information})

    assert only(events, EventKind.FALL).device_id == "radar-101"


def test_a_state_naming_another_device_is_refused_as_spoofing() -> None:
    """Another hub publishing `{"action":"cancel"}` in this radar's name is never read as its cancel."""
    with pytest.raises(SpoofedMessageError) as caught:
        decode(RADAR, {"action": "cancel", "device": {"friendlyName": "wing-a/101/sos"}})

    assert caught.value.reason.startswith("spoofing: payload names device 'wing-a/101/sos'")
    assert caught.value.device_id == "radar-101"


def test_device_information_without_a_usable_name_is_ignored() -> None:
    events = decode(PENDANT, {"action": "emergency", "device": {"friendlyName": 12}})

    assert kinds(events) == [EventKind.SOS]
