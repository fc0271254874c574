"""The office's report queries over a year of incidents of 1,000 residents.

Set-up: real SQLite (WAL, synchronous=FULL, as the gateway runs it) made by the real migrations, then
10 sites (5 in Asia/Shanghai, 5 in Europe/London, so summer time is crossed) of 100 residents each,
0.5 alarms per resident per day for 365 days (182,500 incidents), bulk-inserted with SQLAlchemy Core
(not through the alarm lane). Acknowledgement delays are log-normal (median about 35 s, 2 % never
acknowledged), outcomes 70 % assisted, 12 % false alarm, 8 % cancelled by the resident.

Each query is timed cold (first run on a new engine: SQLite's page cache empty, the OS cache warm) and
warm (median of 5 runs), for the last 30 days and the last 365 days, with the indexes of migration 0005
(`ix_incidents_opened_at`, `ix_incidents_site_opened`, created here as that migration does) and
without them. Three audit entries per answered incident (opened,
acknowledged, resolved; one for an unanswered one) are inserted too, for the audit trail's queries.

Run: `.venv/bin/python benchmarks/kpi_queries.py` (prints the figures, writes
benchmarks/results/kpi_queries.json and the table in docs/benchmarks.md; --no-write prints only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import Engine, insert, text
from sqlalchemy.orm import Session
from support import replace_section

from gateway.incidents.db import make_engine
from gateway.incidents.migrate import upgrade
from gateway.incidents.schema import AuditEntry, Incident
from gateway.reports.config import ReportsConfig
from gateway.reports.false_alarms import false_alarms
from gateway.reports.history import AuditFilter, IncidentFilter, audit_history, incident_history
from gateway.reports.response_times import ReportFilter, response_times

ROOT = Path(__file__).resolve().parent.parent
SITES = [f"site-{n:02d}" for n in range(10)]
ZONES = {site: ZoneInfo("Asia/Shanghai" if n < 5 else "Europe/London") for n, site in enumerate(SITES)}
RESIDENTS_PER_SITE = 100
ALARMS_PER_RESIDENT_DAY = 0.5
DAYS = 365
END = datetime(2026, 12, 1, tzinfo=UTC)
#: What a manager waits for at most: a year's report within 2 s, a month's within 0.5 s (warm).
BUDGET_S = {"year": 2.0, "month": 0.5}
INDEXES = {
    "ix_incidents_opened_at": "incidents (opened_at)",
    "ix_incidents_site_opened": "incidents (site, opened_at)",
}
#: Audit entries per incident: opened, acknowledged, resolved (escalation steps left out).
AUDIT_PER_INCIDENT = 3


def _incidents(rng: np.random.Generator) -> list[dict[str, Any]]:
    residents = len(SITES) * RESIDENTS_PER_SITE
    n = int(residents * ALARMS_PER_RESIDENT_DAY * DAYS)
    start = END - timedelta(days=DAYS)
    offsets = np.sort(rng.uniform(0, DAYS * 86400, n))
    who = rng.integers(0, residents, n)
    rules = rng.choice(["sos", "fall", "door_night", "inactivity"], n, p=[0.7, 0.15, 0.1, 0.05])
    ack = rng.lognormal(np.log(35), 0.8, n)
    unanswered = rng.random(n) < 0.02
    work = rng.lognormal(np.log(300), 0.7, n)
    outcomes = rng.choice(
        ["assisted_on_site", "false_alarm", "cancelled_by_resident", "technical_fault", "other"],
        n,
        p=[0.7, 0.12, 0.08, 0.05, 0.05],
    )
    operators = rng.integers(0, 40, n)
    rows = []
    for i in range(n):
        site = SITES[who[i] // RESIDENTS_PER_SITE]
        opened = start + timedelta(seconds=float(offsets[i]))
        answered = not unanswered[i]
        acked = opened + timedelta(seconds=float(ack[i])) if answered else None
        actor = f"user:op-{operators[i]:02d}" if operators[i] < 30 else f"responder:r{operators[i]} via sms"
        rows.append(
            {
                "key": f"{rules[i]}:{site}:{who[i]}:{i}",
                "rule": str(rules[i]),
                "severity": "critical",
                "status": "resolved" if answered else "open",
                "site": site,
                "room": f"{who[i] % RESIDENTS_PER_SITE:03d}",
                "resident": f"resident-{who[i]:04d}",
                "device_id": f"pendant-{who[i]:04d}",
                "opened_at": opened,
                "last_triggered_at": opened,
                "trigger_count": 1,
                "acknowledged_at": acked,
                "acknowledged_by": actor if answered else None,
                "resolved_at": acked + timedelta(seconds=float(work[i])) if acked else None,
                "resolved_by": actor if answered else None,
                "outcome": str(outcomes[i]) if answered else None,
                "note": None,
                "evidence": {},
            }
        )
    return rows


def _audit_entries(incidents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # The chain's hashes are not what these queries read: placeholders keep the insert fast.
    filler = {"prev_hash": "0" * 64, "hash": "0" * 64}
    entries = []
    for number, row in enumerate(incidents, start=1):
        steps = [("incident.opened", row["opened_at"], f"device:{row['device_id']}", {"rule": row["rule"]})]
        if row["acknowledged_at"] is not None:
            steps.append(("incident.acknowledged", row["acknowledged_at"], row["acknowledged_by"], {}))
            details = {"outcome": row["outcome"], "note": "checked"}
            steps.append(("incident.resolved", row["resolved_at"], row["resolved_by"], details))
        for action, at, actor, details in steps:
            entries.append(
                {
                    "at": at,
                    "actor": actor,
                    "action": action,
                    "incident_id": number,
                    "details": details,
                    **filler,
                }
            )
    return entries


def build(path: Path) -> tuple[int, int, float]:
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    rows = _incidents(np.random.default_rng(20261201))
    began = time.perf_counter()
    with engine.begin() as connection:
        for chunk in range(0, len(rows), 20_000):
            connection.execute(insert(Incident), rows[chunk : chunk + 20_000])
        entries = _audit_entries(rows)
        for chunk in range(0, len(entries), 50_000):
            connection.execute(insert(AuditEntry), entries[chunk : chunk + 50_000])
    seconds = time.perf_counter() - began
    engine.dispose()
    return len(rows), len(entries), seconds


def set_indexes(path: Path, present: bool) -> None:
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        for name, columns in INDEXES.items():
            statement = (
                f"CREATE INDEX IF NOT EXISTS {name} ON {columns}"
                if present
                else f"DROP INDEX IF EXISTS {name}"
            )
            connection.execute(text(statement))
        connection.execute(text("ANALYZE"))
    engine.dispose()


def queries(engine: Engine, days: int) -> dict[str, Callable[[], object]]:
    period = ReportFilter(END - timedelta(days=days), END)
    one_site = ReportFilter(period.start, period.end, frozenset({"site-03"}))
    settings = ReportsConfig()

    def report(filters: ReportFilter, **kw: Any) -> Callable[[], object]:
        def run() -> object:
            with engine.connect() as connection:
                return response_times(connection, filters, settings, ZONES, **kw)

        return run

    def wrong(by: Any) -> Callable[[], object]:
        def run() -> object:
            with engine.connect() as connection:
                return false_alarms(connection, period, by)

        return run

    def history(**kw: Any) -> Callable[[], object]:
        def run() -> object:
            with Session(engine) as session:
                return incident_history(session, IncidentFilter(period.start, period.end, **kw), 0, 100)

        return run

    def audit(**kw: Any) -> Callable[[], object]:
        def run() -> object:
            with Session(engine) as session:
                return audit_history(session, AuditFilter(period.start, period.end, **kw), 0, 100)

        return run

    return {
        "response times per site": report(period, group="site"),
        "per shift, by day": report(period, group="shift", bucket="day"),
        "per operator, by month": report(period, group="operator", bucket="month"),
        "one site (scoped), by day": report(one_site, group="rule", bucket="day"),
        "false alarms per device": wrong("device"),
        "false alarms per type": wrong("rule"),
        "history: first page + total": history(),
        "history: one site, false alarms": history(sites=frozenset({"site-03"}), outcome="false_alarm"),
        "audit: first page + total": audit(),
        "audit: one operator": audit(actor="user:op-07"),
        "audit: text search": audit(text="false_alarm"),
        "audit: scoped to one site": audit(sites=frozenset({"site-03"})),
    }


def timed(fn: Callable[[], object]) -> float:
    began = time.perf_counter()
    fn()
    return round((time.perf_counter() - began) * 1000, 1)


def measure(path: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for days, period in ((30, "month"), (DAYS, "year")):
        for name in queries(make_engine(f"sqlite:///{path}"), days):
            cold_engine = make_engine(f"sqlite:///{path}")
            cold = timed(queries(cold_engine, days)[name])
            warm = statistics.median(timed(queries(cold_engine, days)[name]) for _ in range(5))
            cold_engine.dispose()
            figures.setdefault(name, {})[period] = {"cold_ms": cold, "warm_ms": warm}
    return figures


def _table(results: dict[str, Any]) -> str:
    begin, end = "<!-- kpi-queries:begin -->", "<!-- kpi-queries:end -->"
    machine = results["machine"]
    lines = [
        begin,
        f"Measured {results['when']} on {machine['cpus']} cores, Python {machine['python']}: "
        f"{results['incidents']:,} incidents and {results['audit_entries']:,} audit entries "
        f"(bulk insert {results['insert_s']} s), "
        f"database {results['database_mb']} MB.",
        "",
        "| query | month cold ms | month warm ms | year cold ms | year warm ms "
        "| year warm ms without the indexes |",
        "|---|---|---|---|---|---|",
    ]
    with_ix, without = results["with_indexes"], results["without_indexes"]
    for name, r in with_ix.items():
        lines.append(
            f"| {name} | {r['month']['cold_ms']} | {r['month']['warm_ms']} | {r['year']['cold_ms']} "
            f"| {r['year']['warm_ms']} | {without[name]['year']['warm_ms']} |"
        )
    verdict = results["budget"]
    lines += [
        "",
        f"Budget (warm, with the indexes): a year's query within {BUDGET_S['year'] * 1000:.0f} ms, a "
        f"month's within {BUDGET_S['month'] * 1000:.0f} ms: slowest year {verdict['slowest_year_ms']} ms, "
        f"slowest month {verdict['slowest_month_ms']} ms — **{'met' if verdict['met'] else 'NOT met'}**.",
        end,
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--no-write", action="store_true", help="print the figures only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "careline.db"
        count, entries, insert_s = build(path)
        set_indexes(path, present=False)
        without = measure(path)
        set_indexes(path, present=True)
        with_ix = measure(path)
        size_mb = round(path.stat().st_size / 1e6, 1)
    slowest_year = max(r["year"]["warm_ms"] for r in with_ix.values())
    slowest_month = max(r["month"]["warm_ms"] for r in with_ix.values())
    results = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "incidents": count,
        "audit_entries": entries,
        "insert_s": round(insert_s, 1),
        "database_mb": size_mb,
        "with_indexes": with_ix,
        "without_indexes": without,
        "budget": {
            "year_ms": BUDGET_S["year"] * 1000,
            "month_ms": BUDGET_S["month"] * 1000,
            "slowest_year_ms": slowest_year,
            "slowest_month_ms": slowest_month,
            "met": slowest_year <= BUDGET_S["year"] * 1000 and slowest_month <= BUDGET_S["month"] * 1000,
        },
    }
    table = _table(results)
    print(table)
    if not args.no_write:
        (ROOT / "benchmarks" / "results" / "kpi_queries.json").write_text(
            json.dumps(results, indent=2) + "\n"
        )
        replace_section(
            ROOT / "docs" / "benchmarks.md", "<!-- kpi-queries:begin -->", "<!-- kpi-queries:end -->", table
        )


if __name__ == "__main__":
    main()
