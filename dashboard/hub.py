"""Fan-out of incident changes to every connected operator screen."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from gateway.incidents.views import IncidentView

log = logging.getLogger(__name__)

CLIENT_QUEUE_MAX = 1000


class IncidentHub:
    def __init__(self) -> None:
        self._clients: set[asyncio.Queue[dict[str, Any] | None]] = set()

    def __len__(self) -> int:
        return len(self._clients)

    def connect(self) -> asyncio.Queue[dict[str, Any] | None]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=CLIENT_QUEUE_MAX)
        self._clients.add(queue)
        return queue

    def disconnect(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._clients.discard(queue)

    def publish(self, changed: Sequence[IncidentView]) -> None:
        self.publish_frames(
            [{"type": "incident", "incident": view.model_dump(mode="json")} for view in changed]
        )

    def publish_escalation(self, incident_id: int, notifications: list[dict[str, Any]]) -> None:
        self.publish_frames(
            [{"type": "escalation", "incident_id": incident_id, "notifications": notifications}]
        )

    def publish_frames(self, frames: list[dict[str, Any]]) -> None:
        for queue in list(self._clients):
            try:
                for frame in frames:
                    queue.put_nowait(frame)
            except asyncio.QueueFull:
                # A screen that stopped reading is cut off (it resyncs on reconnect) rather than
                # letting its backlog grow without limit.
                log.warning("dropping a dashboard client that fell %d frames behind", CLIENT_QUEUE_MAX)
                self._clients.discard(queue)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)
