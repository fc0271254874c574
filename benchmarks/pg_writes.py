"""What the incident store's writes cost a real PostgreSQL 15: an alarm's lifecycle, one transaction each.

Starts PostgreSQL 15 (`initdb` into a temporary directory as the `postgres` user, a free port, fsync and
synchronous_commit on, as in production), creates Careline's own tables (`gateway.incidents.schema`), and
runs, from `--clients` writer connections at once, each alarm's lifecycle as the store writes it:

  open      the audit chain's tail read under a row lock, the incident, its first alarm event, its
            escalation row and two audit rows (opened, escalation started);
  step      an escalation step: the due row claimed (FOR UPDATE SKIP LOCKED), two notifications, an audit row;
  ack       the incident and its escalation updated, an audit row;
  resolve   the incident updated, an audit row.

Each run is made twice: with the audit chain's lock (every transaction that appends to the audit trail
first takes the advisory lock gateway/incidents/audit.py takes on PostgreSQL and reads the chain's tail,
as a hash chain shared by several gateways must: those transactions commit one after another), and
without it, to show what the lock costs. Also runs pgbench's TPC-B
for scale, and reports the server's CPU per lifecycle (psutil over the postmaster and its backends).

    .venv/bin/python benchmarks/pg_writes.py [--seconds 15] [--clients 1,2,4]
Writes benchmarks/results/pg_writes.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
from sqlalchemy import create_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from common.net import free_port  # noqa: E402
from gateway.incidents.audit import AUDIT_TAIL_LOCK, GENESIS  # noqa: E402
from gateway.incidents.schema import Base  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RESULTS = ROOT / "benchmarks" / "results" / "pg_writes.json"


@contextmanager
def postgres() -> Iterator[tuple[int, int]]:
    """A PostgreSQL 15 server of its own (port, postmaster pid), run as the `postgres` user, removed after."""
    workdir = Path(tempfile.mkdtemp(prefix="careline-pg-"))
    data = workdir / "data"
    shutil.chown(workdir, "postgres", "postgres")
    port = free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(
        [
            *as_postgres,
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    log = workdir / "postgres.log"
    subprocess.run(
        [
            *as_postgres,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-o",
            f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c shared_buffers=256MB",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        yield port, pid
    finally:
        subprocess.run(
            [*as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
        )
        shutil.rmtree(workdir, ignore_errors=True)


def _server_cpu_s(pid: int) -> float:
    total = 0.0
    try:
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            times = process.cpu_times()
            total += times.user + times.system
    except psutil.Error:
        pass
    return total


def _digest(prev: str, action: str, incident_id: int) -> str:
    return hashlib.sha256(f"{prev}|{action}|{incident_id}".encode()).hexdigest()


class Writer:
    """One gateway's writer connection running alarm lifecycles."""

    def __init__(self, dsn: str, chain: bool) -> None:
        self.conn = psycopg.connect(dsn, autocommit=False)
        self.chain = chain
        self.lifecycles = 0
        self.transactions = 0
        self.tail: str | None = None

    def _audit(self, cur: psycopg.Cursor[Any], action: str, incident_id: int, now: datetime) -> None:
        if self.chain and self.tail is None:
            # As gateway/incidents/audit.py on PostgreSQL: the chain's tail read under one advisory lock,
            # held until the commit, once per transaction.
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_TAIL_LOCK,))
            cur.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
            row = cur.fetchone()
            self.tail = row[0] if row else GENESIS
        prev = self.tail or GENESIS
        digest = _digest(prev, action, incident_id)
        cur.execute(
            "INSERT INTO audit_log (at, actor, action, incident_id, details, prev_hash, hash)"
            " VALUES (%s, 'gateway', %s, %s, %s, %s, %s)",
            (now, action, incident_id, json.dumps({"device": "pendant"}), prev, digest),
        )
        self.tail = digest if self.chain else None

    def commit(self) -> None:
        self.conn.commit()
        self.tail = None

    def lifecycle(self) -> None:
        now = datetime.now(UTC)
        key = f"sos:{uuid.uuid4().hex}"
        with self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO incidents (key, rule, severity, status, site, room, resident, device_id,"
                " opened_at, last_triggered_at, trigger_count, evidence)"
                " VALUES (%s, 'sos', 'critical', 'open', 'district-1', 'home-1', 'r1', 'pendant-1',"
                " %s, %s, 1, '{}') RETURNING id",
                (key, now, now),
            )
            row = cur.fetchone()
            assert row is not None
            incident_id = int(row[0])
            cur.execute(
                "INSERT INTO alarm_events (incident_id, message_key, kind, device_id, value, event_ts,"
                " received_at, recorded_at, effect) VALUES (%s, %s, 'sos', 'pendant-1', NULL, %s, %s, %s,"
                " 'opened')",
                (incident_id, uuid.uuid4().hex, now, now, now),
            )
            cur.execute(
                "INSERT INTO escalations (incident_id, policy_id, next_tier, round, next_step_at, state,"
                " updated_at) VALUES (%s, 'default', 0, 1, %s, 'active', %s)",
                (incident_id, now, now),
            )
            self._audit(cur, "incident.opened", incident_id, now)
            self._audit(cur, "escalation.started", incident_id, now)
        self.commit()
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT incident_id FROM escalations WHERE incident_id = %s AND state = 'active'"
                " FOR UPDATE SKIP LOCKED",
                (incident_id,),
            )
            for responder in ("carer-1", "family-1"):
                cur.execute(
                    "INSERT INTO notifications (incident_id, tier, round, responder_id, channel, address,"
                    " status, attempts, ack_token, created_at, updated_at)"
                    " VALUES (%s, 0, 1, %s, 'sms', '+8613800000000', 'sent', 1, %s, %s, %s)",
                    (incident_id, responder, uuid.uuid4().hex, now, now),
                )
            cur.execute(
                "UPDATE escalations SET next_tier = 1, next_step_at = %s, updated_at = %s"
                " WHERE incident_id = %s",
                (now, now, incident_id),
            )
            self._audit(cur, "escalation.notified", incident_id, now)
        self.commit()
        with self.conn.cursor() as cur:
            cur.execute(
                "UPDATE incidents SET status = 'acknowledged', acknowledged_at = %s, acknowledged_by ="
                " 'operator-1', taken_by = 'operator-1', taken_at = %s WHERE id = %s",
                (now, now, incident_id),
            )
            cur.execute(
                "UPDATE escalations SET state = 'stopped', stop_reason = 'acknowledged', updated_at = %s"
                " WHERE incident_id = %s",
                (now, incident_id),
            )
            self._audit(cur, "incident.acknowledged", incident_id, now)
        self.commit()
        with self.conn.cursor() as cur:
            cur.execute(
                "UPDATE incidents SET status = 'resolved', resolved_at = %s, resolved_by = 'operator-1',"
                " outcome = 'assisted' WHERE id = %s",
                (now, incident_id),
            )
            self._audit(cur, "incident.resolved", incident_id, now)
        self.commit()
        self.lifecycles += 1
        self.transactions += 4


