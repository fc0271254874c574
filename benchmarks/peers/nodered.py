"""Node-RED 4 from npm, headless, running the flow a Node-RED user would build for this stream.

MQTT in `zigbee2mqtt/#` → JSON → switches (SOS, else low battery, else too hot) → alarm message → MQTT
out, QoS 1, on `careline-bench/alarm/<name>`; every message ends at a counter node (see `flow`).
`--nodered-decode` puts a function before the switches that makes one reading per known key, as Careline
makes its events (a function node per message; Node-RED runs each in a `vm` sandbox). Node-RED stores
nothing: that is its shortcut, reported as such.
Installed into `var/peers/node-red` (npm) when missing; Node.js from apt when `node` is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from peer import Peer, PhaseLoad
from workload import ALARM_TOPIC_ROOT, TOPIC_ROOT

from careline.services import dies_with_this_process, free_port

PACKAGE = "node-red@4"

_DECODE = """
const state = msg.payload;
if (state === null || typeof state !== "object") return null;
const readings = [];
for (const key of ["action", "battery", "occupancy", "presence", "temperature", "humidity", "linkquality"]) {
    const value = state[key];
    if (value !== undefined && value !== null) readings.push({ kind: key, value: value });
}
msg.readings = readings;
return msg;
"""

_ALARM = """
const state = msg.payload;
const kind = state.action === "sos" ? "sos" : (state.battery < 10 ? "low_battery" : "too_hot");
const device = msg.topic.slice(PREFIX_LENGTH);
msg.topic = "ALARM_TOPIC_ROOT/" + device;
msg.payload = { device: device, alarm: kind, last_seen: state.last_seen };
return msg;
""".replace("ALARM_TOPIC_ROOT", ALARM_TOPIC_ROOT).replace("PREFIX_LENGTH", str(len(TOPIC_ROOT) + 1))

#: The benchmark's counter, a node of its own (`nodesDir`) rather than a function node: Node-RED runs a
#: function node's code in a `vm` sandbox, which cost ~40 µs a message here, about as much as the rest of
#: the flow. This one is a plain input handler; it serves its counts at GET /bench/count.
COUNTER_JS = """
module.exports = function (RED) {
    const counters = { messages: 0, alarms: 0 };
    RED.httpNode.get("/bench/count", (req, res) => res.json(counters));
    function BenchCount(config) {
        RED.nodes.createNode(this, config);
        const alarm = config.alarm === true;
        this.on("input", (msg, send, done) => {
            counters.messages += 1;
            if (alarm) { counters.alarms += 1; send(msg); }
            done();
        });
    }
    RED.nodes.registerType("bench-count", BenchCount);
};
"""
COUNTER_HTML = (
    '<script type="text/javascript">RED.nodes.registerType("bench-count", {category: "function", '
    "defaults: {alarm: {value: false}}, inputs: 1, outputs: 1});</script>\n"
)


def flow(broker_port: int, decode: bool = False) -> list[dict[str, Any]]:
    """The flow file. Nodes on the tab carry x/y: Node-RED takes a node without them for a config node.
    A message ends at a counter: after an alarm is made (and it goes on to MQTT out) or after the last
    switch. Counted at the end because Node-RED passes messages between nodes asynchronously, through a
    queue: under overload its first nodes run far ahead of the last (seen: 15k/s in, 5k/s out)."""
    tab = "careline-bench"
    nodes = [
        {"id": tab, "type": "tab", "label": "Zigbee2MQTT alarms"},
        {
            "id": "broker",
            "type": "mqtt-broker",
            "name": "mosquitto",
            "broker": "127.0.0.1",
            "port": str(broker_port),
            "clientid": "nodered-bench",
            "autoConnect": True,
            "usetls": False,
            "protocolVersion": "4",
            "keepalive": "60",
            "cleansession": True,
        },
        {
            "id": "in",
            "type": "mqtt in",
            "z": tab,
            "topic": f"{TOPIC_ROOT}/#",
            "qos": "1",
            "datatype": "utf8",
            "broker": "broker",
            "nl": False,
            "rap": True,
            "rh": 0,
            "inputs": 0,
            "wires": [["json"]],
        },
        {
            "id": "json",
            "type": "json",
            "z": tab,
            "property": "payload",
            "action": "obj",
            "wires": [["decode" if decode else "sos?"]],
        },
        *(
            [{"id": "decode", "type": "function", "z": tab, "func": _DECODE, "wires": [["sos?"]]}]
            if decode
            else []
        ),
        *_threshold_switches(tab),
        {"id": "alarm-count", "type": "bench-count", "z": tab, "alarm": True, "wires": [["alarm"]]},
        {"id": "alarm", "type": "function", "z": tab, "func": _ALARM, "outputs": 1, "wires": [["out"]]},
        {"id": "done", "type": "bench-count", "z": tab, "alarm": False, "wires": [[]]},
        {
            "id": "out",
            "type": "mqtt out",
            "z": tab,
            "topic": "",
            "qos": "1",
            "retain": "false",
            "broker": "broker",
        },
    ]
    for n, node in enumerate(node for node in nodes if "z" in node):
        node.update(x=120 + 160 * n, y=80)
    return nodes


def _threshold_switches(tab: str) -> list[dict[str, Any]]:
    """SOS, else battery below 10 %, else temperature above 35 °C: each match goes to the alarm; a message
    that matches none passes on to the next switch, as in a Node-RED user's chain of switches."""
    checks = [("sos?", "action", "eq", "sos", "str"), ("battery?", "battery", "lt", "10", "num")]
    checks += [("hot?", "temperature", "gt", "35", "num")]
    nodes = []
    for n, (node_id, key, op, value, value_type) in enumerate(checks):
        last = n == len(checks) - 1
        # The last switch's "otherwise" ends the flow at the counter.
        rules = [{"t": op, "v": value, "vt": value_type}, {"t": "else"}]
        nodes.append(
            {
                "id": node_id,
                "type": "switch",
                "z": tab,
                "property": f"payload.{key}",
                "propertyType": "msg",
                "rules": rules,
                "checkall": "false",
                "outputs": len(rules),
                "wires": [["alarm-count"], [checks[n + 1][0] if not last else "done"]],
            }
        )
    return nodes


