"""The canonical event model every device profile decodes into.

Device quirks stop at this boundary: rules, incidents and telemetry only ever see `DeviceEvent`.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime


class Lane(enum.StrEnum):
    """Which ingest lane a message arrived on; the alarm lane never waits behind telemetry."""

    ALARM = "alarm"
    TELEMETRY = "telemetry"


class DeviceType(enum.StrEnum):
    SOS_BUTTON = "sos_button"
    FALL_SENSOR = "fall_sensor"
    DOOR_SENSOR = "door_sensor"
    SMOKE_DETECTOR = "smoke_detector"
    PRESENCE_SENSOR = "presence_sensor"
    MOTION_SENSOR = "motion_sensor"
    VITALS_MONITOR = "vitals_monitor"
    BED_SENSOR = "bed_sensor"
    #: A tag or button at a resident's door that a visiting carer presses or scans (docs/visits.md).
    VISIT_TAG = "visit_tag"
    OTHER = "other"


#: Device families whose messages travel on the alarm lane.
ALARM_DEVICE_TYPES = frozenset(
    {
        DeviceType.SOS_BUTTON,
        DeviceType.FALL_SENSOR,
        DeviceType.DOOR_SENSOR,
        DeviceType.SMOKE_DETECTOR,
        # A visit's check-in is a record that must not be dropped like telemetry.
        DeviceType.VISIT_TAG,
    }
)


class EventKind(enum.StrEnum):
    SOS = "sos"
    FALL = "fall"
    FALL_CANCEL = "fall_cancel"
    DOOR_OPEN = "door_open"
    DOOR_CLOSED = "door_closed"
    SMOKE = "smoke"
    SMOKE_CLEAR = "smoke_clear"
    TAMPER = "tamper"
    BATTERY = "battery"
    BATTERY_LOW = "battery_low"
    PRESENCE = "presence"
    MOTION = "motion"
    AVAILABILITY = "availability"
    HEARTBEAT = "heartbeat"
    HEART_RATE = "heart_rate"
    SPO2 = "spo2"
    BODY_TEMPERATURE = "body_temperature"
    TEMPERATURE = "temperature"
    HUMIDITY = "humidity"
    CHECK_IN = "check_in"
    BED_OCCUPIED = "bed_occupied"
    LINK_QUALITY = "link_quality"
    #: A bed mat's reading of how the resident lies (e.g. "left", "back", "right"): a change of value is
    #: a change of position (the pressure-sore repositioning rule).
    BED_POSITION = "bed_position"
    #: Hot water at a tap or shower, degrees Celsius (the scalds rule).
    WATER_TEMPERATURE = "water_temperature"
    #: A carer pressed or scanned a door tag; the value names the carer (responder id).
    VISIT_TAG = "visit_tag"
    #: A planned visit's due-by passed with no check-in (raised by the visit scheduler, no device).
    VISIT_MISSED = "visit_missed"


#: Event kinds the alarm-lane rules act on. Everything else is telemetry.
ALARM_EVENT_KINDS = frozenset(
    {
        EventKind.SOS,
        EventKind.FALL,
        EventKind.FALL_CANCEL,
        EventKind.DOOR_OPEN,
        EventKind.DOOR_CLOSED,
        EventKind.SMOKE,
        EventKind.SMOKE_CLEAR,
    }
)


#: Device times outside this window are refused as side-field faults (an alarm then takes its receive
#: time). No real event predates 2000 (epoch seconds sent as milliseconds land before it), and InfluxDB
#: keeps nothing after 2262-04-11; a time whose UTC form datetime cannot hold (9999-12-31T23:59-23:59)
#: would make the incident store refuse the alarm itself.
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_EVENT_TIME = datetime(2262, 4, 11, tzinfo=UTC)


def storable_time(ts: datetime) -> datetime | None:
    """`ts` in UTC when every store can keep it (aware, within the window above), else None."""
    if ts.tzinfo is None:
        return None
    try:
        utc = ts.astimezone(UTC)
    except OverflowError:
        return None
    return utc if EARLIEST_EVENT_TIME <= utc < LATEST_EVENT_TIME else None


#: How much of a payload no profile accepts is kept (in memory and in the dead-letter store); its real
#: size is kept beside it. Enough to see what a broken publisher sends, too little to fill a disk.
DEAD_LETTER_PREFIX_BYTES = 4 * 1024


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One MQTT message exactly as the broker handed it over."""

    topic: str
    payload: bytes
    received_at: datetime
    lane: Lane
    qos: int = 0
    mid: int = 0
    duplicate: bool = False
    retained: bool = False
    #: The payload's size as received, when `payload` keeps only a prefix of it (see `prefix`).
    received_size: int | None = None
    #: The broker session it came through when not the lane's own: a dead peer instance's, adopted
    #: (docs/scaling.md). It is acknowledged on that session.
    via: str = ""

    @property
    def size(self) -> int:
        """Bytes of the payload as the broker delivered it."""
        return len(self.payload) if self.received_size is None else self.received_size

    def prefix(self, limit: int) -> RawMessage:
        """This message with at most `limit` bytes of its payload; `size` still tells the real size."""
        if len(self.payload) <= limit:
            return self
        return dataclasses.replace(self, payload=self.payload[:limit], received_size=self.size)


