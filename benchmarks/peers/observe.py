"""What the processes cost: CPU seconds (psutil `cpu_times`, user + system) and resident memory."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import psutil


def family(pid: int) -> list[int]:
    """A process and all its descendants (Careline's gateway and its telemetry child)."""
    try:
        root = psutil.Process(pid)
        return [pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.Error:
        return []


def cpu_seconds(pid: int) -> float | None:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


def rss_mb(pids: Iterable[int]) -> float:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            continue
    return round(total / 2**20, 1)


def command_line(pid: int) -> list[str]:
    try:
        return list(psutil.Process(pid).cmdline())
    except psutil.Error:
        return []


def process_name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return "?"


class CpuWindow:
    """CPU seconds of named processes between `start()` and `stop()`."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self.before: dict[str, float | None] = {}
        self.used: dict[str, float] = {}

    def start(self) -> None:
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.machine_before = _machine_busy_s()

    def stop(self) -> dict[str, float]:
        for name, pid in self.pids.items():
            after, before = cpu_seconds(pid), self.before.get(name)
            if after is not None and before is not None:
                self.used[name] = round(after - before, 3)
        # The machine is shared: what other work took over the window says how noisy the phase was.
        self.others_s = round(_machine_busy_s() - self.machine_before - sum(self.used.values()), 2)
        return self.used


def _machine_busy_s() -> float:
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + times.irq + times.softirq)


def percentiles(values: list[float]) -> dict[str, Any]:
    """p50 / p99 / max in ms, and how many there were."""
    if not values:
        return {"n": 0}
    array = np.asarray(values)
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(array, 50)), 2),
        "p99_ms": round(float(np.percentile(array, 99)), 2),
        "max_ms": round(float(array.max()), 2),
    }
