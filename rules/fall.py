"""Falls: alarm at once, never held back waiting for a cancel; a cancel in the window resolves it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from devices.model import DeviceEvent, EventKind
from rules.alarms import subject_of
from rules.context import RuleContext
from rules.model import AlarmDecision, CancelDecision, Decision, Severity


class FallRule:
    name = "fall"

    def __init__(self, context: RuleContext) -> None:
        self._context = context

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        key = f"fall:{event.site}:{subject_of(event)}"
        if event.kind is EventKind.FALL and event.value is not False:
            return (AlarmDecision(self.name, Severity.CRITICAL, key, event),)
        if event.kind is EventKind.FALL_CANCEL:
            # The window is checked against the stored incident, not memory, so it survives restarts.
            window = timedelta(seconds=self._context.rules_for(event.site).fall_cancel_window_s)
            return (
                CancelDecision(self.name, key, event, "cancelled_by_resident", event.received_at - window),
            )
        return ()

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        return ()