@dataclass(frozen=True, slots=True)
class Binding:
    """Where a device is installed and whom it watches, from the configuration."""

    device_id: str
    device_type: DeviceType
    site: str
    room: str | None = None
    resident: str | None = None
    profile: str = "careline"
    #: Zigbee2MQTT friendly name (the topic segment), when the device is paired through Zigbee2MQTT.
    friendly_name: str | None = None

    def event(
        self,
        kind: EventKind,
        value: float | bool | str | None,
        *,
        ts: datetime,
        received_at: datetime,
        message_key: str,
        extra: dict[str, float | bool | str] | None = None,
        faults: tuple[str, ...] = (),
        test: bool = False,
    ) -> DeviceEvent:
        """An event of this device, attributed to where it is installed and whom it watches."""
        # Positional: telemetry makes thousands of these a second, and keywords cost a fifth more.
        return DeviceEvent(
            self.device_id,
            self.device_type,
            self.site,
            self.room,
            self.resident,
            kind,
            value,
            ts,
            received_at,
            message_key,
            extra or {},
            faults,
            test,
        )


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """A decoded, attributed event: what happened, where, to whom, and when."""

    device_id: str
    device_type: DeviceType
    site: str
    room: str | None
    resident: str | None
    kind: EventKind
    value: float | bool | str | None
    ts: datetime
    received_at: datetime
    #: Stable identity of the source message, used to recognise broker redeliveries.
    message_key: str
    extra: dict[str, float | bool | str] = field(default_factory=dict)
    #: What was wrong with the message this event was still read from ("ts: ...; receive time used"):
    #: an alarm is never lost to a faulty side field, but the operator is told.
    faults: tuple[str, ...] = ()
    #: The device said it was under test (a smoke detector's test button); the rules decide what that means.
    test: bool = False

    @property
    def is_alarm_kind(self) -> bool:
        return self.kind in ALARM_EVENT_KINDS


#: A dead letter's reason and device id are kept and listed: a hostile 64 KiB topic quoted in a reason
#: must not become 64 KiB of every row. Ids longer than the directory allows are bound to nothing anyway.
MAX_REASON_CHARS = 500
MAX_DEVICE_ID_CHARS = 64


class DecodeError(ValueError):
    """A payload that no profile could turn into events; it goes to the dead-letter store.

    `reason` is cut to `MAX_REASON_CHARS` and `device_id` to `MAX_DEVICE_ID_CHARS`."""

    def __init__(self, reason: str, *, device_id: str | None = None) -> None:
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 1] + "…"
        super().__init__(reason)
        self.reason = reason
        self.device_id = device_id[:MAX_DEVICE_ID_CHARS] if device_id is not None else None


class SpoofedMessageError(DecodeError):
    """A payload naming another device than the topic it was published on.

    The topic decides who is speaking (the broker lets each device write only its own topics), so a
    message claiming to be someone else is either forged or from a mis-flashed device: it is refused
    and counted as spoofing, never attributed to either device."""

    @classmethod
    def naming(cls, claimed: str, *, topic_name: str, device_id: str) -> SpoofedMessageError:
        """The refusal of a payload naming `claimed` on the topic of `topic_name` (one wording for all
        profiles: operators search dead letters for it)."""
        return cls(
            f"spoofing: payload names device {claimed[:64]!r} "
            f"but was published on the topic of {topic_name!r}",
            device_id=device_id,
        )


class UnboundDeviceError(DecodeError):
    """A well-formed topic naming a device the directory does not hold (not fitted yet, or retired).

    Not a fault of the message: such messages are counted per device for the installer
    (`gateway/unbound.py`), never kept as dead letters. `identifier` is the native device id or the
    Zigbee2MQTT friendly name, whichever the topic carries; `profile` says which.
    """

    def __init__(self, reason: str, *, profile: str, identifier: str, site: str | None = None) -> None:
        super().__init__(reason, device_id=identifier if profile == "careline" else None)
        self.profile = profile
        self.identifier = identifier
        self.site = site
