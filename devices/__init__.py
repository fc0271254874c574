"""Device decoding: raw MQTT messages in, attributed `DeviceEvent`s out."""

from devices.decode import decode
from devices.model import Binding, DecodeError, DeviceEvent, DeviceType, EventKind, Lane, RawMessage
from devices.registry import DeviceRegistry

__all__ = [
    "Binding",
    "DecodeError",
    "DeviceEvent",
    "DeviceRegistry",
    "DeviceType",
    "EventKind",
    "Lane",
    "RawMessage",
    "decode",
]
