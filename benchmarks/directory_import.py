"""Directory imports at the size of a district: 1,000 residents and 3,000 devices.

Real SQLite (WAL, synchronous=FULL, as the gateway runs it), the real directory store, the real files:
a YAML of 20 sites, then CSVs (Chinese headers) of the residents (two contacts each, 200 key-safe codes)
and devices (a pendant, a door sensor and a fall radar each). For each step it times the parse, the
plan (load + whole-directory validation + diff, on a reader in the gateway) and the commit (the writes
and the audit entries in one transaction: the only part that holds the store's writer, during which an
alarm waits).

Run: `.venv/bin/python benchmarks/directory_import.py` (prints the figures, writes
benchmarks/results/directory_import.json and the table in docs/benchmarks.md; --no-write prints only).
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from cryptography.fernet import Fernet
from support import replace_section

from gateway.config import CarelineConfig, DeviceConfig
from gateway.directory import Directory
from gateway.directory.changes import KINDS
from gateway.directory.keysafe import KeySafeCipher
from gateway.directory.store import DirectoryStore
from gateway.directory.tables import export_csv, parse_csv
from gateway.directory.transfer import export_yaml, parse_yaml
from gateway.incidents.db import make_engine
from gateway.incidents.migrate import upgrade
from gateway.incidents.service import IncidentService
from gateway.incidents.store import IncidentStore

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
SITES, ROOMS = 20, 50


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    return result, round((time.perf_counter() - start) * 1000, 1)


def sites_yaml() -> str:
    lines = ["sites:"]
    for s in range(SITES):
        kind = "district" if s % 4 == 0 else "care_home"
        lines += [f"  - id: site-{s:02}", f"    name: Site {s:02}", f"    kind: {kind}"]
        lines.append("    rooms: [" + ", ".join(f"{{id: r{r:02}}}" for r in range(ROOMS)) + "]")
    return "\n".join(lines) + "\n"


def residents_csv(residents: int) -> bytes:
    rows = ["编号,姓名,站点,房间,出生年份,风险,钥匙箱密码,联系人1姓名,联系人1电话,联系人2姓名,联系人2电话"]
    for n in range(residents):
        site, room = n % SITES, (n // SITES) % ROOMS
        code = f"{1000 + n}" if n % 5 == 0 else ""
        rows.append(
            f"res-{n:04},老人{n:04},site-{site:02},r{room:02},{1930 + n % 30},跌倒风险;走失风险,{code},"
            f"家属{n},+86138{n:08},邻居{n},+86139{n:08}"
        )
    return ("\n".join(rows) + "\n").encode("utf-8")


def devices_csv(residents: int, moved: int = 0) -> bytes:
    rows = ["编号,类型,站点,房间,老人,型号"]
    for n in range(residents):
        site, room = n % SITES, (n // SITES) % ROOMS
        for kind, type_ in (("pendant", "sos_button"), ("door", "door_sensor"), ("radar", "fall_sensor")):
            model = "P2" if n < moved and kind == "pendant" else "P1"
            rows.append(f"{kind}-{n:04},{type_},site-{site:02},r{room:02},res-{n:04},{model}")
    return ("\n".join(rows) + "\n").encode("utf-8")


def run(residents: int) -> dict[str, Any]:
    os.environ["CARELINE_BENCH_DIRECTORY_KEY"] = Fernet.generate_key().decode()
    with tempfile.TemporaryDirectory() as workdir:
        url = f"sqlite:///{workdir}/careline.db"
        config = CarelineConfig.model_validate(
            {"storage": {"url": url, "directory_key_env": "CARELINE_BENCH_DIRECTORY_KEY"}}
        )
        engine = make_engine(url)
        upgrade(engine)
        incidents = IncidentStore(engine, Directory(config), lambda: datetime.now(UTC))
        store = DirectoryStore(
            IncidentService(incidents), config, KeySafeCipher.from_env("CARELINE_BENCH_DIRECTORY_KEY")
        )
        try:
            return _steps(store, residents)
        finally:
            engine.dispose()


def _step(store: DirectoryStore, name: str, parse: Callable[[], Any]) -> dict[str, Any]:
    parsed, parse_ms = timed(parse)
    plan, plan_ms = timed(lambda: store.plan(store.importing(parsed.incoming, None), "bench", source=name))
    _, commit_ms = timed(lambda: store.commit(plan))
    counts = {kind: {k: len(v) for k, v in plan.changes.of(kind).items()} for kind in KINDS}
    return {
        "parse_ms": parse_ms,
        "plan_ms": plan_ms,
        "commit_ms": commit_ms,
        "total_ms": round(parse_ms + plan_ms + commit_ms, 1),
        "changes": {k: v for k, v in counts.items() if any(v.values())},
    }


def _steps(store: DirectoryStore, residents: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    results["sites_yaml"] = _step(store, "sites.yaml", lambda: parse_yaml(sites_yaml(), "sites.yaml"))
    people = residents_csv(residents)
    results["residents_csv_new"] = _step(store, "residents.csv", lambda: parse_csv(people, "residents.csv"))
    devices = devices_csv(residents)
    results["devices_csv_new"] = _step(store, "devices.csv", lambda: parse_csv(devices, "devices.csv"))
    results["residents_csv_unchanged"] = _step(
        store, "residents.csv", lambda: parse_csv(people, "residents.csv")
    )
    changed = devices_csv(residents, moved=100)
    results["devices_csv_100_changed"] = _step(
        store, "devices.csv", lambda: parse_csv(changed, "devices.csv")
    )
    exported, export_ms = timed(
        lambda: export_yaml(store.export_rows(KINDS), exported_by="bench", at=datetime.now(UTC))
    )
    results["export_yaml"] = {"ms": export_ms, "bytes": len(exported.encode())}
    results["reimport_export_yaml"] = _step(store, "export.yaml", lambda: parse_yaml(exported, "export.yaml"))
    csv_out, csv_ms = timed(lambda: export_csv("devices", store.export_rows(["devices"])["devices"], "zh-CN"))
    results["export_devices_csv"] = {"ms": csv_ms, "bytes": len(csv_out)}
    edits = []
    for n in range(5):
        pendant = {"id": f"new-{n}", "type": "sos_button", "site": "site-00"}
        plan, plan_ms = timed(
            lambda pendant=pendant: store.plan(
                lambda d: d.model_copy(
                    update={"devices": (*d.devices, DeviceConfig.model_validate(pendant))}
                ),
                "bench",
            )
        )
        _, commit_ms = timed(lambda plan=plan: store.commit(plan))
        edits.append((plan_ms, commit_ms))
    results["single_edit_median"] = {
        "plan_ms": statistics.median(e[0] for e in edits),
        "commit_ms": statistics.median(e[1] for e in edits),
    }
    pages = [timed(lambda: store.page("devices", search="door-09", offset=0, limit=50))[1] for _ in range(20)]
    results["list_page_search_median_ms"] = statistics.median(pages)
    scoped = [
        timed(lambda: store.page("residents", scope=frozenset({"site-03"}), offset=20, limit=50))[1]
        for _ in range(20)
    ]
    results["list_page_one_site_median_ms"] = statistics.median(scoped)
    results["audit_chain_intact"] = store.incidents.verify_audit_chain() is None
    return results


def _row(name: str, r: dict[str, Any]) -> str:
    changes = "; ".join(
        f"{kind}: " + ", ".join(f"{n} {verb}" for verb, n in counts.items() if n)
        for kind, counts in r["changes"].items()
    )
    times = " | ".join(str(r[k]) for k in ("parse_ms", "plan_ms", "commit_ms", "total_ms"))
    return f"| {name.replace('_', ' ')} | {times} | {changes or 'none'} |"


def _write(results: dict[str, Any]) -> None:
    out = ROOT / "benchmarks" / "results" / "directory_import.json"
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    doc = ROOT / "docs" / "benchmarks.md"
    begin, end = "<!-- directory-import:begin -->", "<!-- directory-import:end -->"
    rows = [
        _row(name, r) for name, r in results["figures"].items() if isinstance(r, dict) and "parse_ms" in r
    ]
    f, machine = results["figures"], results["machine"]
    table = "\n".join(
        [
            begin,
            f"Measured {results['when']} on {machine['cpus']} cores, Python {machine['python']}.",
            "",
            "| step | parse ms | plan ms | commit ms (writer held) | total ms | changes |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            f"Export of the whole directory as YAML: {f['export_yaml']['ms']} ms "
            f"({f['export_yaml']['bytes']:,} bytes); devices as Chinese CSV: "
            f"{f['export_devices_csv']['ms']} ms. "
            f"One device added at this size: plan {f['single_edit_median']['plan_ms']} ms, commit "
            f"{f['single_edit_median']['commit_ms']} ms (median of 5). A list page searched across 3,000 "
            f"devices: {f['list_page_search_median_ms']} ms; a page of one site's residents: "
            f"{f['list_page_one_site_median_ms']} ms (medians of 20). Audit chain intact afterwards: "
            f"{f['audit_chain_intact']}.",
            end,
        ]
    )
    replace_section(doc, begin, end, table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--residents", type=int, default=1000, help="three devices each")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    results = {
        "figures": run(args.residents),
        "residents": args.residents,
        "devices": args.residents * 3,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(json.dumps(results, indent=2, ensure_ascii=False))
    if not args.no_write:
        _write(results)


if __name__ == "__main__":
    main()
