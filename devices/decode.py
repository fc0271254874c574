"""Route a raw MQTT message to the device profile that owns its topic.

This is the one entry point ingest calls, so it promises a narrow contract: for any topic and any
bytes it returns events or raises `DecodeError` (which dead-letters the message). A decoder bug
therefore costs one message, never the ingest loop.
"""

from __future__ import annotations

from collections.abc import Callable

from devices import careline_json, zigbee2mqtt
from devices.model import DecodeError, DeviceEvent, RawMessage
from devices.registry import DeviceRegistry

_Decoder = Callable[[RawMessage, DeviceRegistry], list[DeviceEvent]]

#: Topic prefix -> profile name and decoder; the names match `Binding.profile`.
_ROUTES: tuple[tuple[str, str, _Decoder], ...] = (
    (careline_json.TOPIC_ROOT + "/", careline_json.PROFILE, careline_json.decode),
    (zigbee2mqtt.TOPIC_ROOT + "/", zigbee2mqtt.PROFILE, zigbee2mqtt.decode),
)

PROFILES: tuple[str, ...] = tuple(name for _, name, _ in _ROUTES)
#: No profile accepts a larger payload: ingest keeps only a prefix of one (see `RawMessage.prefix`).
MAX_PAYLOAD_BYTES = max(careline_json.MAX_PAYLOAD_BYTES, zigbee2mqtt.MAX_PAYLOAD_BYTES)

#: MQTT allows 65,535-byte topics; no bound device's is near this (ids are at most 64 characters,
#: friendly names at most 256), and the dead-letter store keeps this much of a topic.
MAX_TOPIC_CHARS = 512

_MAX_DETAIL_CHARS = 200


def decode(message: RawMessage, registry: DeviceRegistry) -> list[DeviceEvent]:
    """Decode `message` with the profile its topic names; only ever raises `DecodeError`."""
    if len(message.topic) > MAX_TOPIC_CHARS:
        # Refused before any profile looks at it: its pieces would be quoted in reasons and counted
        # as unbound identifiers.
        raise DecodeError(f"topic of {len(message.topic)} characters exceeds {MAX_TOPIC_CHARS}")
    decoder = _decoder_for(message.topic)
    try:
        return decoder(message, registry)
    except DecodeError:
        raise
    except Exception as exc:  # the contract above: a decoder bug must not escape as anything else
        detail = f"{type(exc).__name__}: {exc}"[:_MAX_DETAIL_CHARS]
        raise DecodeError(f"decoder failed: {detail}") from exc


def _decoder_for(topic: str) -> _Decoder:
    for prefix, _, decoder in _ROUTES:
        if topic.startswith(prefix):
            return decoder
    raise DecodeError(f"no device profile for topic {topic[:_MAX_DETAIL_CHARS]!r}")
