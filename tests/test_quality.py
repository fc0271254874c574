"""Service-quality indicators per site and site-local month over a known set of incidents and device
tests in a real SQLite store made by the real migrations; every figure is worked out by hand here."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, Engine, insert
from sqlalchemy.orm import Session
from stores import store_url
from test_reports import incident, store

from gateway.incidents.audit import AuditTrail
from gateway.incidents.db import make_engine
from gateway.incidents.migrate import upgrade
from gateway.incidents.schema import Outcome, ReassuranceAttempt, Visit
from gateway.reports.config import ReportsConfig
from gateway.reports.export import to_csv
from gateway.reports.quality import (
    CARE_WORKFLOW_COLUMNS,
    CARE_WORKFLOWS,
    QUALITY_COLUMNS,
    QualitySite,
    month_bounds,
    month_labels,
    quality_cells,
    service_quality,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
EAST = QualitySite("east", SHANGHAI, frozenset({"pendant-1", "pendant-2"}))
WEST = QualitySite("west", ZoneInfo("Europe/London"), frozenset())
#: After the end of March 2026 everywhere: every week that began in February or March is over.
NOW = datetime(2026, 4, 10, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(store_url(tmp_path / "careline.db"))
    upgrade(engine)
    yield engine
    engine.dispose()


def record_test(engine: Engine, device: str, at: datetime, by_operator: bool = False) -> None:
    trail = AuditTrail()
    with Session(engine) as session, session.begin():
        actor = "user:li" if by_operator else f"device:{device}"
        details: dict[str, Any] = {"site": "east", "event": "sos"}
        if by_operator:
            details["device"] = device
        trail.append(session, at=at, actor=actor, action="device.tested", details=details)


def report(engine: Engine, *sites: QualitySite, contributions: Any = ()) -> dict[tuple[str, str], Any]:
    with engine.connect() as connection:
        rows = service_quality(
            connection, list(sites), "2026-02", "2026-03", NOW, ReportsConfig(), contributions
        )
    return {(r.site, r.month): r for r in rows}


def test_months_are_site_local_and_every_month_is_a_row() -> None:
    assert month_labels("2025-11", "2026-02") == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert month_labels("2026-03", "2026-02") == []
    start, end = month_bounds("2026-03", SHANGHAI)
    assert (start, end) == (datetime(2026, 2, 28, 16, tzinfo=UTC), datetime(2026, 3, 31, 16, tzinfo=UTC))


def test_response_and_false_alarms_per_site_local_month(engine: Engine) -> None:
    # 28 Feb 2026 17:00 UTC is 1 March 01:00 in Shanghai: a March alarm there.
    march_in_shanghai = datetime(2026, 2, 28, 17, tzinfo=UTC)
    feb = datetime(2026, 2, 10, tzinfo=UTC)
    store(
        engine,
        [
            incident(march_in_shanghai, ack_s=30, resolve_s=100),
            incident(march_in_shanghai + timedelta(hours=1), ack_s=90, resolve_s=200, device_id="p2"),
            incident(
                march_in_shanghai + timedelta(hours=2),
                ack_s=200,
                resolve_s=300,
                device_id="p3",
                outcome=Outcome.FALSE_ALARM.value,
            ),
            # A test call is not an alarm anyone had to answer.
            incident(
                march_in_shanghai + timedelta(hours=3),
                ack_s=500,
                resolve_s=600,
                device_id="p4",
                outcome=Outcome.TEST_CALL.value,
            ),
            incident(feb, ack_s=10, resolve_s=20, device_id="p5"),
        ],
    )
    rows = report(engine, EAST, WEST)
    march, february = rows[("east", "2026-03")], rows[("east", "2026-02")]
    assert (march.incidents, march.acknowledged, march.false_alarms) == (3, 3, 1)
    assert march.share_60s == pytest.approx(1 / 3)
    assert march.share_180s == pytest.approx(2 / 3)
    assert march.ack_median_s == pytest.approx(90)
    assert march.false_alarm_rate == pytest.approx(1 / 3)
    assert (february.incidents, february.share_60s, february.false_alarm_rate) == (1, 1.0, 0.0)
    # A site or month with nothing in it is still a row, of zeros.
    quiet = rows[("west", "2026-02")]
    assert (quiet.incidents, quiet.share_60s, quiet.false_alarm_rate, quiet.test_compliance) == (
        0,
        None,
        None,
        None,
    )
    assert set(rows) == {(s, m) for s in ("east", "west") for m in ("2026-02", "2026-03")}


def test_weekly_button_tests_count_device_weeks_begun_in_the_month(engine: Engine) -> None:
    # February 2026's Mondays: 2, 9, 16, 23; March's: 2, 9, 16, 23, 30 (the week of 30 March ends
    # 6 April, before NOW). Two buttons: 8 device-weeks in February, 10 in March.
    monday = datetime(2026, 2, 2, 2, tzinfo=UTC)  # 10:00 in Shanghai
    record_test(engine, "pendant-1", monday)
    record_test(engine, "pendant-1", monday + timedelta(days=2))  # the same week again: still one
    record_test(engine, "pendant-2", monday + timedelta(days=7), True)
    record_test(engine, "pendant-1", datetime(2026, 3, 31, 1, tzinfo=UTC))  # week of 30 March
    # Sunday 1 March 20:00 UTC is Monday 2 March 04:00 in Shanghai: the week of 2 March.
    record_test(engine, "pendant-2", datetime(2026, 3, 1, 20, tzinfo=UTC))
    record_test(engine, "pendant-9", monday)  # not a testable device of the site: ignored
    rows = report(engine, EAST)
    february, march = rows[("east", "2026-02")], rows[("east", "2026-03")]
    assert (february.device_weeks, february.device_weeks_tested) == (8, 2)
    assert february.test_compliance == pytest.approx(0.25)
    assert (march.device_weeks, march.device_weeks_tested) == (10, 2)


def test_a_week_still_running_is_not_yet_a_missed_test(engine: Engine) -> None:
    with engine.connect() as connection:
        rows = service_quality(
            connection, [EAST], "2026-03", "2026-03", datetime(2026, 3, 20, tzinfo=UTC), ReportsConfig()
        )
    # Weeks of 2, 9 March are over on 20 March; 16 March's is not.
    assert rows[0].device_weeks == 4


def test_contributed_counts_become_columns_of_the_table_and_the_csv(engine: Engine) -> None:
    def visits(
        connection: Connection, sites: Any, first: str, last: str
    ) -> dict[tuple[str, str], dict[str, int]]:
        assert ([s.id for s in sites], first, last) == (["east"], "2026-02", "2026-03")
        return {("east", "2026-03"): {"visits_planned": 8, "visits_done": 6}}

    rows = report(engine, EAST, contributions=[visits])
    cells = [quality_cells(r, ("visits_planned", "visits_done")) for r in rows.values()]
    table = list(
        csv.DictReader(io.StringIO(to_csv((*QUALITY_COLUMNS, "visits_planned", "visits_done"), cells)))
    )
    march = next(r for r in table if r["month"] == "2026-03")
    assert (march["visits_planned"], march["visits_done"]) == ("8", "6")
    assert next(r for r in table if r["month"] == "2026-02")["visits_planned"] == ""


def test_visits_and_reassurance_calls_are_counted_per_site_local_month(engine: Engine) -> None:
    def visit(planned: datetime, status: str, late: bool = False) -> dict[str, Any]:
        return {
            "site": "east", "resident": "wang", "plan": "weekly", "carer": "fang", "planned_at": planned,
            "due_by": planned + timedelta(hours=1), "status": status, "late": late,
            "checked_in_at": None, "checked_in_via": None, "checked_out_at": None, "checked_out_via": None,
            "checklist": {}, "notes": "", "incident_id": None, "updated_at": planned,
        }  # fmt: skip

    def call(day: str, attempt: int, outcome: str | None, digits: str | None) -> dict[str, Any]:
        at = datetime.fromisoformat(f"{day}T01:00:00+00:00")
        return {
            "resident_id": "wang", "site": "east", "day": day, "attempt": attempt, "channel": "voice",
            "phone": "+8613800000000", "scheduled_at": at, "placed_at": at,
            "provider_sid": f"CA{day}{attempt}",
            "status": "completed" if digits else "no-answer", "detail": None, "digits": digits, "reply": None,
            "answered_at": at if digits else None, "outcome": outcome, "decided_at": at, "incident_id": None,
            "updated_at": at,
        }  # fmt: skip

    # 28 Feb 17:00 UTC is 1 March 01:00 in Shanghai: a March visit there.
    with engine.begin() as connection:
        connection.execute(
            insert(Visit),
            [
                visit(datetime(2026, 2, 28, 17, tzinfo=UTC), "done"),
                visit(datetime(2026, 3, 5, 2, tzinfo=UTC), "late", late=True),
                visit(datetime(2026, 3, 12, 2, tzinfo=UTC), "missed"),
                visit(datetime(2026, 2, 12, 2, tzinfo=UTC), "done"),
            ],
        )
        connection.execute(
            insert(ReassuranceAttempt),
            [
                call("2026-03-02", 1, "well", "1"),
                call("2026-03-03", 1, None, None),
                call("2026-03-03", 2, "needs_help", "2"),
                call("2026-03-04", 1, None, None),
                call("2026-03-04", 2, "no_answer", None),
            ],
        )
    with engine.connect() as connection:
        rows = service_quality(connection, [EAST], "2026-02", "2026-03", NOW, ReportsConfig(), CARE_WORKFLOWS)
    february, march = ({k: v for k, v in r.counts.items()} for r in rows)
    assert february == {"visits_planned": 1, "visits_done": 1, "visits_late": 0, "visits_missed": 0}
    assert {k: march[k] for k in ("visits_planned", "visits_done", "visits_late", "visits_missed")} == {
        "visits_planned": 3,
        "visits_done": 2,
        "visits_late": 1,
        "visits_missed": 1,
    }
    assert {k: march[k] for k in ("calls_placed", "calls_answered", "days_well", "days_help")} == {
        "calls_placed": 5,
        "calls_answered": 2,
        "days_well": 1,
        "days_help": 1,
    }
    assert march["days_no_answer"] == 1
    assert set(CARE_WORKFLOW_COLUMNS) == set(march)
