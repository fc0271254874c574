"""Rule state that survives a restart: each stateful rule says what it knows as a JSON-able dict and takes
it back; the gateway keeps the snapshot (gateway/rule_state.py) and hands it back before any event.

A snapshot is versioned twice: the envelope (`FORMAT`) and each rule's own `state_version`. A rule whose
state comes from another version, or does not parse, starts afresh and is reported as ignored (the
gateway counts and logs it); it never stops the others from being restored. A rule's `restore` parses the
whole state before it changes anything, so a bad snapshot leaves the rule as it was.

Only residents and devices still in the directory are kept: a snapshot never carries the state of a
discharged resident or a retired device, so it stays as large as the directory is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from devices.model import DeviceEvent, DeviceType, EventKind
from rules.context import RuleContext

#: The envelope's version: {"format", "saved_at", "rules": {name: {"version", "state"}}}.
FORMAT = 1

#: A JSON value, as far as the type checker is told.
JsonDict = dict[str, Any]


@runtime_checkable
class StatefulRule(Protocol):
    name: str
    #: Bumped whenever the shape of `snapshot()` changes; a snapshot of another version is ignored.
    state_version: int

    def snapshot(self) -> JsonDict:
        """What the rule knows now, JSON-able, for residents and devices still in the directory."""
        ...

    def restore(self, state: Mapping[str, Any], *, saved_at: datetime, now: datetime) -> None:
        """Take back a snapshot taken at `saved_at`; raise ValueError, KeyError or TypeError (and change
        nothing) if it does not parse."""
        ...


@dataclass(frozen=True, slots=True)
class RestoreReport:
    restored: tuple[str, ...] = ()
    #: Rule name -> why its state was not taken (another version, a state that does not parse).
    ignored: Mapping[str, str] = field(default_factory=dict)


def snapshot_rules(rules: Iterable[object], now: datetime) -> JsonDict:
    """The snapshot of every stateful rule among `rules`."""
    states = {
        rule.name: {"version": rule.state_version, "state": rule.snapshot()}
        for rule in rules
        if isinstance(rule, StatefulRule)
    }
    return {"format": FORMAT, "saved_at": now.isoformat(), "rules": states}


def restore_rules(
    rules: Iterable[object], snapshot: object, now: datetime, *, max_age: timedelta | None = None
) -> RestoreReport:
    """Give each stateful rule its part of `snapshot` (as `snapshot_rules` made it); never raises. A
    snapshot older than `max_age` is ignored whole: after so long nothing it timed is still known."""
    stateful = [rule for rule in rules if isinstance(rule, StatefulRule)]
    try:
        saved_at, states = _envelope(snapshot)
        if max_age is not None and now - saved_at > max_age:
            raise ValueError(f"saved at {saved_at.isoformat()}, older than {max_age}")
    except (ValueError, KeyError, TypeError) as exc:
        return RestoreReport(ignored=dict.fromkeys((rule.name for rule in stateful), f"snapshot: {exc}"))
    restored: list[str] = []
    ignored: dict[str, str] = {}
    for rule in stateful:
        part = states.get(rule.name)
        if part is None:
            continue
        try:
            if not isinstance(part, Mapping) or part.get("version") != rule.state_version:
                version = part.get("version") if isinstance(part, Mapping) else None
                raise ValueError(f"state version {version!r}, this gateway reads {rule.state_version}")
            state = part["state"]
            if not isinstance(state, Mapping):
                raise TypeError("state is not an object")
            rule.restore(state, saved_at=saved_at, now=now)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            ignored[rule.name] = str(exc) or type(exc).__name__
        else:
            restored.append(rule.name)
    return RestoreReport(tuple(restored), ignored)


def parsed(text: str) -> Any:
    """A snapshot from its JSON text; text that is not JSON is returned as is, for `restore_rules` to
    ignore (and report) like any snapshot it cannot read."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _envelope(snapshot: object) -> tuple[datetime, Mapping[str, Any]]:
    if not isinstance(snapshot, Mapping):
        raise TypeError("not an object")
    if snapshot.get("format") != FORMAT:
        raise ValueError(f"format {snapshot.get('format')!r}, this gateway reads {FORMAT}")
    states = snapshot["rules"]
    if not isinstance(states, Mapping):
        raise TypeError("rules is not an object")
    return moment(snapshot["saved_at"]), states


# -- pieces of state, to and from JSON -------------------------------------------------------------------


def moment(text: object) -> datetime:
    """A timezone-aware moment from its ISO text."""
    if not isinstance(text, str):
        raise TypeError(f"not a time: {text!r}")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"time without a zone: {text!r}")
    return parsed


def event_to_json(event: DeviceEvent) -> JsonDict:
    return {
        "device_id": event.device_id,
        "device_type": event.device_type.value,
        "site": event.site,
        "room": event.room,
        "resident": event.resident,
        "kind": event.kind.value,
        "value": event.value,
        "ts": event.ts.isoformat(),
        "received_at": event.received_at.isoformat(),
        "message_key": event.message_key,
        "extra": dict(event.extra),
        "faults": list(event.faults),
        "test": event.test,
    }


def event_from_json(data: Mapping[str, Any]) -> DeviceEvent:
    value = data["value"]
    if value is not None and not isinstance(value, bool | int | float | str):
        raise TypeError(f"event value {value!r}")
    extra = data.get("extra", {})
    if not isinstance(extra, Mapping):
        raise TypeError("event extra is not an object")
    return DeviceEvent(
        device_id=_text(data["device_id"]),
        device_type=DeviceType(data["device_type"]),
        site=_text(data["site"]),
        room=_optional_text(data.get("room")),
        resident=_optional_text(data.get("resident")),
        kind=EventKind(data["kind"]),
        value=value,
        ts=moment(data["ts"]),
        received_at=moment(data["received_at"]),
        message_key=_text(data["message_key"]),
        extra={_text(k): v for k, v in extra.items() if isinstance(v, bool | int | float | str)},
        faults=tuple(_text(fault) for fault in data.get("faults", ())),
        test=bool(data.get("test", False)),
    )


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"not text: {value!r}")
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)


def texts(values: object) -> list[str]:
    if not isinstance(values, list):
        raise TypeError("not a list")
    return [_text(value) for value in values]


def mapping(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError("not an object")
    return value


def residents_kept(context: RuleContext) -> Set[str]:
    """Residents whose state a snapshot keeps: those in the directory now."""
    return {resident.id for resident in context.residents()}


class DevicesKept:
    """Devices whose state a snapshot keeps: those in the directory now (every device, when the context
    was given no device list, as in the rules' own tests)."""

    def __init__(self, context: RuleContext) -> None:
        self._known = {device.id for device in context.devices()}
        self._context = context

    def __contains__(self, device_id: object) -> bool:
        if not isinstance(device_id, str) or self._context.device_left(device_id):
            return False
        return not self._known or device_id in self._known


def subject_kept(subject: str, residents: Set[str], devices: DevicesKept) -> bool:
    """A subject ("resident:<id>" or "device:<id>") still in the directory."""
    kind, _, ident = subject.partition(":")
    return ident in residents if kind == "resident" else ident in devices
