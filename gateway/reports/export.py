"""The reports' tables as flat rows: the JSON the pages read and the CSV managers download are the
same rows, so a spreadsheet shows exactly the figures on the screen."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from gateway.reports.false_alarms import FalseAlarmRow
from gateway.reports.response_times import ResponseKpi, ResponseRow

#: Cells a spreadsheet would run as a formula (OWASP: prefix them with an apostrophe).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

RESPONSE_COLUMNS = (
    "group",
    "bucket",
    "incidents",
    "acknowledged",
    "resolved",
    "ack_median_s",
    "ack_p90_s",
    "ack_mean_s",
    "resolve_median_s",
    "resolve_p90_s",
    "resolve_mean_s",
    "within_60s",
    "share_60s",
    "target_60s",
    "met_60s",
    "within_180s",
    "share_180s",
    "target_180s",
    "met_180s",
)
FALSE_ALARM_COLUMNS = (
    "key",
    "site",
    "incidents",
    "false_alarms",
    "false_alarm_rate",
    "cancelled_by_resident",
    "cancelled_rate",
)


def kpi_cells(kpi: ResponseKpi) -> dict[str, Any]:
    cells: dict[str, Any] = {
        "incidents": kpi.incidents,
        "acknowledged": kpi.acknowledged,
        "resolved": kpi.resolved,
        "ack_median_s": kpi.acknowledge.median_s,
        "ack_p90_s": kpi.acknowledge.p90_s,
        "ack_mean_s": kpi.acknowledge.mean_s,
        "resolve_median_s": kpi.resolve.median_s,
        "resolve_p90_s": kpi.resolve.p90_s,
        "resolve_mean_s": kpi.resolve.mean_s,
    }
    for target in kpi.targets:
        suffix = f"{target.within_s}s"
        cells[f"within_{suffix}"] = target.count
        cells[f"share_{suffix}"] = None if target.share is None else round(target.share, 6)
        cells[f"target_{suffix}"] = target.target
        cells[f"met_{suffix}"] = target.met
    return cells


def response_row(row: ResponseRow) -> dict[str, Any]:
    return {"group": row.group, "bucket": row.bucket, **kpi_cells(row.kpi)}


def false_alarm_row(row: FalseAlarmRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "site": row.site,
        "incidents": row.incidents,
        "false_alarms": row.false_alarms,
        "false_alarm_rate": round(row.false_alarm_rate, 6),
        "cancelled_by_resident": row.cancelled_by_resident,
        "cancelled_rate": round(row.cancelled_rate, 6),
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if isinstance(value, str) and text.startswith(_FORMULA_START) else text


def to_csv(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """CSV with a header row; empty cells for missing figures; text cells formula-safe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return out.getvalue()
