"""The directory applied live: "directory applied → first alarm accepted", and the gateway's memory.

Real Mosquitto, the real gateway (built with `bootstrap()`, serving HTTP, with its telemetry child
process), real SQLite (synchronous=FULL). The gateway runs in this process, because `apply_directory` is
a Python call; a paho publisher thread stands in for the pendants.

1. The gateway starts with an empty directory; its RSS (this process + the telemetry child) is read.
2. A directory of `--residents` residents with three devices each (a native pendant, a Zigbee2MQTT
   pendant — an exact alarm-lane subscription each — and a Zigbee2MQTT motion sensor) is applied live;
   how long that takes is timed, and the RSS read again once the child has taken it too.
3. `--adds` times, one more resident with one new pendant (alternately native and Zigbee2MQTT) is
   applied while the pendant presses SOS every 20 ms from the moment the apply starts; the latency is
   from the start of `apply_directory` to the commit of the incident its SOS opens. Presses before the
   pendant is bound are counted as unbound, as they would be for an installer. Meanwhile a ticker
   measures how long the event loop (the alarm lane's) was held up at most.

Prints the figures, writes benchmarks/results/directory_apply.json and the table in docs/benchmarks.md.

    .venv/bin/python benchmarks/directory_apply.py [--residents 1000] [--adds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import Publisher  # noqa: E402
from services import Mosquitto, free_port  # noqa: E402
from support import replace_section  # noqa: E402

from careline.bootstrap import Gateway, bootstrap  # noqa: E402
from gateway.config import CarelineConfig, DeviceConfig, ResidentConfig, SiteConfig  # noqa: E402
from gateway.directory.sections import DirectorySections  # noqa: E402
from gateway.incidents.views import IncidentView  # noqa: E402

SITES = 10
PRESS_EVERY_S = 0.02
TICK_S = 0.005


def _base_config(broker_url: str, db: Path) -> CarelineConfig:
    return CarelineConfig.model_validate(
        {
            "broker": {"url": broker_url, "client_id": f"bench-{uuid.uuid4().hex[:6]}"},
            "storage": {"url": f"sqlite:///{db}"},
            "http": {"host": "127.0.0.1", "port": free_port()},
            "escalation": {"enabled": False},
        }
    )


def _site(n: int, rooms: int) -> SiteConfig:
    return SiteConfig.model_validate(
        {"id": f"home-{n}", "name": f"Care home {n}", "rooms": [{"id": f"r{r}"} for r in range(rooms)]}
    )


def _resident(n: int) -> tuple[ResidentConfig, list[DeviceConfig]]:
    site, room, rid = f"home-{n % SITES}", f"r{n // SITES}", f"res-{n}"
    resident = ResidentConfig(id=rid, name=f"Resident {n}", site=site, room=room)
    devices = [
        DeviceConfig(id=f"pendant-{n}", type="sos_button", site=site, room=room, resident=rid),
        DeviceConfig(
            id=f"zpendant-{n}", type="sos_button", profile="zigbee2mqtt", site=site, room=room, resident=rid
        ),
        DeviceConfig(id=f"motion-{n}", type="motion_sensor", profile="zigbee2mqtt", site=site, room=room),
    ]
    return resident, devices


def _directory(residents: int, extra: int) -> DirectorySections:
    """`residents` residents with three devices each, and room for `extra` more residents."""
    rooms = (residents + extra) // SITES + 1
    people, devices = [], []
    for n in range(residents):
        resident, theirs = _resident(n)
        people.append(resident)
        devices += theirs
    return DirectorySections(
        sites=tuple(_site(n, rooms) for n in range(SITES)), residents=tuple(people), devices=tuple(devices)
    )


def _rss_mb(process: psutil.Process) -> dict[str, float]:
    children = process.children(recursive=True)
    own = process.memory_info().rss
    theirs = sum(child.memory_info().rss for child in children)
    return {
        "gateway_mb": round(own / 2**20, 1),
        "telemetry_child_mb": round(theirs / 2**20, 1),
        "total_mb": round((own + theirs) / 2**20, 1),
    }


def _summary(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values) * 1000
    return {
        "n": int(array.size),
        "p50_ms": round(float(np.percentile(array, 50)), 1),
        "max_ms": round(float(array.max()), 1),
    }


class _LoopLag:
    """The longest the event loop was late for a 5 ms sleep: how long an alarm could have waited."""

    def __init__(self) -> None:
        self.worst_s = 0.0

    async def run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(TICK_S)
            self.worst_s = max(self.worst_s, time.perf_counter() - before - TICK_S)


async def _wait_for_child(gateway: Gateway, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while gateway.telemetry.directory_version != gateway.directory_version:
        if time.monotonic() > deadline:
            raise SystemExit("the telemetry child did not take the directory")
        await asyncio.sleep(0.05)


async def _one_add(
    gateway: Gateway,
    device: Publisher,
    sections: DirectorySections,
    n: int,
    zigbee: bool,
    opened: dict[str, float],
) -> tuple[DirectorySections, float, float]:
    resident, theirs = _resident(n)
    pendant = theirs[1] if zigbee else theirs[0]
    sections = sections.model_copy(
        update={"residents": (*sections.residents, resident), "devices": (*sections.devices, pendant)}
    )

    def press() -> None:
        if zigbee:
            device.zigbee(f"zpendant-{n}", action="emergency")
        else:
            device.sos(pendant.site, pendant.id)

    async def keep_pressing() -> None:
        while pendant.id not in opened:
            press()
            await asyncio.sleep(PRESS_EVERY_S)

    started = time.perf_counter()
    presser = asyncio.create_task(keep_pressing())
    await gateway.apply_directory(sections)
    applied = time.perf_counter() - started
    async with asyncio.timeout(30):
        await presser
    return sections, opened[pendant.id] - started, applied


async def _run(residents: int, adds: int) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    process = psutil.Process(os.getpid())
    workdir = Path(tempfile.mkdtemp(prefix="careline-bench-"))
    with Mosquitto() as broker:
        gateway = bootstrap(_base_config(broker.url, workdir / "careline.db"))
        opened: dict[str, float] = {}

        def incidents_changed(views: Sequence[IncidentView]) -> None:
            for view in views:
                if view.device_id is not None:
                    opened.setdefault(view.device_id, time.perf_counter())

        gateway.service.subscribe(incidents_changed)
        stop = asyncio.Event()
        serving = asyncio.create_task(gateway.serve(stop))
        device: Publisher | None = None
        lag = _LoopLag()
        ticker = asyncio.create_task(lag.run())
        try:
            await asyncio.sleep(0.2)
            await gateway.wait_connected(limit_s=30)
            await asyncio.sleep(2)  # the first status from the child carries its memory settled
            empty = _rss_mb(process)
            sections = _directory(residents, adds)
            lag.worst_s = 0.0
            started = time.perf_counter()
            await gateway.apply_directory(sections)
            big_apply_s = time.perf_counter() - started
            big_lag_s = lag.worst_s
            await _wait_for_child(gateway)
            big_child_s = time.perf_counter() - started
            await asyncio.sleep(2)
            bound = _rss_mb(process)
            device = Publisher(broker.port)
            lag.worst_s = 0.0
            accepted: list[float] = []
            applied: list[float] = []
            kinds: list[str] = []
            for k in range(adds):
                zigbee = k % 2 == 1
                sections, first_alarm_s, apply_s = await _one_add(
                    gateway, device, sections, residents + k, zigbee, opened
                )
                accepted.append(first_alarm_s)
                applied.append(apply_s)
                kinds.append("zigbee2mqtt" if zigbee else "careline")
            await _wait_for_child(gateway)
            after = _rss_mb(process)
            subscribed = len(gateway.alarm_mqtt.topics)
            unbound = sum(
                sample.value
                for metric in gateway.metrics.unbound_messages.collect()
                for sample in metric.samples
                if sample.name.endswith("_total")
            )
        finally:
            if device is not None:
                device.close()
            ticker.cancel()
            stop.set()
            await serving
    native = [a for a, kind in zip(accepted, kinds, strict=True) if kind == "careline"]
    zigbee_only = [a for a, kind in zip(accepted, kinds, strict=True) if kind == "zigbee2mqtt"]
    return {
        "directory": {
            "sites": SITES,
            "residents": residents,
            "devices": residents * 3,
            "alarm_topics": subscribed,
        },
        "apply_whole_directory_s": round(big_apply_s, 2),
        "whole_directory_in_telemetry_child_s": round(big_child_s, 2),
        "event_loop_held_up_during_whole_apply_ms": round(big_lag_s * 1000, 1),
        "applied_to_first_alarm_accepted": _summary(accepted),
        "applied_to_first_alarm_accepted_native": _summary(native),
        "applied_to_first_alarm_accepted_zigbee2mqtt": _summary(zigbee_only),
        "apply_duration": _summary(applied),
        "event_loop_held_up_max_ms": round(lag.worst_s * 1000, 1),
        "presses_counted_unbound": int(unbound),
        "rss_empty_directory": empty,
        "rss_directory_bound": bound,
        "rss_after_adds": after,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _write(results: dict[str, Any]) -> None:
    out = ROOT / "benchmarks" / "results" / "directory_apply.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    doc = ROOT / "docs" / "benchmarks.md"
    begin, end = "<!-- directory-apply:begin -->", "<!-- directory-apply:end -->"
    d = results["directory"]
    rows = [
        f"| {label} | {s['n']} | {s['p50_ms']} | {s['max_ms']} |"
        for label, s in (
            ("applied → first alarm accepted, all", results["applied_to_first_alarm_accepted"]),
            ("… native pendant", results["applied_to_first_alarm_accepted_native"]),
            (
                "… Zigbee2MQTT pendant (new subscription)",
                results["applied_to_first_alarm_accepted_zigbee2mqtt"],
            ),
            ("`apply_directory` returns", results["apply_duration"]),
        )
    ]
    rss = [
        f"| {label} | {r['gateway_mb']} | {r['telemetry_child_mb']} | {r['total_mb']} |"
        for label, r in (
            ("empty directory", results["rss_empty_directory"]),
            (f"{d['residents']:,} residents, {d['devices']:,} devices bound", results["rss_directory_bound"]),
            ("after the adds", results["rss_after_adds"]),
        )
    ]
    table = "\n".join(
        [
            begin,
            f"Measured {results['when']} on {results['machine']['cpus']} cores, Python "
            f"{results['machine']['python']}; {d['sites']} sites, {d['residents']:,} residents, "
            f"{d['devices']:,} devices ({d['alarm_topics']:,} alarm-lane subscriptions).",
            "",
            "| one resident and pendant added to the bound directory | adds | p50 ms | max ms |",
            "|---|---|---|---|",
            *rows,
            "",
            f"Applying the whole directory to an empty gateway: {results['apply_whole_directory_s']} s "
            f"(the telemetry child had it after {results['whole_directory_in_telemetry_child_s']} s; the "
            f"event loop was held up {results['event_loop_held_up_during_whole_apply_ms']} ms at most). "
            f"Longest the event loop was held up during the adds: {results['event_loop_held_up_max_ms']} ms. "
            f"Presses before the pendant was bound, counted unbound: {results['presses_counted_unbound']}.",
            "",
            "| RSS | gateway MB | telemetry child MB | total MB |",
            "|---|---|---|---|",
            *rss,
            end,
        ]
    )
    replace_section(doc, begin, end, table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--residents", type=int, default=1000)
    parser.add_argument("--adds", type=int, default=20)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    results = asyncio.run(_run(args.residents, args.adds))
    print(json.dumps(results, indent=2))
    if not args.no_write:
        _write(results)


if __name__ == "__main__":
    main()
