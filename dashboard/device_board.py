"""The managers' device board: every bound device with its live health, its last test and what needs
doing about it (docs/devices-board.md).

Flags, each computed here from the directory, the telemetry process's device health and the device
tests, at the moment of the request:

* `offline`: Zigbee2MQTT says the device is offline, or nothing was heard for longer than the site's
  `device_health` interval times its grace factor (`silent`), as the device-health rule decides;
* `battery_low`: at or below the site's `device_health.battery_low_pct` (or the device said so);
* `weak_signal`: link quality below the site's `device_health.weak_link_quality`;
* `test_overdue`: an alarm device that can be tested (an SOS pendant or pull cord, a fall sensor, a
  smoke detector) never tested, or last tested longer ago than its site's `duty.test_interval_days`
  (7 unless set: JGJ/T 484 asks for weekly tests of alarm buttons; smoke detectors' self-tests likewise);
* `never_heard`: bound, but not heard since the gateway started;
* `fault_since` / `fault_over_2h`: since when the device is offline or low, and whether that is longer
  than the 2 hours JGJ/T 484 allows before a workaround is in place.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import Response

from dashboard.deps import Manager
from dashboard.openapi import JSON_OR_CSV, NOT_FOUND, UNAVAILABLE
from devices.model import DeviceType
from gateway.config import DeviceConfig, SiteConfig
from gateway.directory.sections import DirectorySections
from gateway.incidents.views import DeviceTestView
from gateway.telemetry_lane import DeviceState
from rules.wellbeing.config import DeviceHealthConfig

#: JGJ/T 484: alarm buttons are tested weekly (a site may ask for more or less: `duty.test_interval_days`).
TEST_INTERVAL = timedelta(days=7)
#: JGJ/T 484: a workaround within 2 hours of a device fault.
FAULT_LIMIT = timedelta(hours=2)
#: Every alarm device with a test: a pendant's or pull cord's press (test mode or a test call), a fall
#: sensor's alarm in test mode, a smoke detector's own test button. Door sensors raise no call to test.
TESTED_TYPES = frozenset({DeviceType.SOS_BUTTON, DeviceType.FALL_SENSOR, DeviceType.SMOKE_DETECTOR})
Flag = Literal["offline", "battery_low", "weak_signal", "test_overdue", "never_heard", "fault_over_2h"]
#: In order of urgency: the attention list sorts by a device's first flag here. A device never heard may
#: only have stayed quiet since the gateway started, so it comes last.
FLAGS: tuple[Flag, ...] = (
    "fault_over_2h",
    "offline",
    "battery_low",
    "test_overdue",
    "weak_signal",
    "never_heard",
)
CSV_COLUMNS = (
    "device_id",
    "type",
    "site",
    "room",
    "resident",
    "resident_name",
    "online",
    "offline_reason",
    "last_seen",
    "battery",
    "link_quality",
    "last_test_at",
    "test_interval_days",
    "fault_since",
    *FLAGS,
)
#: Cells a spreadsheet would run as a formula (CSV injection) get a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class BoardRow:
    device_id: str
    type: str
    site: str
    site_name: str
    room: str | None
    resident: str | None
    resident_name: str | None
    online: bool | None
    last_seen: datetime | None
    battery: float | None
    link_quality: float | None
    last_test_at: datetime | None
    last_test_kind: str | None
    #: The site's: a test older than this many days is overdue.
    test_interval_days: int
    offline: bool
    #: "unavailable" (the coordinator said so) or "silent" (nothing heard for too long); None if online.
    offline_reason: str | None
    battery_low: bool
    weak_signal: bool
    test_overdue: bool
    never_heard: bool
    fault_since: datetime | None
    fault_for_s: float | None
    fault_over_2h: bool

    @property
    def flags(self) -> list[Flag]:
        return [flag for flag in FLAGS if getattr(self, flag)]

    def urgency(self) -> tuple[int, float, str]:
        """Most urgent first: by the first flag in FLAGS order, then the longest fault, or else the test
        longest ago (never tested first)."""
        flags = self.flags
        rank = FLAGS.index(flags[0]) if flags else len(FLAGS)
        if self.fault_for_s:
            return rank, -self.fault_for_s, self.device_id
        tested = self.last_test_at.timestamp() if self.last_test_at is not None else -math.inf
        return rank, tested, self.device_id

    def as_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name in _FIELDS:
            value = getattr(self, name)
            row[name] = value.isoformat() if isinstance(value, datetime) else value
        row["flags"] = self.flags
        return row


_FIELDS = tuple(f.name for f in fields(BoardRow))


def _utc(moment: datetime) -> datetime:
    # SQLite gives back naive datetimes; the store writes them in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)


def assess(
    device: DeviceConfig,
    health: DeviceState | None,
    test: DeviceTestView | None,
    rules: DeviceHealthConfig,
    now: datetime,
    names: Mapping[str, str],
    *,
    test_interval: timedelta = TEST_INTERVAL,
) -> BoardRow:
    """One device's row: its health, last test and flags at `now`."""
    last_seen = _utc(health.last_seen) if health else None
    offline_reason = _offline_reason(device, health, rules, now)
    low = health is not None and health.battery_low
    starts = [
        _offline_start(health, offline_reason),
        _utc_or_none(health.battery_low_since) if health and low else None,
    ]
    fault_since = min((s for s in starts if s is not None), default=None)
    fault_for = (now - fault_since).total_seconds() if fault_since else None
    last_test = _utc(test.last_test_at) if test else None
    link = health.link_quality if health else None
    return BoardRow(
        device_id=device.id,
        type=device.type.value,
        site=device.site,
        site_name=names.get(f"site:{device.site}", device.site),
        room=device.room,
        resident=device.resident,
        resident_name=names.get(f"resident:{device.resident}") if device.resident else None,
        online=None if health is None else offline_reason is None,
        last_seen=last_seen,
        battery=health.battery if health else None,
        link_quality=link,
        last_test_at=last_test,
        last_test_kind=test.kind if test else None,
        test_interval_days=round(test_interval.total_seconds() / 86400),
        offline=offline_reason is not None,
        offline_reason=offline_reason,
        battery_low=low,
        weak_signal=link is not None and link < rules.weak_link_quality,
        test_overdue=device.type in TESTED_TYPES and (last_test is None or now - last_test > test_interval),
        never_heard=health is None,
        fault_since=fault_since,
        fault_for_s=fault_for,
        fault_over_2h=fault_for is not None and fault_for >= FAULT_LIMIT.total_seconds(),
    )


