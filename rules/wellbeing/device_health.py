"""Device health: a care sensor that is offline, silent, running flat or tampered with protects nobody.

Technical alarms, one incident per device and problem (`device_health:{site}:{device}:{problem}`), each
raised once until the device recovers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from devices.model import DeviceEvent, EventKind
from rules.context import DeviceFacts, RuleContext
from rules.model import AlarmDecision, Decision, Severity
from rules.state import DevicesKept, JsonDict, event_from_json, event_to_json, mapping, moment
from rules.wellbeing.common import (
    WellbeingSource,
    config_lookup,
    device_watched_since,
    flag,
    number,
    synthetic_event,
)
from rules.wellbeing.config import DeviceHealthConfig

OFFLINE = "offline"
SILENT = "silent"
BATTERY_LOW = "battery_low"
TAMPER = "tamper"
_WHAT = {
    OFFLINE: "device offline",
    SILENT: "device silent",
    BATTERY_LOW: "battery low",
    TAMPER: "tamper",
}


class DeviceHealthRule:
    """Feed it every event of every lane: any message is a sign the device lives. Devices listed in
    `devices` are timed from `start` even if they never report, and so are devices bound later through
    the context's `update`, from when they were bound; others from their first message. A device removed
    through `update` is forgotten. `intervals` (device id -> seconds) overrides the configured expected
    reporting intervals. What it knows (last heard, battery, tamper, problems raised) survives a restart
    (`restore`): a device silent since before it is timed from its last message, and a problem already
    raised is not raised again."""

    name = "device_health"
    state_version = 1

    def __init__(
        self,
        context: RuleContext,
        config: WellbeingSource,
        start: datetime,
        *,
        devices: Iterable[DeviceFacts] = (),
        intervals: Mapping[str, float] | None = None,
    ) -> None:
        self._context = context
        self._config = config_lookup(config)
        self._start = start
        self._expected = {device.id: device for device in devices}
        self._intervals = dict(intervals or {})
        #: Device -> its latest message (an "offline" notice from the coordinator does not count).
        self._last: dict[str, DeviceEvent] = {}
        self._battery: dict[str, float] = {}
        self._tamper_at: dict[str, datetime] = {}
        #: (device, problem) alarms raised and not yet recovered.
        self._raised: set[tuple[str, str]] = set()

    def snapshot(self) -> JsonDict:
        kept = DevicesKept(self._context)
        return {
            "watching_since": self._start.isoformat(),
            "last": {d: event_to_json(e) for d, e in self._last.items() if d in kept},
            "battery": {d: pct for d, pct in self._battery.items() if d in kept},
            "tamper_at": {d: at.isoformat() for d, at in self._tamper_at.items() if d in kept},
            "raised": sorted([d, problem] for d, problem in self._raised if d in kept),
        }

    def restore(self, state: Mapping[str, Any], *, saved_at: datetime, now: datetime) -> None:
        start = moment(state["watching_since"])
        last = {str(d): event_from_json(mapping(e)) for d, e in mapping(state["last"]).items()}
        battery = {str(d): float(pct) for d, pct in mapping(state["battery"]).items()}
        tamper_at = {str(d): moment(at) for d, at in mapping(state["tamper_at"]).items()}
        raised = {(str(d), str(problem)) for d, problem in state["raised"] if problem in _WHAT}
        self._start = min(start, self._start)
        self._last, self._battery, self._tamper_at, self._raised = last, battery, tamper_at, raised

    def on_event(self, event: DeviceEvent, now: datetime) -> Sequence[Decision]:
        rules = self._config(event.site).device_health
        if not rules.enabled:
            return ()
        device = event.device_id
        if event.kind is EventKind.AVAILABILITY and flag(event.value) is False:
            return self._raise(event, OFFLINE, Severity.LOW, {})
        self._last[device] = event
        self._raised.discard((device, OFFLINE))
        self._raised.discard((device, SILENT))
        if event.kind in (EventKind.BATTERY, EventKind.BATTERY_LOW):
            return self._battery_report(event, rules)
        if event.kind is EventKind.TAMPER:
            return self._tamper_report(event, rules)
        return ()

    def on_tick(self, now: datetime) -> Sequence[Decision]:
        decisions: list[Decision] = []
        for device in {*self._expected, *self._context.devices_joined(), *self._last}:
            if self._context.device_left(device):
                self._forget(device)
                continue
            decision = self._silence(device, now)
            if decision is not None:
                decisions.append(decision)
        return decisions

    def expected_interval_s(self, device_id: str, site: str) -> float:
        rules = self._config(site).device_health
        if device_id in self._intervals:
            return self._intervals[device_id]
        return rules.interval_overrides_s.get(device_id, rules.heartbeat_interval_s)

    def _battery_report(self, event: DeviceEvent, rules: DeviceHealthConfig) -> Sequence[Decision]:
        device = event.device_id
        if event.kind is EventKind.BATTERY:
            percent = number(event.value)
            if percent is None:
                return ()
            self._battery[device] = percent
            if percent <= rules.battery_low_pct:
                return self._raise(event, BATTERY_LOW, Severity.LOW, {"battery_pct": percent})
            if percent > rules.battery_low_pct + rules.battery_recover_pct:
                self._raised.discard((device, BATTERY_LOW))
            return ()
        low = flag(event.value, none_means=True)
        if low:
            return self._raise(event, BATTERY_LOW, Severity.LOW, {"battery_low_flag": True})
        if low is False and device not in self._battery:
            self._raised.discard((device, BATTERY_LOW))
        return ()

    def _tamper_report(self, event: DeviceEvent, rules: DeviceHealthConfig) -> Sequence[Decision]:
        device = event.device_id
        tampered = flag(event.value, none_means=True)
        if tampered is False:
            self._tamper_at.pop(device, None)
            return ()
        last = self._tamper_at.get(device)
        if not tampered or (
            last is not None and event.received_at - last < timedelta(seconds=rules.tamper_repeat_s)
        ):
            return ()
        self._tamper_at[device] = event.received_at
        return (self._decision(event, TAMPER, Severity.MEDIUM, {}),)

    def _forget(self, device: str) -> None:
        self._last.pop(device, None)
        self._battery.pop(device, None)
        self._tamper_at.pop(device, None)
        self._raised -= {(device, problem) for problem in _WHAT}

    def _silence(self, device: str, now: datetime) -> AlarmDecision | None:
        last = self._last.get(device)
        # The binding in force says where the device is now (it may have moved since its last message).
        expected = self._context.device(device) or self._expected.get(device)
        site = expected.site if expected is not None else last.site if last is not None else None
        if site is None or (device, SILENT) in self._raised or (device, OFFLINE) in self._raised:
            return None
        rules = self._config(site).device_health
        seen_at = (
            last.received_at if last is not None else device_watched_since(self._context, device, self._start)
        )
        interval = self.expected_interval_s(device, site)
        if not rules.enabled or now - seen_at < timedelta(seconds=interval * rules.grace_factor):
            return None
        self._raised.add((device, SILENT))
        key = f"device_health:{site}:{device}:{SILENT}"
        if last is not None:
            resident = expected.resident if expected is not None else last.resident
            room = expected.room if expected is not None else None
            event = synthetic_event(self.name, key, now, site=site, resident=resident, room=room, last=last)
        else:
            assert expected is not None
            event = synthetic_event(
                self.name,
                key,
                now,
                site=site,
                resident=expected.resident,
                room=expected.room,
                device_id=expected.id,
                device_type=expected.type,
            )
        evidence: dict[str, str | float | bool] = {
            "silent_for_s": round((now - seen_at).total_seconds()),
            "expected_interval_s": interval,
            "grace_factor": rules.grace_factor,
            "heard_since_start": last is not None,
        }
        return self._decision(event, SILENT, Severity.LOW, evidence)

    def _raise(
        self, event: DeviceEvent, problem: str, severity: Severity, evidence: dict[str, str | float | bool]
    ) -> Sequence[Decision]:
        if (event.device_id, problem) in self._raised:
            return ()
        self._raised.add((event.device_id, problem))
        return (self._decision(event, problem, severity, evidence),)

    def _decision(
        self, event: DeviceEvent, problem: str, severity: Severity, evidence: dict[str, str | float | bool]
    ) -> AlarmDecision:
        key = f"device_health:{event.site}:{event.device_id}:{problem}"
        return AlarmDecision(self.name, severity, key, event, {"problem": _WHAT[problem], **evidence})
