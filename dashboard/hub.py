"""Fan-out of incident changes to every connected operator screen."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from gateway.duty import ConsoleSeat
from gateway.incidents.store import ArmedPress
from gateway.incidents.views import IncidentView

log = logging.getLogger(__name__)

CLIENT_QUEUE_MAX = 1000


Frame = dict[str, Any]
ClientQueue = asyncio.Queue[Frame | None]


class IncidentHub:
    """Every frame names its incident's site; a screen signed in for some sites gets only theirs."""

    def __init__(self) -> None:
        #: Each screen's queue and the sites it may see (None: every site).
        self._clients: dict[ClientQueue, frozenset[str] | None] = {}
        #: The consoles among them (not a tester's phone page): who is signed in, for the duty watch.
        self._consoles: dict[ClientQueue, ConsoleSeat] = {}

    def __len__(self) -> int:
        return len(self._clients)

    def connect(self, scope: frozenset[str] | None = None, *, console_of: str | None = None) -> ClientQueue:
        """`console_of`: the user name when this screen is a console someone watches alarms on."""
        queue: ClientQueue = asyncio.Queue(maxsize=CLIENT_QUEUE_MAX)
        self._clients[queue] = scope
        if console_of is not None:
            self._consoles[queue] = ConsoleSeat(console_of, scope)
        return queue

    def disconnect(self, queue: ClientQueue) -> None:
        self._clients.pop(queue, None)
        self._consoles.pop(queue, None)

    def consoles(self) -> list[ConsoleSeat]:
        """Who has a console open now, and for which sites (gateway/duty.py's `ConsoleSeats`)."""
        return [seat for queue, seat in self._consoles.items() if queue in self._clients]

    def publish_test(self, press: ArmedPress) -> None:
        """A press taken as a test (test mode): the tester's page says "test received"."""
        frame: Frame = {
            "type": "device_test",
            "site": press.site,
            "device_id": press.device_id,
            "armed_by": press.armed_by,
            "at": press.at.isoformat(),
            "test_count": press.test_count,
        }
        self.publish_frames([frame])

    def publish(self, changed: Sequence[IncidentView]) -> None:
        self.publish_frames(
            [
                {"type": "incident", "site": view.site, "incident": view.model_dump(mode="json")}
                for view in changed
            ]
        )

    def publish_escalation(self, incident_id: int, site: str, notifications: list[dict[str, Any]]) -> None:
        self.publish_frames(
            [{"type": "escalation", "incident_id": incident_id, "site": site, "notifications": notifications}]
        )

    def publish_frames(self, frames: list[Frame]) -> None:
        for queue, scope in list(self._clients.items()):
            try:
                for frame in frames:
                    # A frame without a site is about no site's incident: nobody scoped needs it.
                    if scope is None or frame.get("site") in scope:
                        queue.put_nowait(frame)
            except asyncio.QueueFull:
                # A screen that stopped reading is cut off (it resyncs on reconnect) rather than
                # letting its backlog grow without limit.
                log.warning("dropping a dashboard client that fell %d frames behind", CLIENT_QUEUE_MAX)
                self._clients.pop(queue, None)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)