def _offline_reason(
    device: DeviceConfig, health: DeviceState | None, rules: DeviceHealthConfig, now: datetime
) -> str | None:
    if health is None:
        return None
    if not health.online:
        return "unavailable"
    interval = rules.interval_overrides_s.get(device.id, rules.heartbeat_interval_s)
    silent_after = timedelta(seconds=interval * rules.grace_factor)
    return "silent" if now - _utc(health.last_seen) > silent_after else None


def _offline_start(health: DeviceState | None, reason: str | None) -> datetime | None:
    # A silent device has been out of reach since it was last heard; an unavailable one since the
    # coordinator said so.
    if health is None or reason is None:
        return None
    if reason == "unavailable" and health.offline_since is not None:
        return _utc(health.offline_since)
    return _utc(health.last_seen)


def board(
    sections: DirectorySections,
    health: Mapping[str, DeviceState],
    tests: Iterable[DeviceTestView],
    now: datetime,
    scope: frozenset[str] | None,
) -> list[BoardRow]:
    """Every active device of the sites in `scope` (None: all), most urgent first."""
    sites: dict[str, SiteConfig] = {site.id: site for site in sections.sites}
    names = {f"site:{site.id}": site.name for site in sections.sites}
    names |= {f"resident:{r.id}": r.name for r in sections.residents}
    last_tests = {test.device_id: test for test in tests}
    rows = [
        assess(
            device,
            health.get(device.id),
            last_tests.get(device.id),
            _rules(sites.get(device.site)),
            now,
            names,
            test_interval=_test_interval(sites.get(device.site)),
        )
        for device in sections.devices
        if device.active and (scope is None or device.site in scope)
    ]
    return sorted(rows, key=BoardRow.urgency)


