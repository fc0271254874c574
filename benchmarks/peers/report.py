"""From the phases of every repeat to medians and spreads, the tables of docs/benchmarks.md and the plots."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "peers.json"
DOC = ROOT / "docs" / "benchmarks.md"
PLOTS = ROOT / "docs" / "benchmarks"
BEGIN, END = "<!-- peers:begin -->", "<!-- peers:end -->"
ORDER = ("paho", "nodered", "careline")
NAMES = {"paho": "bare paho subscriber", "nodered": "Node-RED", "careline": "Careline"}
COLOURS = {"paho": "tab:blue", "nodered": "tab:red", "careline": "tab:green"}
#: Figures summarised per processor and rate: (key, how to read it from a phase).
FIGURES: dict[str, Any] = {
    "offered": lambda p: p["offered_per_s"],
    "sustained": lambda p: p["sustained_per_s"],
    "lost": lambda p: p["lost"],
    "backlog_at_end": lambda p: p["backlog_at_end"],
    "backlog_growth": lambda p: p["backlog_growth_per_s"],
    "cpu_us_per_msg": lambda p: p["cpu_us_per_msg"],
    "cpu_pct": lambda p: p["processor_cpu_pct_of_one_core"],
    "rss_mb": lambda p: p["rss_mb"],
    "sos_p50": lambda p: (p["sos"] or {}).get("p50_ms"),
    "sos_p99": lambda p: (p["sos"] or {}).get("p99_ms"),
    "sos_max": lambda p: (p["sos"] or {}).get("max_ms"),
    "hop_p50": lambda p: p["one_hop"].get("p50_ms"),
    "hop_p99": lambda p: p["one_hop"].get("p99_ms"),
    "settle_s": lambda p: p["settle_s"],
    "sos_per_s": lambda p: p["sos_per_s"],
    "published": lambda p: p["published"],
    "handled_after_settle": lambda p: p["handled_after_settle"],
    "received_by_first_node": lambda p: p.get("received_by_first_node"),
    "not_received_by_gateway": lambda p: p.get("not_received_by_gateway"),
    "dropped_queue_full": lambda p: p.get("dropped_queue_full"),
    "other_work_pct": lambda p: max(
        0.0, round(p["cpu_s_other_work_on_the_machine"] / p["window_s"] * 100, 1)
    ),
}


def command(argv: list[str]) -> str:
    return " ".join([".venv/bin/python benchmarks/peers/run.py", *argv]).strip()


def phase_line(name: str, p: dict[str, Any]) -> str:
    sos = p["sos"] or {}
    return (
        f"{name} {p['rate']:,.0f}/s: offered {p['offered_per_s']:,}, sustained {p['sustained_per_s']:,}, "
        f"lost {p['lost']:,}, backlog at end {p['backlog_at_end']:,}, settle {p['settle_s']} s, "
        f"CPU {p['processor_cpu_pct_of_one_core']}% ({p['cpu_us_per_msg']} µs/msg), RSS {p['rss_mb']} MB, "
        f"SOS p50/p99/max {sos.get('p50_ms', '–')}/{sos.get('p99_ms', '–')}/{sos.get('max_ms', '–')} ms, "
        f"one hop p50/p99 {p['one_hop'].get('p50_ms')}/{p['one_hop'].get('p99_ms')} ms, "
        f"kept up: {'yes' if p['kept_up'] else 'NO'}"
    )


def _spread(values: list[float | None]) -> dict[str, float] | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {"median": statistics.median(present), "min": min(present), "max": max(present), "n": len(present)}


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Per processor and rate: each figure's median and min–max over the repeats, and per-process CPU."""
    phases: dict[str, dict[float, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for run in results["runs"]:
        for p in run["phases"]:
            phases[run["processor"]][p["rate"]].append(p)
    summary: dict[str, Any] = {}
    for processor, by_rate in phases.items():
        summary[processor] = {}
        for rate, ps in sorted(by_rate.items()):
            figures = {key: _spread([read(p) for p in ps]) for key, read in FIGURES.items()}
            per_process: dict[str, list[float]] = defaultdict(list)
            for p in ps:
                for proc, us in p["cpu_us_per_msg_by_process"].items():
                    per_process[_process_kind(proc)].append(us)
            summary[processor][rate] = {
                **figures,
                "kept_up": sum(1 for p in ps if p["kept_up"]),
                "repeats": len(ps),
                "cpu_us_per_msg_by_process": {k: statistics.median(v) for k, v in per_process.items()},
            }
    return summary


def _process_kind(name: str) -> str:
    """Careline's child has its pid in its name; the same child across repeats is one row."""
    return name.split(" (")[0]


def _fmt(s: dict[str, float] | None, digits: int = 0, unit: str = "") -> str:
    if s is None:
        return "–"

    def f(v: float) -> str:
        return f"{v:,.{digits}f}"

    if s["min"] == s["max"] or s["n"] == 1:
        return f"{f(s['median'])}{unit}"
    return f"{f(s['median'])}{unit} ({f(s['min'])}–{f(s['max'])})"


def _highest_kept_up(rows: dict[float, Any]) -> float | None:
    kept = [rate for rate, row in rows.items() if row["kept_up"] == row["repeats"]]
    return max(kept) if kept else None


def _nearest(rows: dict[float, Any], rate: float) -> float:
    return min(rows, key=lambda r: abs(r - rate))


def headline(summary: dict[str, Any]) -> list[str]:
    """The issue's table: sustained at the top rate, CPU/msg at the highest rate kept up, SOS p99 near
    10k/s, RSS."""
    lines = [
        "| processor | sustained msg/s at the top rate offered | CPU per message (at the highest rate kept up"
        " with, else where it handled the most) | SOS p99 | RSS |",
        "|---|---|---|---|---|",
    ]
    for name in (n for n in ORDER if n in summary):
        rows = summary[name]
        top = max(rows)
        kept = _highest_kept_up(rows)
        # Behind at every rate: its cost where it handled the most (its ceiling), not where it choked.
        at = (
            kept
            if kept is not None
            else max(rows, key=lambda r: (rows[r]["sustained"] or {}).get("median", 0))
        )
        mid = _nearest(rows, 10_000)
        sos = rows[mid]["sos_p99"]
        sos_cell = (
            f"{_fmt(sos, 1, ' ms')} at {mid:,.0f}/s (max {_fmt(rows[mid]['sos_max'], 0, ' ms')})"
            if sos
            else "–"
        )
        behind = (
            "" if kept == top else f" (falls behind above {kept:,.0f})" if kept else " (behind at every rate)"
        )
        sustained = f"{_fmt(rows[top]['sustained'])} of {_fmt(rows[top]['offered'])} offered{behind}"
        lines.append(
            f"| {NAMES[name]} | {sustained} "
            f"| {_fmt(rows[at]['cpu_us_per_msg'], 1, ' µs')} at {at:,.0f}/s | {sos_cell} "
            f"| {_fmt(rows[at]['rss_mb'], 0, ' MB')} |"
        )
    return lines


def per_rate(summary: dict[str, Any]) -> list[str]:
    lines = [
        "| processor | offered msg/s | sustained msg/s | kept up | unhandled after settle "
        "| backlog at end | CPU % of a core "
        "| CPU µs/msg | RSS MB | SOS/s | SOS p50 / p99 / max ms | one hop p50 / p99 ms | other work % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in (n for n in ORDER if n in summary):
        for r in summary[name].values():
            sos = (
                f"{_fmt(r['sos_p50'], 1)} / {_fmt(r['sos_p99'], 1)} / {_fmt(r['sos_max'], 0)}"
                if r["sos_p99"]
                else "–"
            )
            lines.append(
                f"| {NAMES[name]} | {_fmt(r['offered'])} | {_fmt(r['sustained'])} "
                f"| {r['kept_up']}/{r['repeats']} | {_fmt(r['lost'])} | {_fmt(r['backlog_at_end'])} "
                f"| {_fmt(r['cpu_pct'], 1)} "
                f"| {_fmt(r['cpu_us_per_msg'], 1)} | {_fmt(r['rss_mb'])} | {_fmt(r['sos_per_s'])} | {sos} "
                f"| {_fmt(r['hop_p50'], 2)} / {_fmt(r['hop_p99'], 2)} | {_fmt(r['other_work_pct'])} |"
            )
    return lines


def per_process(summary: dict[str, Any]) -> list[str]:
    """CPU µs per handled message of every process, median over repeats, at each rate."""
    lines = ["| processor | rate | CPU µs per message handled, by process (median) |", "|---|---|---|"]
    for name in (n for n in ORDER if n in summary):
        for rate, r in summary[name].items():
            cells = ", ".join(f"{proc} {us:,.1f}" for proc, us in r["cpu_us_per_msg_by_process"].items())
            lines.append(f"| {NAMES[name]} | {rate:,.0f} | {cells} |")
    return lines


def ratios(summary: dict[str, Any]) -> list[str]:
    """Careline's medians over the others' at each rate (sustained, CPU per message, SOS p99, RSS)."""
    if "careline" not in summary:
        return []
    others = [n for n in ("paho", "nodered") if n in summary]
    if not others:
        return []
    head = " | ".join(f"vs {NAMES[o]}" for o in others)
    lines = [f"| Careline ÷ … at rate | {head} |", "|---|" + "---|" * len(others)]
    for rate, mine in summary["careline"].items():
        cells = []
        for other in others:
            theirs = summary[other].get(rate)
            if theirs is None:
                cells.append("–")
                continue
            parts = []
            for key, label in (
                ("sustained", "sustained"),
                ("cpu_us_per_msg", "CPU/msg"),
                ("sos_p99", "SOS p99"),
                ("rss_mb", "RSS"),
            ):
                a, b = mine[key], theirs[key]
                if a and b and b["median"]:
                    parts.append(f"{label} ×{a['median'] / b['median']:.2f}")
            cells.append(", ".join(parts) or "–")
        lines.append(f"| {rate:,.0f}/s | " + " | ".join(cells) + " |")
    lines += [
        "",
        "A ratio at a rate where either processor fell behind compares a saturated processor's figures "
        "(its CPU spread over fewer messages, its SOS waiting behind a backlog): read it with the table "
        "above.",
    ]
    return lines


def falling_behind(summary: dict[str, Any]) -> list[str]:
    """Where each processor first falls behind, and where the messages it did not handle went."""
    lines = []
    for name in (n for n in ORDER if n in summary):
        behind = [(rate, r) for rate, r in summary[name].items() if r["kept_up"] < r["repeats"]]
        if not behind:
            top = max(summary[name])
            lines.append(f"- {NAMES[name]}: kept up at every rate up to {top:,.0f}/s.")
            continue
        rate, r = behind[0]
        text = (
            f"- {NAMES[name]}: behind from {rate:,.0f}/s (in {r['repeats'] - r['kept_up']} of {r['repeats']}"
            f" repeats): {_fmt(r['sustained'])} msg/s sustained of {_fmt(r['offered'])} offered, "
            f"{_fmt(r['backlog_at_end'])} not yet handled when publishing stopped, "
            f"{_fmt(r['handled_after_settle'])} of {_fmt(r['published'])} handled "
            f"after {_fmt(r['settle_s'], 1)} s"
        )
        if name == "nodered" and r["received_by_first_node"]:
            text += (
                f"; its first node had taken in {_fmt(r['received_by_first_node'])}: the rest waited in"
                f" Node-RED's queues between nodes (RSS {_fmt(r['rss_mb'])} MB)"
            )
        if name == "careline" and r["not_received_by_gateway"] is not None:
            text += (
                f"; {_fmt(r['not_received_by_gateway'])} had not reached the gateway (still at the broker or"
                f" dropped by it), {_fmt(r['dropped_queue_full'])} were dropped by its telemetry queue"
            )
        lines.append(text + ".")
    return lines


def summary_text(summary: dict[str, Any]) -> str:
    parts = [*headline(summary), "", *per_rate(summary), "", *ratios(summary), "", *falling_behind(summary)]
    return "\n".join(["", *parts])


def plots(summary: dict[str, Any]) -> list[Path]:
    """Sustained vs offered, CPU per message, SOS p99 vs rate (PNG, matplotlib from the `bench` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (pip install '.[bench]'): no plots", flush=True)
        return []
    PLOTS.mkdir(parents=True, exist_ok=True)
    charts = [
        ("peers-sustained.png", "sustained", "sustained msg/s", "Sustained vs offered"),
        ("peers-cpu.png", "cpu_us_per_msg", "CPU µs per message (processor's processes)", "CPU per message"),
        ("peers-sos-p99.png", "sos_p99", "SOS p99 ms", "SOS publish → alarm, p99"),
    ]
    written = []
    for file, key, ylabel, title in charts:
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        for name in (n for n in ORDER if n in summary):
            rows = [(r, v[key]) for r, v in summary[name].items() if v[key]]
            if not rows:
                continue
            xs = [r for r, _ in rows]
            med = [s["median"] for _, s in rows]
            err = [[s["median"] - s["min"] for _, s in rows], [s["max"] - s["median"] for _, s in rows]]
            ax.errorbar(xs, med, yerr=err, marker="o", capsize=3, label=NAMES[name], color=COLOURS[name])
        if key == "sustained":
            top = max(max(rows) for rows in summary.values())
            ax.plot([0, top], [0, top], linestyle=":", color="grey", label="offered")
        if key != "sustained":
            ax.set_yscale("log")  # processors an order of magnitude apart
        ax.set_xlabel("offered msg/s")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(PLOTS / file)
        plt.close(fig)
        written.append(PLOTS / file)
    return written


def _publisher(results: dict[str, Any]) -> str:
    if results.get("publisher") == "paho":
        return "paho `publish()`, no network thread"
    return (
        "MQTT 3.1.1 PUBLISH packets framed by the generator, one write per tick; paho costs ~20 µs a message"
    )


def _section(results: dict[str, Any], summary: dict[str, Any], images: list[Path]) -> str:
    nodered = next((r.get("node_red_version") for r in results["runs"] if r.get("node_red_version")), "4")
    lines = [
        BEGIN,
        "## Side by side: a bare paho subscriber, Node-RED and Careline on one Zigbee2MQTT stream",
        "",
        f"Command: `make bench-peers` (= `{results['command']}`; {results['total_s'] / 60:.1f} minutes; raw "
        "figures per repeat, per process and per phase in `benchmarks/results/peers.json`). Measured "
        f"{results['when']} on {results['machine']['cpus']} cores, Python {results['machine']['python']}, "
        f"Node-RED {nodered}, Mosquitto 2.0.11, InfluxDB 1.6.7; Careline at "
        f"{results.get('careline_commit', '?')}.",
        "",
        f"Workload (issue 12): {results['homes']:,} homes × (motion sensor, climate sensor, SOS pendant) = "
        f"{results['devices']:,} devices on `zigbee2mqtt/home-NNNN/<device>`, Zigbee2MQTT-style state "
        "messages of 145–155 bytes with `last_seen` (motion: 3 Careline events, climate: 4, pendant: 3). "
        f"Telemetry at QoS 0 from {results['publisher_processes']} publisher processes "
        f"({_publisher(results)}) paced in 2 ms ticks; SOS presses at QoS 1 from a probe process, rotating "
        f"over the pendants: {results['sos_share'] * 100:g}% of the offered rate but at most "
        f"{results['sos_max_per_s']:g} a second (1% up to 10k/s; at 20k/s 1% would be 200 incident "
        "commits a second, the alarm lane rather than the telemetry under test). One Mosquitto 2.0.11 on "
        f"127.0.0.1; each processor in turn, started afresh for each repeat ({results['repeats']}), "
        f"{results['duration_s']:g} s per rate after a 3 s warm-up. Generator, broker, processor (and "
        "InfluxDB) share the two cores, and "
        "so does whatever else runs on the machine (*other work*: the machine's busy CPU over the window "
        "minus the processes listed, median per phase).",
        "",
        "- *sustained*: messages handled per second over the phase's last three quarters (least squares);"
        " Node-RED's are counted where they leave its flow; Careline's where they are stored in InfluxDB"
        " (`pointsWrittenOK` ÷ the mix's points per message);",
        "- *unhandled after settle*: offered minus handled once the processor settled (its counter still"
        " for a while, at most 15 s): lost, or still queued somewhere when the next rate began; for Careline"
        " counted per kind of message in its own measurement over the devices' time window;",
        "- *backlog at end*: offered minus handled when publishing stopped (a processor that keeps up has"
        " under a second's worth); *kept up*: nothing unhandled, sustained ≥ 97% of offered, backlog"
        " ≤ 1.5 s;",
        "- *SOS*: publish at QoS 1 → Node-RED's alarm on `careline-bench/alarm/<name>` heard by the probe's"
        " paho subscriber, or → Careline's committed incident frame on a logged-in operator WebSocket;"
        " *one hop*: the same press heard by the probe's plain paho subscriber (the broker's own share);",
        "- *CPU*: psutil `cpu_times` (user + system) over the window of the processor's processes (Careline:"
        " the gateway and its telemetry child) ÷ messages handled in the window; RSS: their sum, the"
        " largest seen during the phase. Figures are medians, (min–max) over repeats.",
        "",
        *headline(summary),
        "",
        *per_rate(summary),
        "",
        *ratios(summary),
        "",
        *falling_behind(summary),
        "",
        "Read with care: the two cores are shared with whatever else runs (*other work*); a processor that"
        " stays behind carries its backlog into the next rate (the settle time is capped), so its figures"
        " at the higher rates are those of a saturated process; Careline's SOS presses are real incidents"
        " (opened, then joined) whose cost is in the gateway process's row below (`--sos-max` lowers the"
        " rate). CPU µs per message handled, by process:",
        "",
        *per_process(summary),
        "",
        *[f"![{p.stem}](benchmarks/{p.name})" for p in images],
        END,
    ]
    return "\n".join(lines)


def write(results: dict[str, Any], summary: dict[str, Any]) -> None:
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from support import replace_section

    RESULTS.write_text(json.dumps({"results": results, "summary": _json_keys(summary)}, indent=2) + "\n")
    images = plots(summary)
    replace_section(DOC, BEGIN, END, _section(results, summary, images))


def _json_keys(summary: dict[str, Any]) -> dict[str, Any]:
    return {name: {f"{rate:g}": row for rate, row in rows.items()} for name, rows in summary.items()}
