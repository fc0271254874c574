"""Doors' states in the store, so the door rules stay right when several instances share the alarm lane.

A door's reports reach whichever instance the broker picks (a shared subscription is round-robin on
Mosquitto), so each instance's door rules (rules/door.py) know only some of them: B may time a door
that A saw close, or take a repeated "open" report for a new opening. Each instance records every door
report it receives in the store (`record`, in the alarm batch's own transaction), and a door rule's
decision counts only if it agrees with what all instances heard (`stale`). With one instance the
rules' memory is the whole truth and nothing is recorded (`AlarmLane(doors_in_store=False)`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from devices.model import DeviceEvent, EventKind
from gateway.incidents.schema import DoorState
from rules.model import AlarmDecision, Decision

#: The rules whose decisions depend on a door's earlier reports: two that alarm on an opening (a change
#: from closed), one that times how long a door stays open.
OPENINGS = frozenset({"door_night", "locked_zone_exit"})
DOOR_LEFT_OPEN = "door_left_open"
RULES = OPENINGS | {DOOR_LEFT_OPEN}
DOOR_KINDS = (EventKind.DOOR_OPEN, EventKind.DOOR_CLOSED)


def stale(session: Session, decision: Decision, *, already_raised: bool) -> bool:
    """Whether a door rule's decision contradicts the reports every instance recorded: the door was
    already open before this "opening" (a repeated report), or it has closed (or opened again) since
    the opening this instance is timing. Without a recorded state the rule's own word stands."""
    if not isinstance(decision, AlarmDecision) or decision.rule not in RULES:
        return False
    state = session.get(DoorState, decision.event.device_id)
    if state is None:
        return False
    opened = decision.event.ts
    if decision.rule in OPENINGS:
        return state.open and state.changed_at < opened
    if not state.open or state.changed_at > opened:
        return True
    # Open all along: timed from a later report of the same opening, its alarm is out already.
    return state.changed_at < opened and already_raised


def record(session: Session, reports: Sequence[DeviceEvent]) -> None:
    """Each door report, in order; one older than the door's newest known report changes nothing."""
    for report in reports:
        is_open = report.kind is EventKind.DOOR_OPEN
        state = session.get(DoorState, report.device_id, with_for_update=True)
        if state is None:
            session.add(
                DoorState(
                    device_id=report.device_id, open=is_open, changed_at=report.ts, reported_at=report.ts
                )
            )
            session.flush()
            continue
        if report.ts < state.reported_at:
            continue
        if state.open != is_open:
            state.open, state.changed_at = is_open, report.ts
        state.reported_at = report.ts
