"""A few days of a care home's past, written before the demo starts, so reports and charts have data.

Incidents are planned first (`plan_history`, deterministic for a seed): SOS presses, falls, doors at
night, a smoke alarm, wellbeing alarms (bed exits, vital signs) and technical ones (low batteries), each
acknowledged after a delay drawn to hit an aimed share within 60 s with a tail beyond 180 s, then
resolved with an outcome by one of several operators. One pendant is "noisy": its presses are false
alarms. Then they are written through the real incident store (`write_incidents`), every opening,
acknowledgement and resolution in time order with the store's clock set to that moment, so the audit
chain is the one a real past would have left. Telemetry of the same days (`telemetry_lines`) comes from
the same daily rhythm as the live simulation and is written to InfluxDB with past timestamps, in batches.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from devices.model import Binding, DeviceType, EventKind
from gateway.clock import FakeClock
from gateway.incidents.schema import Outcome
from gateway.incidents.store import AlarmBatch, IncidentStore, RuledDecision
from gateway.telemetry.points import VALUE_FIELD, timestamp_ns, to_line
from rules.model import AlarmDecision, DeviceTestDecision, Severity
from simulators.rhythm import CareHomeRhythm

#: Operators of the past days' shifts (dashboard users; the demo creates them).
OPERATORS = ("wang.fang", "li.na", "zhao.min", "chen.jing")


@dataclass(frozen=True, slots=True)
class HistorySettings:
    days: int = 7
    seed: int = 11
    #: Incidents per day, all kinds together (the noisy pendant's false alarms come on top).
    per_day: float = 12.0
    #: Share of incidents acknowledged within 60 s that the delays aim at; `late_share` take over 180 s.
    within_60s_share: float = 0.8
    late_share: float = 0.08
    #: False alarms per day from the noisy pendant.
    noisy_per_day: float = 1.5
    #: Minutes between telemetry points of the past days (the live simulation sends every few seconds).
    telemetry_step_min: int = 10
    #: Share of the weekly button tests (JGJ/T 484) that were done; the rest were forgotten that week.
    tested_share: float = 0.85


@dataclass(frozen=True, slots=True)
class PastIncident:
    opened_at: datetime
    rule: str
    severity: Severity
    binding: Binding
    kind: EventKind
    ack_after_s: float
    resolve_after_s: float
    #: Who acknowledged: a dashboard user ("user:…") or a responder by SMS or call.
    acknowledged_by: str
    resolved_by: str
    outcome: Outcome
    note: str
    value: float | None = None
    evidence: dict[str, str | float | bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Kind:
    rule: str
    severity: Severity
    device_type: DeviceType
    event: EventKind
    weight: float
    outcomes: tuple[tuple[Outcome, str, float], ...]
    value: Callable[[random.Random], float] | None = None


_CARE_OUTCOMES = (
    (Outcome.ASSISTED_ON_SITE, "已到场协助 / assisted in the room", 0.75),
    (Outcome.FALSE_ALARM, "误按 / pressed by mistake", 0.15),
    (Outcome.EMERGENCY_SERVICES_CALLED, "已呼叫 120 / ambulance called", 0.05),
    (Outcome.OTHER, "家属来访 / family visiting", 0.05),
)
_KINDS = (
    _Kind("sos", Severity.CRITICAL, DeviceType.SOS_BUTTON, EventKind.SOS, 5.0, _CARE_OUTCOMES),
    _Kind(
        "fall",
        Severity.CRITICAL,
        DeviceType.FALL_SENSOR,
        EventKind.FALL,
        1.5,
        (
            (Outcome.ASSISTED_ON_SITE, "扶起，无外伤 / helped up, unhurt", 0.6),
            (Outcome.EMERGENCY_SERVICES_CALLED, "送医检查 / taken to hospital", 0.15),
            (Outcome.CANCELLED_BY_RESIDENT, "本人取消 / cancelled by resident", 0.15),
            (Outcome.FALSE_ALARM, "雷达误报 / radar false alarm", 0.1),
        ),
    ),
    _Kind(
        "door_night",
        Severity.HIGH,
        DeviceType.DOOR_SENSOR,
        EventKind.DOOR_OPEN,
        2.0,
        (
            (Outcome.ASSISTED_ON_SITE, "陪同回房 / walked back to bed", 0.8),
            (Outcome.OTHER, "夜班巡房 / night round", 0.2),
        ),
    ),
    _Kind(
        "smoke",
        Severity.CRITICAL,
        DeviceType.SMOKE_DETECTOR,
        EventKind.SMOKE,
        0.15,
        ((Outcome.FALSE_ALARM, "烤面包 / toast in the day room", 1.0),),
    ),
    _Kind(
        "bed_exit",
        Severity.HIGH,
        DeviceType.BED_SENSOR,
        EventKind.BED_OCCUPIED,
        1.5,
        (
            (Outcome.ASSISTED_ON_SITE, "协助如厕后回床 / helped to the toilet and back", 0.85),
            (Outcome.FALSE_ALARM, "床垫移位 / mat out of place", 0.15),
        ),
    ),
    _Kind(
        "vitals",
        Severity.HIGH,
        DeviceType.VITALS_MONITOR,
        EventKind.HEART_RATE,
        1.0,
        (
            (Outcome.ASSISTED_ON_SITE, "护士复测正常 / nurse re-measured, normal", 0.8),
            (Outcome.EMERGENCY_SERVICES_CALLED, "联系医生 / doctor called", 0.2),
        ),
        value=lambda rng: float(rng.choice((rng.randint(112, 130), rng.randint(40, 46)))),
    ),
    _Kind(
        "device_health",
        Severity.LOW,
        DeviceType.SOS_BUTTON,
        EventKind.BATTERY,
        0.8,
        ((Outcome.TECHNICAL_FAULT, "已更换电池 / battery replaced", 1.0),),
        value=lambda rng: float(rng.randint(5, 14)),
    ),
)


def _ack_delay(rng: random.Random, settings: HistorySettings) -> float:
    """Seconds to the acknowledgement: within 60 s for the aimed share, over 180 s for the tail."""
    draw = rng.random()
    if draw < settings.within_60s_share:
        return rng.uniform(8, 58)
    if draw < settings.within_60s_share + settings.late_share:
        return rng.uniform(185, 600)
    return rng.uniform(62, 178)


def _outcome(rng: random.Random, kind: _Kind) -> tuple[Outcome, str]:
    draw, total = rng.random() * sum(w for _, _, w in kind.outcomes), 0.0
    for outcome, note, weight in kind.outcomes:
        total += weight
        if draw <= total:
            return outcome, note
    return kind.outcomes[-1][0], kind.outcomes[-1][1]


def _acknowledger(rng: random.Random, responders: Sequence[str]) -> str:
    if responders and rng.random() < 0.25:
        return f"responder:{rng.choice(responders)} via {rng.choice(('sms', 'voice'))}"
    return f"user:{rng.choice(OPERATORS)}"


def plan_history(
    bindings: Sequence[Binding],
    responders: Sequence[str],
    now: datetime,
    settings: HistorySettings = HistorySettings(),
) -> list[PastIncident]:
    """The incidents of the `days` before `now` (all resolved before it), in order of opening."""
    rng = random.Random(settings.seed)
    by_type = {t: [b for b in bindings if b.device_type is t] for t in DeviceType}
    kinds = [k for k in _KINDS if by_type[k.device_type]]
    pendants = by_type[DeviceType.SOS_BUTTON]
    noisy = pendants[len(pendants) // 2] if pendants else None
    start, end = now - timedelta(days=settings.days), now - timedelta(hours=1)
    planned: list[PastIncident] = []
    for _ in range(round(settings.per_day * settings.days)):
        kind = rng.choices(kinds, weights=[k.weight for k in kinds])[0]
        device = rng.choice(by_type[kind.device_type])
        planned.append(_incident(rng, settings, responders, kind, device, _moment(rng, start, end)))
    if noisy is not None:
        sos = _KINDS[0]
        for _ in range(round(settings.noisy_per_day * settings.days)):
            incident = _incident(rng, settings, responders, sos, noisy, _moment(rng, start, end))
            planned.append(_false_alarm(incident))
    return sorted(planned, key=lambda p: p.opened_at)


def noisy_pendant(planned: Sequence[PastIncident]) -> str | None:
    """The device with the most false alarms in a plan."""
    counts: dict[str, int] = {}
    for p in planned:
        if p.outcome is Outcome.FALSE_ALARM:
            counts[p.binding.device_id] = counts.get(p.binding.device_id, 0) + 1
    return max(counts, key=lambda d: counts[d]) if counts else None


def _moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))


def _incident(
    rng: random.Random,
    settings: HistorySettings,
    responders: Sequence[str],
    kind: _Kind,
    device: Binding,
    at: datetime,
) -> PastIncident:
    ack = _ack_delay(rng, settings)
    outcome, note = _outcome(rng, kind)
    value = kind.value(rng) if kind.value else None
    evidence: dict[str, str | float | bool] = {"history": True}
    if kind.rule == "device_health":
        evidence["problem"] = "battery low"
    return PastIncident(
        opened_at=at,
        rule=kind.rule,
        severity=kind.severity,
        binding=device,
        kind=kind.event,
        ack_after_s=ack,
        resolve_after_s=ack + rng.uniform(120, 1500),
        acknowledged_by=_acknowledger(rng, responders),
        resolved_by=f"user:{rng.choice(OPERATORS)}",
        outcome=outcome,
        note=note,
        value=value,
        evidence=evidence,
    )


def _false_alarm(incident: PastIncident) -> PastIncident:
    from dataclasses import replace

    return replace(incident, outcome=Outcome.FALSE_ALARM, note="吊坠误触 / pendant pressed by accident")


# -- writing -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PastTest:
    """A button's weekly test (or a smoke detector's test button) on one of the past days."""

    at: datetime
    binding: Binding


#: What a test of each testable device type is: its rule and the event it sends.
_TESTS = {
    DeviceType.SOS_BUTTON: ("sos", EventKind.SOS),
    DeviceType.FALL_SENSOR: ("fall", EventKind.FALL),
    DeviceType.SMOKE_DETECTOR: ("smoke", EventKind.SMOKE),
}


def plan_tests(
    bindings: Sequence[Binding], now: datetime, settings: HistorySettings = HistorySettings()
) -> list[PastTest]:
    """Each SOS button, fall sensor and smoke detector tested once in each past week, except in
    `1 - tested_share` of the weeks: the service-quality page's test compliance has something to show."""
    rng = random.Random(settings.seed + 1)
    start = now - timedelta(days=settings.days)
    tests = []
    for week in range((settings.days + 6) // 7):
        for binding in (b for b in bindings if b.device_type in _TESTS):
            at = now - timedelta(days=7 * week + rng.uniform(0.2, 6.8))
            if rng.random() < settings.tested_share and at > start:
                tests.append(PastTest(at, binding))
    return sorted(tests, key=lambda t: t.at)


@dataclass(frozen=True, slots=True)
class _Step:
    at: datetime
    order: int
    planned: PastIncident | PastTest
    action: str


def _timeline(planned: Sequence[PastIncident], tests: Sequence[PastTest]) -> list[_Step]:
    steps = [_Step(t.at, n, t, "test") for n, t in enumerate(tests)]
    for n, p in enumerate(planned):
        steps += [
            _Step(p.opened_at, n, p, "open"),
            _Step(p.opened_at + timedelta(seconds=p.ack_after_s), n, p, "acknowledge"),
            _Step(p.opened_at + timedelta(seconds=p.resolve_after_s), n, p, "resolve"),
        ]
    return sorted(steps, key=lambda s: (s.at, s.order))


def write_incidents(
    make_store: Callable[[FakeClock], IncidentStore],
    planned: Sequence[PastIncident],
    tests: Sequence[PastTest] = (),
) -> int:
    """Open, acknowledge and resolve each planned incident, and record each test, through the store,
    all in time order, with the store's clock at each moment. Returns the number of incidents written."""
    clock = FakeClock()
    store = make_store(clock)
    ids: dict[int, int] = {}
    for step in _timeline(planned, tests):
        clock.set(step.at)
        p = step.planned
        if isinstance(p, PastTest):
            _test(store, p, step.order)
        elif step.action == "open":
            ids[step.order] = _open(store, p, step.order)
        elif step.action == "acknowledge":
            store.acknowledge(ids[step.order], p.acknowledged_by)
        else:
            store.resolve(ids[step.order], p.resolved_by, p.outcome, p.note)
    return len(ids)


def _test(store: IncidentStore, test: PastTest, n: int) -> None:
    rule, kind = _TESTS[test.binding.device_type]
    event = test.binding.event(
        kind, True, ts=test.at, received_at=test.at, message_key=f"history-test-{n}", test=True
    )
    store.apply(AlarmBatch(decisions=[RuledDecision(DeviceTestDecision(rule, event), check_duplicate=False)]))


def _open(store: IncidentStore, p: PastIncident, n: int) -> int:
    binding = p.binding
    event = binding.event(
        p.kind,
        p.value if p.value is not None else (False if p.kind is EventKind.BED_OCCUPIED else None),
        ts=p.opened_at,
        received_at=p.opened_at,
        message_key=f"history-{n}",
    )
    subject = binding.resident or binding.room or binding.device_id
    key = f"{p.rule}:{binding.site}:{subject}:history-{n}"
    decision = AlarmDecision(p.rule, p.severity, key, event, dict(p.evidence))
    result = store.apply(AlarmBatch(decisions=[RuledDecision(decision, check_duplicate=False)]))
    return result.changed[0].id


# -- telemetry ---------------------------------------------------------------------------------------


def telemetry_lines(
    rhythm: CareHomeRhythm, now: datetime, settings: HistorySettings = HistorySettings()
) -> Iterator[str]:
    """Line protocol for the past days' readings, oldest first, every `telemetry_step_min` minutes;
    batteries and links once an hour per device."""
    step = timedelta(minutes=settings.telemetry_step_min)
    at = now - timedelta(days=settings.days)
    per_hour = max(1, round(60 / settings.telemetry_step_min))
    series: dict[tuple[str, EventKind], str] = {}
    while at < now:
        for binding, readings in rhythm.readings(at, health_every=per_hour):
            for kind, value in readings.items():
                yield _line(series, binding, kind, value, at)
        at += step


def incident_lines(planned: Sequence[PastIncident]) -> Iterator[str]:
    """The readings behind the past wellbeing alarms, so the sensor log shows what raised them: the
    abnormal heart rate for the rule's two minutes, the bed left empty for half an hour."""
    series: dict[tuple[str, EventKind], str] = {}
    for p in planned:
        if p.rule == "vitals" and p.value is not None:
            for before_s in (150, 90, 30, 0):
                at = p.opened_at - timedelta(seconds=before_s)
                yield _line(series, p.binding, EventKind.HEART_RATE, p.value, at)
        elif p.rule == "bed_exit":
            for before_min in (35, 20, 5, 0):
                at = p.opened_at - timedelta(minutes=before_min)
                yield _line(series, p.binding, EventKind.BED_OCCUPIED, False, at)


def _line(
    series: dict[tuple[str, EventKind], str],
    binding: Binding,
    kind: EventKind,
    value: float | bool,
    at: datetime,
) -> str:
    """One point. The measurement and tags of a series are serialized (and escaped) by the gateway's own
    `to_line` once; only the value and the time change from point to point. Serializing every point
    that way takes seconds for a week, which the demo's start cannot spare."""
    prefix = series.get((binding.device_id, kind))
    if prefix is None:
        event = binding.event(kind, value, ts=at, received_at=at, message_key="history")
        prefix = series[(binding.device_id, kind)] = to_line(event).split(f" {VALUE_FIELD}=", 1)[0]
    field_value = ("true" if value else "false") if isinstance(value, bool) else repr(float(value))
    return f"{prefix} {VALUE_FIELD}={field_value} {timestamp_ns(at)}"


def write_telemetry(url: str, database: str, lines: Iterator[str], *, batch: int = 5000) -> int:
    """POST the lines to InfluxDB 1.x `/write` in batches; returns the number of points written."""
    written = 0
    with httpx.Client(base_url=url, timeout=30.0) as client:
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) >= batch:
                written += _post(client, database, chunk)
                chunk = []
        if chunk:
            written += _post(client, database, chunk)
    return written


def _post(client: httpx.Client, database: str, chunk: list[str]) -> int:
    response = client.post("/write", params={"db": database, "precision": "ns"}, content="\n".join(chunk))
    response.raise_for_status()
    return len(chunk)