def _schema(port: int) -> str:
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres")
    Base.metadata.create_all(engine)
    engine.dispose()
    return dsn


def run_lifecycles(dsn: str, pid: int, clients: int, seconds: float, chain: bool) -> dict[str, Any]:
    writers = [Writer(dsn, chain) for _ in range(clients)]
    stop = threading.Event()

    def work(writer: Writer) -> None:
        while not stop.is_set():
            writer.lifecycle()

    threads = [threading.Thread(target=work, args=(w,)) for w in writers]
    cpu0, t0 = _server_cpu_s(pid), time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - t0
    cpu = _server_cpu_s(pid) - cpu0
    lifecycles = sum(w.lifecycles for w in writers)
    transactions = sum(w.transactions for w in writers)
    for writer in writers:
        writer.conn.close()
    return {
        "clients": clients,
        "chain": chain,
        "seconds": round(elapsed, 2),
        "lifecycles_per_s": round(lifecycles / elapsed, 1),
        "transactions_per_s": round(transactions / elapsed, 1),
        "server_cpu_ms_per_lifecycle": round(cpu / lifecycles * 1000, 3) if lifecycles else None,
        "server_cpu_us_per_transaction": round(cpu / transactions * 1e6, 1) if transactions else None,
        "server_cpu_share_of_a_core": round(cpu / elapsed, 3),
    }


def pgbench(port: int, seconds: float, clients: int) -> dict[str, Any]:
    base = [str(PG_BIN / "pgbench"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
    subprocess.run([*base, "-i", "-s", "10", "-q", "postgres"], check=True, capture_output=True)
    out = subprocess.run(
        [*base, "-c", str(clients), "-j", str(clients), "-T", str(int(seconds)), "postgres"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    tps = next(line for line in out.splitlines() if line.startswith("tps"))
    latency = next(line for line in out.splitlines() if line.startswith("latency average"))
    return {"clients": clients, "tps_line": tps.strip(), "latency_line": latency.strip()}


def pg_test_fsync(seconds: int = 2) -> str:
    out = subprocess.run(
        [
            str(PG_BIN / "pg_test_fsync"),
            "-s",
            str(seconds),
            "-f",
            str(Path(tempfile.gettempdir()) / "pgfsync"),
        ],
        check=False,
        capture_output=True,
        text=True,
    ).stdout
    lines = [line.strip() for line in out.splitlines() if "fdatasync" in line and "ops/sec" in line]
    return lines[0] if lines else out.strip()[-300:]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", default="1,2,4")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "postgres": subprocess.run(
            [str(PG_BIN / "postgres"), "--version"], capture_output=True, text=True, check=True
        ).stdout.strip(),
        "fdatasync": pg_test_fsync(),
        "lifecycles": [],
    }
    with postgres() as (port, pid):
        dsn = _schema(port)
        for clients in (int(c) for c in args.clients.split(",")):
            for chain in (True, False):
                row = run_lifecycles(dsn, pid, clients, args.seconds, chain)
                print(json.dumps(row))
                results["lifecycles"].append(row)
        results["pgbench_tpcb"] = pgbench(port, args.seconds, 2)
        print(json.dumps(results["pgbench_tpcb"]))
    if not args.no_write:
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
