"""A city on paper: what one core, one machine and 100,000 homes need, from measured inputs.

Reads benchmarks/city_inputs.yaml (every figure with its source) and, where they exist, the measured
results of benchmarks/city_load.py (results/city_load-1.json, city_load-2.json, city_idle-*.json) and
benchmarks/pg_writes.py (results/pg_writes.json); prints the tables and writes them into docs/scaling.md
between `<!-- city-model:begin -->` and `<!-- city-model:end -->`, and the figures into
benchmarks/results/city_model.json. Nothing here is measured: it is arithmetic on what was.

    .venv/bin/python benchmarks/city_model.py [--homes 100000] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks")]

from support import replace_section  # noqa: E402

INPUTS = ROOT / "benchmarks" / "city_inputs.yaml"
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "scaling.md"
BEGIN, END = "<!-- city-model:begin -->", "<!-- city-model:end -->"
LOAD_BEGIN, LOAD_END = "<!-- city-load:begin -->", "<!-- city-load:end -->"
DAY_S = 86_400.0


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    if not path.exists():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _v(inputs: dict[str, Any], *path: str) -> float:
    node: Any = inputs
    for key in path:
        node = node[key]
    return float(node["value"] if isinstance(node, dict) else node)


@dataclass(frozen=True)
class Home:
    """What one home sends, a day and at the busiest hour (per second)."""

    telemetry_per_day: float
    doors_per_day: float
    alarms_per_day: float
    devices: float
    peak: float

    def per_s(self, per_day: float) -> float:
        return per_day / DAY_S * self.peak


def home_of(inputs: dict[str, Any], alarms_key: str = "alarms_per_home_per_day") -> Home:
    mix = inputs["mix"]
    share = float(mix["bed_sensor_share"])
    per_device = mix["telemetry_per_device_per_day"]
    telemetry = sum(float(s["messages"]) * (share if d == "bed" else 1.0) for d, s in per_device.items())
    return Home(
        telemetry_per_day=telemetry,
        doors_per_day=_v(inputs, "mix", "door_events_per_home_per_day"),
        alarms_per_day=_v(inputs, alarms_key),
        devices=len(per_device) - 1 + share,
        peak=_v(inputs, "peak_hour_factor"),
    )


@dataclass(frozen=True)
class Costs:
    """CPU seconds per unit, and where each came from."""

    telemetry_s: float  # the telemetry process and the gateway, per telemetry message
    door_s: float  # per door event on the alarm lane
    alarm_s: float  # per SOS (the alarm lane's commit, the escalation's start)
    idle_s_per_device_s: float  # a bound device, doing nothing, per second (status, snapshots, ticks)
    snapshot_s_per_resident_s: float  # the rule-state snapshot, on the telemetry process's loop
    rss_mb_base: float
    rss_mb_per_device: float
    sources: dict[str, str]
    #: Of the idle cost, the telemetry process's share (the rest is the gateway process's).
    idle_telemetry_share: float = 0.5


def costs_of(inputs: dict[str, Any]) -> Costs:
    c = inputs["costs"]
    sources: dict[str, str] = {}
    telemetry = (
        c["telemetry_process_us_per_message"]["value"]
        + c["gateway_process_us_per_telemetry_message"]["value"]
    ) / 1e6
    sources["telemetry"] = (
        "docs/benchmarks.md (Zigbee2MQTT messages): telemetry process 163 µs + gateway 19 µs"
    )
    door = float(c["door_event_gateway_ms"]["value"] or 1.0) / 1e3
    sources["door"] = "benchmarks/city_inputs.yaml door_event_gateway_ms"
    alarm = c["sos_gateway_ms"]["value"] / 1e3
    sources["alarm"] = "docs/benchmarks.md What limits it, item 4: 5 ms"
    idle, idle_share, rss_base, rss_per_device = 0.0, 0.5, c["rss_mb_per_instance"]["value"], 10.0 * 2 / 3000
    sources["rss"] = "docs/benchmarks.md: 324 MB at 3,000 devices; ~10 MB per process per 3,000 devices"
    snapshot = inputs["costs_care_workflows"]["rule_state_snapshot_ms_per_500_residents"]["value"] / 1e3 / 500
    snapshot /= inputs["costs_care_workflows"]["rule_state_every_s"]["value"]
    sources["snapshot"] = (
        "docs/benchmarks.md Care workflows: rule-state snapshot 166 ms per 500 residents / 30 s"
    )
    run = _load("city_load-1.json")
    if c["door_event_gateway_ms"]["value"] is None and run is not None and "costs" in run:
        # Not in docs/benchmarks.md: measured by benchmarks/city_load.py (the doors phase).
        measured = run["costs"]["door_event_ms"]
        door = (measured["gateway_processes"] + measured["telemetry_processes"]) / 1e3
        sources["door"] = f"benchmarks/city_load.py doors phase, {run['when']}: gateway + telemetry process"
    idles = sorted(
        (r for p in RESULTS.glob("city_idle-*.json") if (r := json.loads(p.read_text()))),
        key=lambda r: int(r["devices"]),
    )
    if idles:
        big = idles[-1]
        phase = big["phases"]["idle"]
        busy = sum(v for k, v in phase["cpu_s"].items() if k.startswith("instance"))
        idle = busy / phase["wall_s"] / big["devices"]
        telemetry_busy = sum(v for k, v in phase["cpu_s"].items() if k.endswith("-telemetry"))
        idle_share = telemetry_busy / busy if busy else 0.5
        sources["idle"] = f"benchmarks/city_load.py --idle-only, {big['devices']:,} devices, {big['when']}"
        if len(idles) > 1 or run is not None:
            small_devices, small_rss = (
                (idles[0]["devices"], idles[0]["phases"]["idle"]["rss_mb"])
                if len(idles) > 1
                else (run["devices"], run["phases"]["idle"]["rss_mb"])  # type: ignore[index]
            )
            if big["devices"] > small_devices:
                rss_per_device = (phase["rss_mb"] - small_rss) / (big["devices"] - small_devices)
                rss_base = phase["rss_mb"] - rss_per_device * big["devices"]
                sources["rss"] = (
                    f"benchmarks/city_load.py: RSS at {small_devices:,} and {big['devices']:,} devices"
                )
    return Costs(telemetry, door, alarm, idle, snapshot, rss_base, rss_per_device, sources, idle_share)


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _n(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def model(inputs: dict[str, Any], homes: int) -> dict[str, Any]:
    home = home_of(inputs)
    stress = home_of(inputs, "alarms_per_home_per_day_stress")
    costs = costs_of(inputs)
    usable = _v(inputs, "machine", "usable_share")
    cores = _v(inputs, "machine", "cores")
    memory_gb = _v(inputs, "machine", "memory_gb")

    # One home's CPU at the busiest hour, in core-seconds a second, in the gateway (both processes).
    per_home = {
        "telemetry": home.per_s(home.telemetry_per_day) * costs.telemetry_s,
        "doors": home.per_s(home.doors_per_day) * costs.door_s,
        "alarms": home.per_s(home.alarms_per_day) * costs.alarm_s,
        "idle devices": home.devices * costs.idle_s_per_device_s,
        "rule-state snapshot": costs.snapshot_s_per_resident_s,
    }
    core_homes = usable / sum(per_home.values())
    # An instance is two interpreters (the gateway, the telemetry process): each at most one core. The
    # telemetry process carries the telemetry, its idle share and the snapshot; the gateway the alarm lane.
    idle_t = per_home["idle devices"] * costs.idle_telemetry_share
    telemetry_process = per_home["telemetry"] + per_home["rule-state snapshot"] + idle_t
    gateway_process = per_home["doors"] + per_home["alarms"] + per_home["idle devices"] - idle_t
    instance_homes = usable / max(telemetry_process, gateway_process)
    limit = "telemetry process" if telemetry_process >= gateway_process else "gateway process"
    rss_instance = costs.rss_mb_base + costs.rss_mb_per_device * home.devices * instance_homes
    instances_per_machine = max(
        1, min(math.floor(cores / 2), math.floor(memory_gb * 1024 * usable / rss_instance))
    )
    machine_homes = instance_homes * instances_per_machine

    city = {
        "telemetry_msg_s": homes * home.per_s(home.telemetry_per_day),
        "door_events_s": homes * home.per_s(home.doors_per_day),
        "alarms_s": homes * home.per_s(home.alarms_per_day),
        "alarms_s_stress": homes * stress.per_s(stress.alarms_per_day),
        "devices": homes * home.devices,
    }
    # One more than the load needs, so that losing one instance loses no capacity.
    instances = max(2, math.ceil(homes / instance_homes) + 1)
    # Today on main every instance's telemetry process takes ALL telemetry (city_load-2.json): the
    # telemetry, its snapshot and its devices do not divide between instances.
    two = _load("city_load-2.json")
    duplicated = bool(two and two["costs"]["telemetry_us_per_message"]["received_per_sent"] > 1.5)
    telemetry_core_city = homes * telemetry_process
    rss_city_instance = costs.rss_mb_base + costs.rss_mb_per_device * city["devices"] / (
        1 if duplicated else instances
    )

    emqx = inputs["emqx"]
    fan_out = 1 + (instances if duplicated else 1)
    emqx_rate = (city["telemetry_msg_s"]) * fan_out + (city["door_events_s"] + city["alarms_s"]) * 2
    emqx_nodes_rate = emqx_rate / emqx["node_msgs_per_s_in_plus_out"]["value"]
    connections = homes * emqx["connections_per_home"]["value"]
    emqx_nodes = max(
        2, math.ceil(emqx_nodes_rate), math.ceil(connections / emqx["connections_per_node"]["value"])
    )

    pg = _load("pg_writes.json")
    lifecycles_capacity = _v(inputs, "costs", "postgres_lifecycles_per_s_chained")
    pg_source = "benchmarks/city_inputs.yaml"
    if pg is not None:
        chained = [r for r in pg["lifecycles"] if r["chain"] and r["clients"] <= 2]
        lifecycles_capacity = min(r["lifecycles_per_s"] for r in chained)
        pg_source = f"benchmarks/pg_writes.py, {pg['when']}"
    heartbeat_txn = instances / 2.0  # cluster.heartbeat_s = 2
    snapshot_mb_s = (
        inputs["costs_care_workflows"]["rule_state_snapshot_mb_per_500_residents"]["value"] * homes / 500
    )
    snapshot_mb_s /= inputs["costs_care_workflows"]["rule_state_every_s"]["value"]
    pg_rows = {
        "alarm transactions/s (4 per alarm)": city["alarms_s"] * 4,
        "…at 0.5 alarms a home a day": city["alarms_s_stress"] * 4,
        "audit rows/s (5 per alarm)": city["alarms_s"] * 5,
        "instance heartbeats/s": heartbeat_txn,
        "door reports/s into door_states (batched every 0.25 s)": city["door_events_s"],
    }
    workflows = inputs["costs_care_workflows"]
    directory_plan_s = workflows["directory_plan_ms_per_3000_devices"]["value"] / 1e3 * city["devices"] / 3000
    directory_hold_s = workflows["directory_apply_hold_ms_per_1000_residents"]["value"] / 1e3 * homes / 1000
    snapshot_hold_s = workflows["rule_state_snapshot_ms_per_500_residents"]["value"] / 1e3 * homes / 500
    cluster_door_s = None
    if two is not None and "costs" in two:
        door = two["costs"]["door_event_ms"]
        cluster_door_s = (door["gateway_processes"] + door["telemetry_processes"]) / 1e3
    influx_points = city["telemetry_msg_s"] * (2 if duplicated else 1)
    influx_cores = influx_points * _v(inputs, "costs", "influxd_us_per_point") / 1e6

    return {
        "home": home.__dict__,
        "per_home_core_s": per_home,
        "costs": costs.__dict__,
        "one_core_homes": core_homes,
        "one_instance_homes": instance_homes,
        "one_instance_limit": limit,
        "instances_per_machine": instances_per_machine,
        "one_machine_homes": machine_homes,
        "city": city,
        "instances": instances,
        "gateway_machines": math.ceil(instances / instances_per_machine),
        "telemetry_duplicated_today": duplicated,
        "telemetry_process_cores_if_not_shared": telemetry_core_city,
        "rss_mb_per_instance_city": rss_city_instance,
        "emqx_msgs_s_in_plus_out": emqx_rate,
        "emqx_nodes": emqx_nodes,
        "emqx_connections": connections,
        "postgres": pg_rows,
        "postgres_lifecycles_capacity": lifecycles_capacity,
        "postgres_source": pg_source,
        "postgres_snapshot_mb_s": snapshot_mb_s,
        "cluster_door_cores": city["door_events_s"] * cluster_door_s if cluster_door_s else None,
        "cluster_door_ms": cluster_door_s * 1e3 if cluster_door_s else None,
        "directory_plan_s": directory_plan_s,
        "directory_hold_s": directory_hold_s,
        "snapshot_hold_s": snapshot_hold_s,
        "influx_points_s": influx_points,
        "influx_cores": influx_cores,
        "homes": homes,
    }


def tables(m: dict[str, Any]) -> str:
    home, city, costs = m["home"], m["city"], m["costs"]
    lines = [
        BEGIN,
        "Generated by `.venv/bin/python benchmarks/city_model.py` from `benchmarks/city_inputs.yaml` and the "
        "results files it names; do not edit by hand.",
        "",
        f"**One home** ({home['devices']:.1f} devices): {_n(home['telemetry_per_day'])} telemetry messages, "
        f"{_n(home['doors_per_day'])} door events and {home['alarms_per_day']:g} alarms a day; "
        "the busiest hour "
        f"carries {home['peak']:g}× the day's average.",
        "",
        "| what one home costs the gateway at the busiest hour | CPU µs a second | from |",
        "|---|---|---|",
    ]
    names = {
        "telemetry": "telemetry",
        "doors": "door",
        "alarms": "alarm",
        "idle devices": "idle",
        "rule-state snapshot": "snapshot",
    }
    for part, value in m["per_home_core_s"].items():
        lines.append(_row(part, _n(value * 1e6, 2), costs["sources"].get(names[part], "")))
    lines += [
        "",
        "| capacity | homes | devices | limited by |",
        "|---|---|---|---|",
        _row(
            "one core (70 % busy)",
            _n(m["one_core_homes"]),
            _n(m["one_core_homes"] * home["devices"]),
            "the sum above",
        ),
        _row(
            "one gateway instance (two interpreters, each ≤ one core)",
            _n(m["one_instance_homes"]),
            _n(m["one_instance_homes"] * home["devices"]),
            m["one_instance_limit"],
        ),
        _row(
            f"one machine ({m['instances_per_machine']} instances, telemetry divided between them)",
            _n(m["one_machine_homes"]),
            _n(m["one_machine_homes"] * home["devices"]),
            "cores (two per instance) and memory",
        ),
        "",
        f"**{_n(m['homes'])} homes** ({_n(city['devices'])} devices) at the busiest hour:",
        "",
        "| part | load | needs |",
        "|---|---|---|",
        _row("telemetry", f"{_n(city['telemetry_msg_s'])} msg/s", ""),
        _row("door events (alarm lane, no incident)", f"{_n(city['door_events_s'], 1)} /s", ""),
        _row("alarms", f"{city['alarms_s']:.2f} /s ({city['alarms_s_stress']:.2f} at 0.5 a home a day)", ""),
        _row(
            "gateway instances, telemetry divided between them (not built yet)",
            f"{_n(m['homes'])} homes ÷ {_n(m['one_instance_homes'])} an instance",
            f"{m['instances']} (one spare), on {m['gateway_machines']} machine(s)",
        ),
        _row(
            "gateway instances as on main today (every instance takes all telemetry)"
            if m["telemetry_duplicated_today"]
            else "gateway instances if every instance took all telemetry",
            f"{m['telemetry_process_cores_if_not_shared']:.2f} cores in EACH telemetry process",
            "**does not fit one interpreter, whatever the number of instances**"
            if m["telemetry_process_cores_if_not_shared"] > 1.0
            else "fits",
        ),
        _row("…RSS of each instance then", f"{_n(m['rss_mb_per_instance_city'])} MB", ""),
        *(
            [
                _row(
                    "door events in a cluster (each also written to the store: two instances, measured)",
                    f"{m['cluster_door_ms']:.1f} ms of gateway CPU each",
                    f"{m['cluster_door_cores']:.2f} cores across the instances, written in batches",
                )
            ]
            if m["cluster_door_cores"] is not None
            else []
        ),
        _row(
            "EMQX",
            f"{_n(m['emqx_msgs_s_in_plus_out'])} msg/s in + out, {_n(m['emqx_connections'])} connections",
            f"{m['emqx_nodes']} nodes (published per-node figures; at least 2)",
        ),
    ]
    for name, value in m["postgres"].items():
        lines.append(_row(f"PostgreSQL: {name}", f"{value:.2f}", ""))
    lines += [
        _row(
            "PostgreSQL: alarm lifecycles a second it took here (chained audit)",
            _n(m["postgres_lifecycles_capacity"]),
            m["postgres_source"],
        ),
        _row("PostgreSQL: rule-state snapshots", f"{m['postgres_snapshot_mb_s']:.1f} MB/s of JSON rows", ""),
        _row("InfluxDB", f"{_n(m['influx_points_s'])} points/s", f"{m['influx_cores']:.2f} cores"),
        _row(
            "one directory change (validate the whole directory, diff)",
            f"{m['directory_plan_s']:.0f} s on a reader thread",
            f"and the event loop held ~{m['directory_hold_s']:.1f} s applying it (alarms wait)",
        ),
        _row(
            "the rule-state snapshot, every 30 s",
            f"{m['snapshot_hold_s']:.0f} s on the telemetry process's event loop",
            "**longer than its period**" if m["snapshot_hold_s"] > 30 else "",
        ),
        END,
    ]
    return "\n".join(lines)


def _share(phase: dict[str, Any], suffix: str) -> float:
    return float(sum(v for k, v in phase["cpu_share_of_a_core"].items() if k.endswith(suffix)))


def load_tables(inputs: dict[str, Any]) -> str:
    """The city_load.py runs: each phase per instance count, then costs measured against the model's."""
    lines = [
        LOAD_BEGIN,
        "Generated by `benchmarks/city_model.py` from the results of `benchmarks/city_load.py`.",
        "",
    ]
    runs = [r for n in (1, 2) if (r := _load(f"city_load-{n}.json")) is not None]
    if not runs:
        return "\n".join([*lines, "Not run yet.", LOAD_END])
    for run in runs:
        store = "SQLite" if run["instances"] == 1 else "one PostgreSQL 15"
        lines += [
            f"**{run['instances']} instance(s)** on {store}, {run['homes']:,} homes / "
            f"{run['devices']:,} devices, "
            f"{run['seconds']:g} s a phase, measured {run['when']} at {run['commit'].split()[0]} "
            f"(load average {run['load_average_at_start'][0]:.1f} at the start, "
            f"{run['load_average_at_end'][0]:.1f} "
            f"at the end: the two cores were shared with other work). Command: "
            f"`.venv/bin/python benchmarks/city_load.py {' '.join(run['argv'])}`.",
            "",
            "| phase | telemetry msg/s offered | telemetry received / sent | door events | SOS "
            "| gateway % of a core | telemetry process % | Mosquitto % | influxd % | PostgreSQL % "
            "| SOS → WebSocket p50 / p99 / max ms "
            "| RSS MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, phase in run["phases"].items():
            received = phase["received"].get('careline_messages_received_total{lane="telemetry"}', 0.0)
            sos = phase.get("sos_ms")
            lines.append(
                _row(
                    name,
                    _n(phase["rates_offered"]["telemetry"]),
                    f"{received:,.0f} / {phase['telemetry_sent']:,}",
                    f"{phase['doors_sent']:,}",
                    f"{phase['sos_answered']} of {phase['sos_sent']}",
                    _n(100 * _share(phase, "-gateway"), 1),
                    _n(100 * _share(phase, "-telemetry"), 1),
                    _n(100 * _share(phase, "mosquitto"), 1),
                    _n(100 * _share(phase, "influxd"), 1),
                    _n(100 * _share(phase, "postgres"), 1)
                    if "postgres" in phase["cpu_share_of_a_core"]
                    else "–",
                    f"{sos['p50']} / {sos['p99']} / {sos['max']}" if sos else "–",
                    _n(phase["rss_mb"]),
                )
            )
        c = run["costs"]
        t, d, s = c["telemetry_us_per_message"], c["door_event_ms"], c["sos_ms"]
        city = c["city_gateway_cpu_s"]
        lines += [
            "",
            f"Measured costs (CPU over idle, per message sent): telemetry {t['telemetry_processes']} µs "
            f"in the telemetry process(es) + {t['gateway_processes']} µs in the gateway(s) (each message "
            f"received {t['received_per_sent']:g} times), Mosquitto {t['mosquitto']} µs, influxd "
            f"{t['influxd_per_point']} µs a point; a door event {d['gateway_processes']} ms in the gateway + "
            f"{d['telemetry_processes']} ms in the telemetry process; an SOS {s['gateway_processes']} ms + "
            f"{s['telemetry_processes']} ms"
            + (f", PostgreSQL {s['postgres']} ms" if run["instances"] > 1 else "")
            + f". The city phase: the gateways used {city['measured']} CPU-seconds, the single phases "
            f"predict {city['predicted_from_phases']}.",
            "",
        ]
    lines += comparison(inputs, runs[0])
    lines += ceiling()
    lines += postgres_table()
    return "\n".join([*lines, LOAD_END])


def postgres_table() -> list[str]:
    """benchmarks/pg_writes.py: an alarm's four transactions on a real PostgreSQL 15 (fsync on)."""
    pg = _load("pg_writes.json")
    if pg is None:
        return []
    lines = [
        f"**An alarm's writes on PostgreSQL** (`.venv/bin/python benchmarks/pg_writes.py`, {pg['when']}, "
        f"{pg['postgres']}, fsync and synchronous commits on; the disk: {pg['fdatasync'].split()[0]} "
        f"{' '.join(pg['fdatasync'].split()[1:])}; pgbench TPC-B with 2 clients: "
        f"{pg['pgbench_tpcb']['tps_line'].split('(')[0].strip()}):",
        "",
        "| writers | audit chain's lock | alarm lifecycles/s | transactions/s | server CPU ms a lifecycle |",
        "|---|---|---|---|---|",
    ]
    for r in pg["lifecycles"]:
        lines.append(
            _row(
                r["clients"],
                "yes" if r["chain"] else "no",
                _n(r["lifecycles_per_s"]),
                _n(r["transactions_per_s"]),
                r["server_cpu_ms_per_lifecycle"],
            )
        )
    return [*lines, ""]


def _settle(argv: list[str]) -> str:
    return argv[argv.index("--settle") + 1] if "--settle" in argv else "3"


def ceiling() -> list[str]:
    """Telemetry alone, above one telemetry process's rate (city_load.py --phases telemetry --tag ceiling)."""
    runs = [r for n in (1, 2) if (r := _load(f"city_ceiling-{n}.json")) is not None]
    if not runs:
        return []
    lines = [
        "**Telemetry throughput**, telemetry alone at 8,000 native messages a second (above the "
        "5,000-7,500 a second of Zigbee2MQTT messages one telemetry process carries, docs/benchmarks.md) "
        f"(`.venv/bin/python benchmarks/city_load.py {' '.join(runs[0]['argv'])}`, "
        "and with `--instances 2`):",
        "",
        "| instances | offered msg/s | sent | received by the instances | received per instance a second "
        "| dropped | points written | telemetry process % of a core (each) | measured |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        phase = run["phases"]["telemetry"]
        received = phase["received"].get('careline_messages_received_total{lane="telemetry"}', 0.0)
        each = [f"{100 * v:.0f}" for k, v in phase["cpu_share_of_a_core"].items() if k.endswith("-telemetry")]
        lines.append(
            _row(
                run["instances"],
                _n(phase["rates_offered"]["telemetry"]),
                f"{phase['telemetry_sent']:,}",
                f"{received:,.0f}",
                _n(received / run["instances"] / run["seconds"]),
                _n(phase["received"].get("careline_telemetry_dropped_total", 0.0)),
                f"{phase['points_written']:,.0f}",
                " / ".join(each),
                f"{run['when']}, counted {_settle(run['argv'])} s after the phase "
                f"(load average {run['load_average_at_start'][0]:.1f})",
            )
        )
    return [*lines, ""]


def comparison(inputs: dict[str, Any], run: dict[str, Any]) -> list[str]:
    """The model's inputs (docs/benchmarks.md) beside what the one-instance city run measured."""
    costs = costs_of(inputs)
    c, city = run["costs"], run["phases"]["city"]
    t = c["telemetry_us_per_message"]
    idle = sum(v for k, v in run["phases"]["idle"]["cpu_share_of_a_core"].items() if k.startswith("instance"))
    predicted = (
        city["telemetry_sent"] * costs.telemetry_s
        + city["doors_sent"] * costs.door_s
        + city["sos_sent"] * costs.alarm_s
        + idle * city["wall_s"]
    )
    measured = sum(v for k, v in city["cpu_s"].items() if k.startswith("instance"))
    c_in = inputs["costs"]
    return [
        "**The model's inputs against this run** (one instance):",
        "",
        "| cost | the model's input | measured here |",
        "|---|---|---|",
        _row(
            "telemetry message, gateway + telemetry process",
            f"{costs.telemetry_s * 1e6:.0f} µs (Zigbee2MQTT, 3.5 readings a message)",
            f"{t['telemetry_processes'] + t['gateway_processes']:.0f} µs (native JSON, one reading)",
        ),
        _row(
            "SOS, gateway process",
            f"{costs.alarm_s * 1e3:g} ms (one press at a time, --sos-max 1)",
            f"{c['sos_ms']['gateway_processes']} ms (+ {c['sos_ms']['telemetry_processes']} ms in the "
            "telemetry process), 10 new incidents a second",
        ),
        _row(
            "door event, both processes",
            "measured here (no earlier figure)",
            f"{c['door_event_ms']['gateway_processes'] + c['door_event_ms']['telemetry_processes']:.2f} ms",
        ),
        _row(
            "Mosquitto per message", f"{c_in['mosquitto_us_per_message']['value']} µs", f"{t['mosquitto']} µs"
        ),
        _row(
            "influxd per point", f"{c_in['influxd_us_per_point']['value']} µs", f"{t['influxd_per_point']} µs"
        ),
        _row(
            "the city phase, gateway + telemetry process CPU-seconds",
            f"{predicted:.1f} predicted (the inputs × the phase's counts + idle)",
            f"{measured:.1f}",
        ),
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--homes", type=int, default=None)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    inputs: dict[str, Any] = yaml.safe_load(INPUTS.read_text())
    homes = args.homes or int(_v(inputs, "city", "homes"))
    result = model(inputs, homes)
    text = tables(result)
    print(text)
    print(load_tables(inputs))
    if not args.no_write:
        (RESULTS / "city_model.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        replace_section(DOC, BEGIN, END, text)
        replace_section(DOC, LOAD_BEGIN, LOAD_END, load_tables(inputs))


if __name__ == "__main__":
    main()
