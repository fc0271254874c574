"""What each stage of the telemetry process costs per message, in one process, without MQTT or HTTP.

The Zigbee2MQTT workload of `make bench-peers` (1,000 homes, motion and climate sensors: 3.5 readings a
message) decoded, put through device health and the wellbeing rules, checked and serialized to line
protocol, each stage timed on its own (best of `--repeats` passes over `--messages` messages, CPU time).
Each fast path is timed beside the way it replaced, so the gain is measured in one run:

* decode with orjson (`lenient_json.loads_payload`) and with the lenient `json` hooks alone;
* the rule engine dispatching by kind, and asking every rule about every event;
* line protocol from `LineEncoder`, and from influxdb-client's `Point` per point (`to_line`).

    .venv/bin/python benchmarks/telemetry_stages.py [--messages 20000] [--repeats 5]

Prints the table, writes benchmarks/results/telemetry_stages.json and its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from support import replace_section, zigbee2mqtt_homes  # noqa: E402

from devices import lenient_json  # noqa: E402
from devices.decode import decode  # noqa: E402
from devices.model import DeviceEvent, Lane, RawMessage  # noqa: E402
from gateway.config import CarelineConfig  # noqa: E402
from gateway.directory import active_devices, device_registry, rule_context  # noqa: E402
from gateway.telemetry.points import LineEncoder, extra_problems, to_line, value_problem  # noqa: E402
from gateway.telemetry_lane import DeviceHealth  # noqa: E402
from rules import Rule, RuleEngine  # noqa: E402
from rules.wellbeing import wellbeing_rules  # noqa: E402

HOMES = 1000
RESULTS = ROOT / "benchmarks" / "results" / "telemetry_stages.json"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- telemetry-stages:begin -->", "<!-- telemetry-stages:end -->"


def directory() -> CarelineConfig:
    settings = {"broker": {"url": "mqtt://127.0.0.1:1"}, "storage": {"url": "sqlite:///unused.db"}}
    return CarelineConfig.model_validate(settings | zigbee2mqtt_homes(HOMES))


def messages(count: int) -> list[RawMessage]:
    """Motion and climate state messages as Zigbee2MQTT publishes them, about 100 bytes each."""
    rng, now, out = random.Random(1), datetime.now(UTC), []
    for seq in range(count):
        home = rng.randrange(HOMES)
        if seq % 2:
            topic = f"zigbee2mqtt/motion-{home}"
            state: dict[str, Any] = {
                "occupancy": seq % 4 == 1,
                "battery": 87,
                "voltage": 2985,
                "linkquality": 120,
            }
        else:
            topic = f"zigbee2mqtt/climate-{home}"
            state = {"temperature": 21.5 + seq % 10 / 10, "humidity": 48.2, "battery": 91, "linkquality": 98}
        out.append(RawMessage(topic, json.dumps(state).encode(), now, Lane.TELEMETRY))
    return out


def best_us(work: Callable[[], object], messages: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best / messages * 1e6


def _every_rule(rules: Sequence[Rule], events: list[DeviceEvent], now: datetime) -> None:
    for event in events:
        for rule in rules:
            rule.on_event(event, now)


def measure(count: int, repeats: int) -> dict[str, Any]:
    config = directory()
    registry, context = device_registry(config), rule_context(config)
    raws = messages(count)
    decoded = [decode(raw, registry) for raw in raws]
    events = [event for batch in decoded for event in batch]
    now = datetime.now(UTC)

    def rules() -> list[Rule]:
        return wellbeing_rules(
            context, lambda site: context.site(site).wellbeing, now, devices=active_devices(config)
        )

    engine, reference, health, encoder = RuleEngine(rules()), rules(), DeviceHealth(), LineEncoder()
    payloads = [raw.payload for raw in raws]
    texts = [payload.decode() for payload in payloads]
    stages = {
        "JSON: orjson where exact (loads_payload)": lambda: [lenient_json.loads_payload(p) for p in payloads],
        "JSON: lenient json hooks (before)": lambda: [lenient_json.loads(t) for t in texts],
        "decode (Zigbee2MQTT profile, whole)": lambda: [decode(raw, registry) for raw in raws],
        "device health": lambda: [health(batch) for batch in decoded],
        "wellbeing rules, dispatched by kind": lambda: [engine.handle(event, now) for event in events],
        "wellbeing rules, every rule asked (before)": lambda: _every_rule(reference, events, now),
        "storable check (value and extras)": lambda: [
            (value_problem(event), event.extra and extra_problems(event)) for event in events
        ],
        "line protocol: LineEncoder": lambda: [encoder.line(event) for event in events],
        "line protocol: influxdb-client Point per point (before)": lambda: [
            to_line(event) for event in events
        ],
    }
    figures = {name: round(best_us(work, count, repeats), 2) for name, work in stages.items()}
    return {
        "messages": count,
        "events_per_message": round(len(events) / count, 2),
        "repeats": repeats,
        "us_per_message": figures,
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def table(result: dict[str, Any]) -> str:
    rows = "\n".join(f"| {name} | {us:.1f} |" for name, us in result["us_per_message"].items())
    return (
        f"{BEGIN}\n"
        f"Measured {result['when']} ({result['machine']}); {result['messages']:,} messages, "
        f"{result['events_per_message']} readings a message, "
        f"best of {result['repeats']} passes, CPU time.\n\n"
        "| stage | µs per message |\n|---|---|\n"
        f"{rows}\n{END}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    result = measure(args.messages, args.repeats)
    print(table(result))
    if not args.no_write:
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        replace_section(DOC, BEGIN, END, table(result))


if __name__ == "__main__":
    main()
