"""The office's figures over a known set of incidents in a real SQLite store made by the real
migrations; every expected figure is worked out by hand in the test."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session
from stores import store_url
from test_catalogue import rule_names

from dashboard.api import STATIC
from gateway.config import CarelineConfig
from gateway.incidents.db import make_engine
from gateway.incidents.migrate import upgrade
from gateway.incidents.schema import AuditEntry, Incident
from gateway.reports.config import ReportsConfig
from gateway.reports.export import RESPONSE_COLUMNS, response_row, to_csv
from gateway.reports.false_alarms import false_alarms
from gateway.reports.history import AuditFilter, IncidentFilter, audit_history, incident_history
from gateway.reports.response_times import ReportFilter, ResponseReport, operator_of, response_times

SHANGHAI, LONDON = ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/London")
ZONES = {"east": SHANGHAI, "west": LONDON}
SETTINGS = ReportsConfig()
#: Monday 2 March 2026, 00:00 UTC = 08:00 in Shanghai: the start of the day shift there.
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
#: Acknowledgement delays at "east", seconds; sorted: median is the 6th (50), p90 the 10th (180, as
#: numpy interpolates at index 0.9 × 10 = 9), mean 727 / 11; within 60 s: 7, within 180 s: 10.
EAST_ACKS = [5, 10, 20, 30, 40, 50, 60, 61, 90, 180, 181]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(store_url(tmp_path / "careline.db"))
    upgrade(engine)
    yield engine
    engine.dispose()


def incident(opened: datetime, site: str = "east", **fields: Any) -> dict[str, Any]:
    ack_s, resolve_s = fields.pop("ack_s", None), fields.pop("resolve_s", None)
    row: dict[str, Any] = {
        "key": f"k-{opened.timestamp()}-{site}-{fields.get('device_id', '')}",
        "rule": "sos",
        "severity": "critical",
        "status": "resolved" if resolve_s is not None else "acknowledged" if ack_s is not None else "open",
        "site": site,
        "room": "101",
        "resident": None,
        "device_id": "pendant-1",
        "opened_at": opened,
        "last_triggered_at": opened,
        "trigger_count": 1,
        "acknowledged_at": None if ack_s is None else opened + timedelta(seconds=ack_s),
        "acknowledged_by": "user:li" if ack_s is not None else None,
        "resolved_at": None if resolve_s is None else opened + timedelta(seconds=resolve_s),
        "resolved_by": "user:li" if resolve_s is not None else None,
        "outcome": "assisted_on_site" if resolve_s is not None else None,
        "note": None,
        "evidence": {},
    }
    row.update(fields)
    return row


def store(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as connection:
        connection.execute(insert(Incident), rows)


def report(engine: Engine, **kw: Any) -> ResponseReport:
    filters = ReportFilter(kw.pop("start", T0 - timedelta(days=1)), kw.pop("end", T0 + timedelta(days=40)),
                           kw.pop("sites", None))  # fmt: skip
    with engine.connect() as connection:
        return response_times(connection, filters, SETTINGS, ZONES, **kw)


def east_and_west(engine: Engine) -> None:
    rows = [
        incident(T0 + timedelta(minutes=10 * i), ack_s=ack, resolve_s=ack + 600)
        for i, ack in enumerate(EAST_ACKS)
    ]
    # Forty calls at "west", each answered in 30 s and resolved in 5 minutes, by a responder by SMS.
    rows += [
        incident(T0 + timedelta(minutes=i), "west", ack_s=30, resolve_s=300,
                 acknowledged_by="responder:r1 via sms", device_id=f"west-{i % 4}")
        for i in range(40)
    ]  # fmt: skip
    # A test call is no alarm: counted nowhere.
    rows.append(incident(T0, "west", ack_s=900, resolve_s=901, outcome="test_call"))
    store(engine, rows)


def test_per_site_figures_match_those_worked_out_by_hand(engine: Engine) -> None:
    east_and_west(engine)
    by_site = {row.group: row.kpi for row in report(engine, group="site").rows}
    east, west = by_site["east"], by_site["west"]
    assert (east.incidents, east.acknowledged, east.resolved) == (11, 11, 11)
    assert (east.acknowledge.median_s, east.acknowledge.p90_s) == (50, 180)
    assert east.acknowledge.mean_s == pytest.approx(727 / 11, abs=0.001)
    assert east.resolve.median_s == 650
    sixty, three_minutes = east.targets
    assert (sixty.within_s, sixty.count, sixty.target, sixty.met) == (60, 7, 0.975, False)
    assert sixty.share == pytest.approx(7 / 11)
    assert (three_minutes.within_s, three_minutes.count, three_minutes.met) == (180, 10, False)
    assert [t.met for t in west.targets] == [True, True]
    assert (west.incidents, west.acknowledge.median_s, west.resolve.p90_s) == (40, 30, 300)


def test_an_unanswered_alarm_counts_against_the_share_and_not_in_the_times(engine: Engine) -> None:
    store(engine, [incident(T0, ack_s=20, resolve_s=100), incident(T0 + timedelta(minutes=1))])
    total = report(engine).total
    assert (total.incidents, total.acknowledged, total.resolved) == (2, 1, 1)
    assert total.acknowledge.median_s == 20
    assert total.targets[0].share == 0.5
    assert total.targets[0].met is False


def test_an_empty_period_has_no_figures_and_no_verdict(engine: Engine) -> None:
    total = report(engine).total
    assert total.incidents == 0
    assert total.acknowledge.median_s is None
    assert [(t.share, t.met) for t in total.targets] == [(None, None), (None, None)]


def test_days_and_shifts_are_the_sites_local_ones(engine: Engine) -> None:
    store(
        engine,
        [
            # Shanghai is UTC+8: 11:59 UTC is 19:59 there (day shift), 12:00 UTC is 20:00 (night);
            # 15:59 UTC is still 2 March there, 16:00 UTC is 00:00 on 3 March.
            incident(T0 + timedelta(hours=11, minutes=59), ack_s=10),
            incident(T0 + timedelta(hours=12), ack_s=20),
            incident(T0 + timedelta(hours=15, minutes=59), ack_s=30),
            incident(T0 + timedelta(hours=16), ack_s=40),
            # 07:59 in Shanghai on 3 March is still the night shift that began at 20:00 on 2 March.
            incident(T0 + timedelta(hours=23, minutes=59), ack_s=50),
            incident(T0 + timedelta(hours=24), ack_s=60),
        ],
    )
    shifts = {row.group: row.kpi.incidents for row in report(engine, group="shift").rows}
    assert shifts == {"day": 2, "night": 4}
    days = {row.bucket: row.kpi.incidents for row in report(engine, bucket="day").rows}
    assert days == {"2026-03-02": 3, "2026-03-03": 3}
    months = {row.bucket: row.kpi.incidents for row in report(engine, bucket="month").rows}
    assert months == {"2026-03": 6}


def test_a_day_follows_summer_time(engine: Engine) -> None:
    # London went to BST at 01:00 UTC on 29 March 2026: 23:30 UTC that day is 00:30 on 30 March.
    spring = datetime(2026, 3, 29, tzinfo=UTC)
    store(
        engine,
        [
            incident(spring + timedelta(minutes=30), "west", ack_s=5),
            incident(spring + timedelta(hours=22, minutes=30), "west", ack_s=5),
            incident(spring + timedelta(hours=23, minutes=30), "west", ack_s=5),
        ],
    )
    days = {row.bucket: row.kpi.incidents for row in report(engine, bucket="day").rows}
    assert days == {"2026-03-29": 2, "2026-03-30": 1}
    # 23:30 BST (22:30 UTC) is the night shift; 00:30 GMT too.
    assert {row.group: row.kpi.incidents for row in report(engine, group="shift").rows} == {"night": 3}


def test_by_operator_a_responder_is_one_whatever_channel_they_answered_through(engine: Engine) -> None:
    store(
        engine,
        [
            incident(T0, "west", ack_s=10, acknowledged_by="responder:r1 via sms"),
            incident(T0 + timedelta(minutes=1), "west", ack_s=20, acknowledged_by="responder:r1 via voice"),
            incident(T0 + timedelta(minutes=2), "west", ack_s=200, acknowledged_by="user:li"),
            incident(T0 + timedelta(minutes=3), "west"),
        ],
    )
    rows = {row.group: row.kpi for row in report(engine, group="operator").rows}
    assert set(rows) == {"responder:r1", "user:li", ""}
    assert rows["responder:r1"].incidents == 2
    assert rows["responder:r1"].acknowledge.mean_s == 15
    assert rows["user:li"].targets[1].met is False
    assert operator_of("responder:r1 via link") == "responder:r1"


def test_by_day_and_site_each_row_and_the_chart_series_hold_their_own_incidents(engine: Engine) -> None:
    east_and_west(engine)
    store(engine, [incident(T0 + timedelta(days=1, hours=1), ack_s=100)])
    result = report(engine, group="site", bucket="day")
    cells = {(row.group, row.bucket): row.kpi.incidents for row in result.rows}
    assert cells == {("east", "2026-03-02"): 11, ("west", "2026-03-02"): 40, ("east", "2026-03-03"): 1}
    assert [(row.bucket, row.kpi.incidents) for row in result.series] == [
        ("2026-03-02", 51),
        ("2026-03-03", 1),
    ]
    assert result.series[1].kpi.targets[0].count == 0


def test_a_scoped_report_counts_only_those_sites(engine: Engine) -> None:
    east_and_west(engine)
    assert report(engine, sites=frozenset({"west"})).total.incidents == 40
    assert report(engine, sites=frozenset()).total.incidents == 0


def test_the_period_is_half_open(engine: Engine) -> None:
    store(engine, [incident(T0, ack_s=1), incident(T0 + timedelta(hours=1), ack_s=1)])
    assert report(engine, start=T0, end=T0 + timedelta(hours=1)).total.incidents == 1


def test_false_alarms_per_device_and_per_type(engine: Engine) -> None:
    def closed(minute: int, device: str, outcome: str, rule: str = "sos") -> dict[str, Any]:
        return incident(T0 + timedelta(minutes=minute), "west", ack_s=5, resolve_s=10,
                        device_id=device, outcome=outcome, rule=rule)  # fmt: skip

    store(
        engine,
        [
            closed(0, "pendant-a", "false_alarm"),
            closed(1, "pendant-a", "false_alarm"),
            closed(2, "pendant-a", "cancelled_by_resident"),
            closed(3, "pendant-a", "assisted_on_site"),
            closed(4, "pendant-b", "assisted_on_site"),
            closed(5, "fall-1", "false_alarm", "fall"),
            closed(6, "fall-1", "test_call", "fall"),
        ],
    )
    filters = ReportFilter(T0, T0 + timedelta(days=1))
    with engine.connect() as connection:
        by_device = false_alarms(connection, filters, "device")
        by_rule = false_alarms(connection, filters, "rule")
    assert [(r.key, r.incidents, r.false_alarms, r.cancelled_by_resident) for r in by_device] == [
        ("fall-1", 1, 1, 0),
        ("pendant-a", 4, 2, 1),
        ("pendant-b", 1, 0, 0),
    ]
    assert by_device[1].false_alarm_rate == 0.5
    assert by_device[1].cancelled_rate == 0.25
    assert by_device[1].site == "west"
    assert [(r.key, r.incidents, r.false_alarms) for r in by_rule] == [("fall", 1, 1), ("sos", 5, 2)]


def test_the_csv_holds_the_same_figures_as_the_rows(engine: Engine) -> None:
    east_and_west(engine)
    result = report(engine, group="site", bucket="month")
    rows = [response_row(row) for row in result.rows]
    parsed = list(csv.DictReader(io.StringIO(to_csv(RESPONSE_COLUMNS, rows))))
    assert [r["group"] for r in parsed] == ["east", "west"]
    assert parsed[0]["ack_p90_s"] == "180.0"
    assert parsed[0]["met_60s"] == "false"
    assert float(parsed[0]["share_60s"]) == pytest.approx(7 / 11, abs=1e-6)
    assert parsed[1]["met_180s"] == "true"
    assert parsed[1]["bucket"] == "2026-03"


def test_history_filters_by_wing_rule_outcome_operator_and_pages(engine: Engine) -> None:
    store(
        engine,
        [
            incident(T0, "east", room="101", ack_s=5, resolve_s=9, outcome="false_alarm"),
            incident(T0 + timedelta(minutes=1), "east", room="201", rule="fall", ack_s=5,
                     acknowledged_by="responder:r2 via voice"),
            incident(T0 + timedelta(minutes=2), "west", room="101", resident="wang"),
        ],
    )  # fmt: skip

    def ids(**kw: Any) -> list[int]:
        filters = IncidentFilter(T0, T0 + timedelta(hours=1), **kw)
        with Session(engine) as session:
            return [i.id for i in incident_history(session, filters, 0, 10).items]

    assert ids() == [3, 2, 1]
    assert ids(wing_rooms={"east": frozenset({"201"})}) == [2]
    assert ids(wing_rooms={}) == []
    assert ids(rule="fall") == [2]
    assert ids(outcome="false_alarm") == [1]
    assert ids(operator="responder:r2") == [2]
    assert ids(operator="user:li") == [1]
    assert ids(resident="wang") == [3]
    assert ids(sites=frozenset({"east"})) == [2, 1]
    with Session(engine) as session:
        page = incident_history(session, IncidentFilter(T0, T0 + timedelta(hours=1)), 1, 1)
    assert (page.total, [i.id for i in page.items]) == (3, [2])


def test_audit_filters_and_scope(engine: Engine) -> None:
    store(engine, [incident(T0, "east"), incident(T0, "west", device_id="w")])
    entry = {"prev_hash": "0" * 64, "hash": "1" * 64}
    with engine.begin() as connection:
        connection.execute(
            insert(AuditEntry),
            [
                {"at": T0, "actor": "user:li", "action": "incident.acknowledged", "incident_id": 1,
                 "details": {}, **entry},
                {"at": T0, "actor": "responder:r1 via sms", "action": "incident.acknowledged",
                 "incident_id": 2, "details": {}, **entry},
                {"at": T0, "actor": "user:admin", "action": "directory.changed", "incident_id": None,
                 "details": {"note": "新房间 101_a"}, **entry},
            ],
        )  # fmt: skip

    def ids(**kw: Any) -> list[int]:
        with Session(engine) as session:
            filters = AuditFilter(T0, T0 + timedelta(hours=1), **kw)
            return [e.id for e in audit_history(session, filters, 0, 10).items]

    assert ids() == [3, 2, 1]
    assert ids(actor="responder:r1") == [2]
    assert ids(action="directory.changed") == [3]
    assert ids(incident_id=1) == [1]
    assert ids(text="新房间") == [3]
    assert ids(text="101_a") == [3]
    assert ids(text="1%a") == []
    assert ids(sites=frozenset({"east"})) == [1]


def test_the_shifts_setting_must_cover_each_minute_once() -> None:
    night_only = {"shifts": [{"name": "night", "start": "20:00", "end": "08:00"}]}
    with pytest.raises(ValidationError, match="at 08:00 no shift"):
        ReportsConfig.model_validate(night_only)
    overlapping = {"shifts": [{"name": "a", "start": "00:00", "end": "13:00"},
                              {"name": "b", "start": "12:00", "end": "00:00"}]}  # fmt: skip
    with pytest.raises(ValidationError, match="at 12:00 shifts a, b overlap"):
        ReportsConfig.model_validate(overlapping)
    with pytest.raises(ValidationError, match="quoted"):
        ReportsConfig.model_validate({"shifts": [{"name": "all", "start": 0, "end": 0}]})
    three = CarelineConfig.model_validate(
        {"reports": {"shifts": [{"name": "early", "start": "06:00", "end": "14:00"},
                                {"name": "late", "start": "14:00", "end": "22:00"},
                                {"name": "night", "start": "22:00", "end": "06:00"}]}}
    )  # fmt: skip
    assert [s.name for s in three.reports.shifts] == ["early", "late", "night"]
    assert [s.name for s in CarelineConfig().reports.shifts] == ["day", "night"]


def test_the_history_page_offers_every_alarm_type_the_gateway_raises() -> None:
    source = (STATIC / "office-history.js").read_text(encoding="utf-8")
    listed = re.search(r"const RULES = \[([^\]]*)\]", source)
    assert listed is not None
    assert sorted(re.findall(r'"(\w+)"', listed.group(1))) == sorted(rule_names())