def settings(http_port: int) -> str:
    """Headless: no editor, no admin API, nothing that calls out (telemetry, update checks, installs)."""
    options = {
        "uiHost": "127.0.0.1",
        "uiPort": http_port,
        "flowFile": "flows.json",
        "nodesDir": ["nodes"],
        "credentialSecret": False,
        "httpAdminRoot": False,
        "httpNodeRoot": "/",
        "disableEditor": True,
        "diagnostics": {"enabled": False, "ui": False},
        "runtimeState": {"enabled": False, "ui": False},
        "telemetry": {"enabled": False, "updateNotification": False},
        "externalModules": {"autoInstall": False, "palette": {"allowInstall": False}},
        "functionExternalModules": False,
        "logging": {"console": {"level": "warn", "metrics": False, "audit": False}},
    }
    return f"module.exports = {json.dumps(options, indent=2)};\n"


def ensure_installed(cache: Path) -> Path:
    """red.js of Node-RED 4 in `cache`, installed with npm (and Node.js with apt) when missing."""
    red = cache / "node_modules" / "node-red" / "red.js"
    if red.exists():
        return red
    if shutil.which("node") is None or shutil.which("npm") is None:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run([*sudo, "apt-get", "install", "-y", "nodejs", "npm"], check=True)
    cache.mkdir(parents=True, exist_ok=True)
    print(f"installing {PACKAGE} into {cache} (npm)", flush=True)
    subprocess.run(
        ["npm", "install", "--prefix", str(cache), "--no-audit", "--no-fund", "--loglevel=error", PACKAGE],
        check=True,
    )
    return red


class NodeRed(Peer):
    name = "nodered"
    label = "Node-RED 4 (JSON → decode → switch → MQTT out)"
    alarms_on_mqtt = True

    def __init__(self, broker_port: int, cache: Path, workdir: Path, decode: bool = False) -> None:
        self.broker_port = broker_port
        self.decode = decode
        self.cache = cache
        self.user_dir = workdir / "node-red"
        self.http_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.http_port}", timeout=5)
        self.version = "?"

    async def start(self) -> None:
        red = await asyncio.to_thread(ensure_installed, self.cache)
        self.version = json.loads((red.parent / "package.json").read_text())["version"]
        self.process = self._launch(red)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                if (await self.http.get("/bench/count")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"Node-RED did not start: {self.log_path.read_text()[-2000:]}")

    @property
    def log_path(self) -> Path:
        return self.user_dir / "node-red.log"

    def _launch(self, red: Path) -> subprocess.Popen[bytes]:
        self.user_dir.mkdir(parents=True, exist_ok=True)
        (self.user_dir / "flows.json").write_text(json.dumps(flow(self.broker_port, self.decode)))
        nodes = self.user_dir / "nodes"
        nodes.mkdir(exist_ok=True)
        (nodes / "bench-count.js").write_text(COUNTER_JS)
        (nodes / "bench-count.html").write_text(COUNTER_HTML)
        settings_js = self.user_dir / "settings.js"
        settings_js.write_text(settings(self.http_port))
        with self.log_path.open("wb") as log:
            return subprocess.Popen(
                ["node", str(red), "--userDir", str(self.user_dir), "--settings", str(settings_js)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.user_dir,
                preexec_fn=dies_with_this_process(),
            )

    async def stop(self) -> None:
        await self.http.aclose()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def processes(self) -> dict[str, int]:
        assert self.process is not None
        return {"node-red": self.process.pid}

    async def counters(self) -> dict[str, float]:
        counters: dict[str, float] = (await self.http.get("/bench/count")).json()
        return counters

    async def handled(self) -> float:
        return float((await self.counters()).get("messages", 0))

    async def begin_phase(self, load: PhaseLoad) -> None:
        self.before = await self.counters()

    async def account(self, load: PhaseLoad, handled: float) -> dict[str, Any]:
        counters = await self.counters()
        return {
            "lost": max(0, round(load.messages - handled)),
            "alarms": counters.get("alarms", 0) - self.before.get("alarms", 0),
            "alarms_expected": load.kinds.get("pendant", 0),
        }
