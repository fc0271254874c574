"""Past signs of life read back from the sensor log, to seed the activity baseline when no snapshot of it
was kept (first start, or the snapshot lost): the kinds `rules.wellbeing.common.SignsOfLife` looks at,
as events at the time the device gave them.

Read over the InfluxQL path (`SensorLogReader.raw`), one query per site, kind and local day, so one
query's row limit (`MAX_ROWS`) bounds a day of one kind at one site, not the whole history.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from devices.model import DeviceEvent, DeviceType, EventKind
from gateway.telemetry.reads import MAX_ROWS, SensorFilter, SensorLogReader, SensorRow

log = logging.getLogger(__name__)

#: What counts as a sign of life (rules/wellbeing/common.py); the rest of the log is not read.
SIGN_OF_LIFE_KINDS = (
    EventKind.MOTION,
    EventKind.CHECK_IN,
    EventKind.DOOR_OPEN,
    EventKind.DOOR_CLOSED,
    EventKind.PRESENCE,
    EventKind.BED_OCCUPIED,
)


@dataclass(slots=True)
class HistoryRead:
    events: list[DeviceEvent] = field(default_factory=list)
    queries: int = 0
    #: Queries that returned `MAX_ROWS` rows: that day of that kind is incomplete.
    truncated: int = 0
    seconds: float = 0.0


async def signs_of_life(
    reader: SensorLogReader, sites: Iterable[str], start: datetime, end: datetime
) -> HistoryRead:
    """Signs-of-life events of `sites` in [start, end), in no particular order."""
    read = HistoryRead()
    began = time.monotonic()
    for site in sites:
        for kind in SIGN_OF_LIFE_KINDS:
            day = start
            while day < end:
                until = min(day + timedelta(days=1), end)
                rows = await reader.raw(kind, SensorFilter(site=site), day, until, limit=MAX_ROWS)
                read.queries += 1
                read.truncated += len(rows) >= MAX_ROWS
                read.events += [_event(kind, site, row) for row in rows if "device" in row.tags]
                day = until
    read.seconds = time.monotonic() - began
    if read.truncated:
        log.warning("%d sensor-log reads cut at %d rows: those days count less", read.truncated, MAX_ROWS)
    return read


def _event(kind: EventKind, site: str, row: SensorRow) -> DeviceEvent:
    tags = row.tags
    try:
        device_type = DeviceType(tags.get("device_type", DeviceType.OTHER.value))
    except ValueError:
        device_type = DeviceType.OTHER
    return DeviceEvent(
        device_id=tags["device"],
        device_type=device_type,
        site=site,
        room=tags.get("room"),
        resident=tags.get("resident"),
        kind=kind,
        value=row.value,
        ts=row.time,
        received_at=row.time,
        message_key=f"history:{tags['device']}:{kind.value}:{row.time_ns}",
    )
