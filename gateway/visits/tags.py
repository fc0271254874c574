"""The door tag (`visit_tag`): a press or scan at the resident's door checks the carer named in the
payload in or out. It travels on the alarm lane (QoS 1) and is recorded before the broker's ack."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from devices.model import DeviceEvent, EventKind
from gateway.clock import Clock
from gateway.incidents.service import IncidentService
from gateway.visits.store import VisitStore

log = logging.getLogger(__name__)

#: The tag's own time is used when it is this close to the receive time; a tag with a wrong clock
#: is not believed (the receive time is used instead).
_TRUSTED_SKEW = timedelta(minutes=10)


def press_time(event: DeviceEvent, now: datetime) -> datetime:
    """When the carer was at the door: the tag's time (a redelivery then carries the same), unless its
    clock is off, then the gateway's."""
    skew = now - event.ts
    return event.ts if timedelta(minutes=-1) <= skew <= _TRUSTED_SKEW else now


class DoorTags:
    def __init__(self, visits: VisitStore, service: IncidentService, clock: Clock) -> None:
        self._visits = visits
        self._service = service
        self._clock = clock

    async def record(self, events: Sequence[DeviceEvent]) -> None:
        for event in events:
            if event.kind is not EventKind.VISIT_TAG:
                continue
            carer = event.value if isinstance(event.value, str) else None
            if carer is None or event.resident is None:
                log.warning("visit tag %s: no carer in the payload or no resident bound", event.device_id)
                continue
            arrival = await self._service.write(
                self._visits.tag_pressed,
                event.resident,
                carer,
                event.device_id,
                press_time(event, self._clock.now()),
            )
            if arrival is not None and arrival.incident is not None:
                self._service.announce([arrival.incident])