def _rules(site: SiteConfig | None) -> DeviceHealthConfig:
    return site.wellbeing.device_health if site is not None else DeviceHealthConfig()


def _test_interval(site: SiteConfig | None) -> timedelta:
    return timedelta(days=site.duty.test_interval_days) if site is not None else TEST_INTERVAL


def summary(rows: Sequence[BoardRow]) -> dict[str, int]:
    counts = {"total": len(rows), "attention": sum(1 for row in rows if row.flags)}
    return counts | {flag: sum(1 for row in rows if getattr(row, flag)) for flag in FLAGS}


def to_csv(rows: Sequence[BoardRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        shown = row.as_json()
        writer.writerow([_cell(shown[column]) for column in CSV_COLUMNS])
    return out.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    # A device or resident named "=HYPERLINK(...)" must not become a live formula in a spreadsheet.
    return "'" + text if text.startswith(_FORMULA_START) else text


def device_board_router() -> APIRouter:
    router = APIRouter(tags=["devices"])

    @router.get("/api/office/devices", responses={**JSON_OR_CSV, **NOT_FOUND, **UNAVAILABLE})
    async def office_devices(
        account: Manager,
        request: Request,
        site: str | None = None,
        type: DeviceType | None = None,
        flag: Flag | None = None,
        format: Literal["json", "csv"] = "json",
    ) -> Any:
        """Every device of the user's sites with its health, last test and flags, most urgent first.
        `site` and `type` narrow everything; `flag` narrows `devices` (and the CSV, `format=csv`) only:
        `summary` counts and `attention` lists the flagged devices of the site and type."""
        ctx = request.app.state.careline
        if ctx.directory is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the directory is not kept here")
        scope = account.scope
        if site is not None and scope is not None and site not in scope:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {site!r} among yours")
        sections = await ctx.service.report(ctx.directory.load)
        if site is not None and all(s.id != site for s in sections.sites):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {site!r}")
        tests = await ctx.service.report(ctx.service.store.device_tests)
        now = _utc(ctx.service.store.now())
        # Thousands of devices take tens of milliseconds to assess and encode: not on the event loop
        # the alarm lane shares. (The health snapshot is replaced whole every second, never changed.)
        return await asyncio.to_thread(
            _answer, sections, dict(ctx.devices.devices), tests, now, scope, (site, type, flag), format
        )

    return router


def _answer(
    sections: DirectorySections,
    health: Mapping[str, DeviceState],
    tests: Sequence[DeviceTestView],
    now: datetime,
    scope: frozenset[str] | None,
    narrowing: tuple[str | None, DeviceType | None, Flag | None],
    format: Literal["json", "csv"],
) -> Response:
    site, kind, flag = narrowing
    rows = [
        row
        for row in board(sections, health, tests, now, scope)
        if (site is None or row.site == site) and (kind is None or row.type == kind)
    ]
    shown = [row for row in rows if flag is None or getattr(row, flag)]
    if format == "csv":
        name = f"careline-devices-{now:%Y%m%d%H%M}.csv"
        return Response(
            to_csv(shown),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    body = {
        "generated_at": now.isoformat(),
        "test_interval_days": TEST_INTERVAL.days,
        "fault_limit_hours": FAULT_LIMIT.total_seconds() / 3600,
        "summary": summary(rows),
        "attention": [row.as_json() for row in rows if row.flags],
        "devices": [row.as_json() for row in shown],
    }
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/json")
