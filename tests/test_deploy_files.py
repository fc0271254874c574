"""The several-instance deployment (docker-compose.scale.yml, deploy/scale/) holds together.

There is no Docker engine on this project's machines, so `docker compose config` cannot run here: these
tests parse the compose file with PyYAML and check that its services, ports, environment, health checks,
the Careline configurations and the load balancer's configuration agree with one another.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import shutil
import subprocess
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
import websockets.asyncio.server
import yaml

from common.net import free_port
from gateway.config import CarelineConfig

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.scale.yml"
SCALE = ROOT / "deploy" / "scale"
GATEWAYS = ("gateway1", "gateway2")
NODES = ("emqx1", "emqx2")


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def _services() -> dict[str, Any]:
    services: dict[str, Any] = _compose()["services"]
    return services


def _mounted(service: dict[str, Any], target: str) -> Path:
    for volume in service["volumes"]:
        source, _, rest = volume.partition(":")
        if rest.split(":")[0] == target:
            return ROOT / source
    raise AssertionError(f"nothing mounted at {target}")


def _gateway_config(name: str) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(
        _mounted(_services()[name], "/etc/careline/careline.yaml").read_text()
    )
    return config


def _env_files(service: dict[str, Any]) -> list[Path]:
    files = service.get("env_file", [])
    return [ROOT / f for f in ([files] if isinstance(files, str) else files)]


def _example_vars(path: Path) -> dict[str, str]:
    example = path.with_name(path.name + ".example")
    pairs = (line.split("=", 1) for line in example.read_text().splitlines() if "=" in line)
    return {key.strip(): value for key, value in pairs if not key.lstrip().startswith("#")}


def _haproxy_sections() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for raw in (SCALE / "haproxy.cfg").read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not line[0].isspace():
            current = line.strip()
            sections[current] = []
        else:
            sections[current].append(line.strip())
    return sections


def test_the_scale_deployment_has_a_two_node_broker_a_store_telemetry_two_gateways_and_a_balancer() -> None:
    assert set(_services()) == {"emqx1", "emqx2", "postgres", "influxdb", "gateway1", "gateway2", "lb"}
    assert _services()["postgres"]["image"].startswith("postgres:15")
    assert _services()["influxdb"]["image"].startswith("influxdb:2")
    for node in NODES:
        assert re.fullmatch(r"emqx/emqx:5\.\d+\.\d+", _services()[node]["image"])


def test_the_emqx_nodes_form_one_cluster_and_hash_shared_subscriptions_by_topic() -> None:
    names = set()
    for node in NODES:
        service = _services()[node]
        env = service["environment"]
        node_name = env["EMQX_NODE__NAME"]
        host = node_name.split("@", 1)[1]
        assert host == service["hostname"]
        assert host in service["networks"]["careline"]["aliases"]
        assert "." in host, "EMQX runs its Erlang node with long names: the host must be a dotted name"
        assert env["EMQX_CLUSTER__DISCOVERY_STRATEGY"] == "static"
        assert env["EMQX_MQTT__SHARED_SUBSCRIPTION_STRATEGY"] == "hash_topic"
        assert env["EMQX_AUTHENTICATION__1__MECHANISM"] == "password_based"
        seeds = env["EMQX_CLUSTER__STATIC__SEEDS"].strip("[]").split(",")
        names.add(node_name)
        assert {s.strip() for s in seeds} == {f"emqx@{n}.careline.internal" for n in NODES}
        assert "EMQX_NODE__COOKIE" in _example_vars(_env_files(service)[0])
        assert _mounted(service, "/opt/emqx/etc/careline-users.csv").with_suffix(".csv.example").exists()
    assert len(names) == 2


def test_both_gateways_run_the_one_image_with_their_own_identity_and_the_same_store() -> None:
    one, two = (_gateway_config(name) for name in GATEWAYS)
    assert one["broker"]["client_id"] != two["broker"]["client_id"]
    differing = {
        (section, key)
        for section in one.keys() | two.keys()
        if isinstance(one.get(section), dict) and isinstance(two.get(section), dict)
        for key in one[section].keys() | two[section].keys()
        if one[section].get(key) != two[section].get(key)
    }
    assert differing == {("broker", "client_id"), ("broker", "url")}
    assert {k: v for k, v in one.items() if k != "broker"} == {k: v for k, v in two.items() if k != "broker"}
    assert one["cluster"]["share_group"] == "careline"
    store = urlsplit(one["storage"]["url"])
    assert store.scheme.startswith("postgresql")
    assert store.password is None, "the store's password comes from PGPASSWORD, not the file"
    postgres = _services()["postgres"]
    assert store.hostname == "postgres"
    assert store.port in (None, 5432)
    assert store.username == postgres["environment"]["POSTGRES_USER"]
    assert store.path.lstrip("/") == postgres["environment"]["POSTGRES_DB"]
    assert postgres["healthcheck"]["test"] == [
        "CMD",
        "pg_isready",
        "-U",
        store.username,
        "-d",
        store.path.lstrip("/"),
    ]
    for name in GATEWAYS:
        service = _services()[name]
        assert service["build"] == "."
        assert (ROOT / "Dockerfile").exists()
        assert set(service["depends_on"]) == {"emqx1", "emqx2", "postgres"}


def test_each_gateway_reaches_its_own_emqx_node() -> None:
    hosts = []
    for name in GATEWAYS:
        broker = urlsplit(_gateway_config(name)["broker"]["url"])
        assert broker.port == 1883
        hosts.append(broker.hostname)
    aliases = {a for n in NODES for a in _services()[n]["networks"]["careline"]["aliases"]}
    assert set(hosts) == aliases


def test_every_secret_the_gateways_name_is_in_their_env_file_and_none_is_in_the_repository() -> None:
    config = _gateway_config("gateway1")
    named = {
        value
        for section in config.values()
        if isinstance(section, dict)
        for key, value in section.items()
        if key.endswith("_env")
    }
    gateway_env = _example_vars(_env_files(_services()["gateway1"])[0])
    assert named <= gateway_env.keys()
    assert "PGPASSWORD" in gateway_env
    postgres_env = _example_vars(_env_files(_services()["postgres"])[0])
    assert "POSTGRES_PASSWORD" in postgres_env
    for name, service in _services().items():
        for path in _env_files(service):
            assert path.with_name(path.name + ".example").exists(), name
            ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(path)], check=False)
            assert ignored.returncode == 0, f"{path} must be ignored by git"
        for key in service.get("environment", {}):
            assert not re.search(r"PASSWORD|TOKEN|COOKIE|SECRET", key), (
                f"{name}: {key} belongs in an env file"
            )
    for value in (*gateway_env.values(), *postgres_env.values()):
        assert value.startswith("change-me") or "change-me" not in value


def test_the_balancer_spreads_dashboards_round_robin_without_stickiness_and_checks_readiness() -> None:
    sections = _haproxy_sections()
    backend = sections["backend gateways"]
    assert "balance roundrobin" in backend
    assert not any(line.startswith(("cookie", "stick", "hash-type", "balance source")) for line in backend)
    assert "http-check send meth GET uri /api/readyz ver HTTP/1.1 hdr Host careline" in backend
    servers = [line.split() for line in backend if line.startswith("server ")]
    http_port = _gateway_config("gateway1")["http"]["port"]
    assert {s[2] for s in servers} == {f"{name}:{http_port}" for name in GATEWAYS}
    assert all("check" in s for s in servers)
    assert any(line.startswith("timeout tunnel") for line in sections["defaults"]), "WebSockets need it"
    emqx = [line.split() for line in sections["backend emqx"] if line.startswith("server ")]
    assert {s[2] for s in emqx} == {f"{n}.careline.internal:1883" for n in NODES}


def test_the_gateways_trust_the_forwarded_address_of_the_balancer_only() -> None:
    lb_address = _services()["lb"]["networks"]["careline"]["ipv4_address"]
    subnet = _compose()["networks"]["careline"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(lb_address) in ipaddress.ip_network(subnet)
    for name in GATEWAYS:
        assert _services()[name]["environment"]["FORWARDED_ALLOW_IPS"] == lb_address
    assert "option forwardfor" in _haproxy_sections()["frontend dashboards"]


def test_the_balancer_publishes_the_dashboards_and_mqtt_and_health_checks_its_own_monitor_uri() -> None:
    lb = _services()["lb"]
    published = {p.rsplit(":", 1)[-1] for p in lb["ports"]}
    binds = {
        line.split()[1].lstrip(":")
        for lines in _haproxy_sections().values()
        for line in lines
        if line.startswith("bind ")
    }
    assert published == binds == {"8080", "1883", "8404"}
    assert "monitor-uri /lb-healthz" in _haproxy_sections()["frontend lb_status"]
    assert "/lb-healthz" in " ".join(lb["healthcheck"]["test"])
    assert _mounted(lb, "/usr/local/etc/haproxy/haproxy.cfg") == SCALE / "haproxy.cfg"


def test_the_gateways_health_checks_ask_liveness_and_the_routes_exist() -> None:
    api = (ROOT / "dashboard" / "api.py").read_text()
    for name in GATEWAYS:
        test = " ".join(_services()[name]["healthcheck"]["test"])
        port = _gateway_config(name)["http"]["port"]
        assert f"http://127.0.0.1:{port}/api/healthz" in test
    assert '"/api/healthz"' in api
    assert '"/api/readyz"' in api


def test_the_influxdb_the_gateways_write_to_is_the_compose_service() -> None:
    telemetry = _gateway_config("gateway1")["telemetry"]
    url = urlsplit(telemetry["url"])
    assert url.hostname == "influxdb"
    assert f"127.0.0.1:{url.port}:{url.port}" in _services()["influxdb"]["ports"]
    influx_env = _example_vars(_env_files(_services()["influxdb"])[0])
    assert telemetry["org"] == influx_env["DOCKER_INFLUXDB_INIT_ORG"]
    assert telemetry["bucket"] == influx_env["DOCKER_INFLUXDB_INIT_BUCKET"]


def test_the_gateway_configurations_validate() -> None:
    for name in GATEWAYS:
        config = CarelineConfig.model_validate(_gateway_config(name))
        assert config.cluster.shared


def test_haproxy_accepts_its_configuration() -> None:
    if shutil.which("haproxy") is None:
        pytest.fail("haproxy is missing: `make test` installs it (scripts/install-system-deps.sh)")
    result = subprocess.run(
        ["haproxy", "-c", "-f", str(SCALE / "haproxy.cfg")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_installs_every_package_the_command_imports() -> None:
    copied = {
        line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")
    }
    pyproject = (ROOT / "pyproject.toml").read_text()
    packages = re.search(r"packages = \[(.*?)\]", pyproject)
    assert packages is not None
    assert {p.strip().strip('"') for p in packages.group(1).split(",")} <= copied


# -- the balancer's configuration, run: HAProxy in front of two stand-ins of a gateway -------------------


class _StandIn:
    """What the balancer sees of a gateway: /api/readyz (switchable), /api/whoami, the /api/ws WebSocket."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ready = True
        self.port = free_port()
        self.server: Any = None

    async def start(self) -> None:
        self.server = await websockets.asyncio.server.serve(
            self._echo, "127.0.0.1", self.port, process_request=self._http
        )

    def _http(self, connection: Any, request: Any) -> Any:
        if request.path == "/api/readyz":
            status = HTTPStatus.OK if self.ready else HTTPStatus.SERVICE_UNAVAILABLE
            return connection.respond(status, "ready\n" if self.ready else "not ready\n")
        if request.path == "/api/whoami":
            return connection.respond(HTTPStatus.OK, self.name)
        return None  # /api/ws: the WebSocket handshake goes on

    async def _echo(self, ws: Any) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in ws:
                await ws.send(f"{self.name}:{message}")

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


def _balancer_config(backends: dict[str, int], ports: dict[str, int]) -> str:
    """deploy/scale/haproxy.cfg with the compose network's names and ports replaced by this machine's."""
    text = (SCALE / "haproxy.cfg").read_text()
    text = re.sub(r"resolvers docker\n(    .*\n)+", "", text).replace(" resolvers docker", "")
    for name, port in backends.items():
        text = text.replace(f"server {name} {name}:8080", f"server {name} 127.0.0.1:{port}")
    for bind, port in ports.items():
        text = text.replace(f"bind :{bind}", f"bind 127.0.0.1:{port}")
    # This machine's file limit is lower than a container's (compose raises it for `lb`).
    return text.replace("log stdout format raw local0 info", "").replace("maxconn 20000", "maxconn 2000")


@pytest.mark.slow
async def test_the_balancer_round_robins_without_stickiness_passes_websockets_and_drops_an_unready_gateway(
    tmp_path: Path,
) -> None:
    if shutil.which("haproxy") is None:
        pytest.fail("haproxy is missing: `make test` installs it (scripts/install-system-deps.sh)")
    stand_ins = {name: _StandIn(name) for name in GATEWAYS}
    for stand_in in stand_ins.values():
        await stand_in.start()
    ports = {"8080": free_port(), "1883": free_port(), "8404": free_port()}
    config = tmp_path / "haproxy.cfg"
    config.write_text(_balancer_config({n: s.port for n, s in stand_ins.items()}, ports))
    balancer = await asyncio.create_subprocess_exec(
        "haproxy", "-db", "-f", str(config), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{ports['8080']}"
    try:
        async with httpx.AsyncClient(base_url=base) as http:

            async def answers(count: int, **kwargs: Any) -> list[str]:
                return [(await http.get("/api/whoami", **kwargs)).text for _ in range(count)]

            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.TransportError):
                    if set(await answers(4)) == set(GATEWAYS):
                        break
                await asyncio.sleep(0.2)
            served = await answers(10)
            assert served.count("gateway1") == served.count("gateway2") == 5
            # A signed-in operator's cookie changes nothing: sessions are rows in the shared store.
            with_cookie = await answers(10, headers={"Cookie": "careline_session=abc"})
            assert with_cookie.count("gateway1") == with_cookie.count("gateway2") == 5

            async with websockets.connect(f"ws://127.0.0.1:{ports['8080']}/api/ws") as ws:
                await ws.send("ping")
                reply = await ws.recv()
                owner = str(reply).split(":")[0]
                assert owner in GATEWAYS
                assert reply == f"{owner}:ping"

                stand_ins[owner].ready = False
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and owner in await answers(4):  # noqa: ASYNC110
                    await asyncio.sleep(0.5)
                assert set(await answers(6)) == set(GATEWAYS) - {owner}
                # The unready instance's open WebSocket is ended, so its console reconnects elsewhere.
                with pytest.raises(websockets.ConnectionClosed):
                    async with asyncio.timeout(10):
                        await ws.recv()
            stats = (await http.get(f"http://127.0.0.1:{ports['8404']}/lb-healthz")).status_code
            assert stats == 200
    finally:
        balancer.terminate()
        await balancer.wait()
        for stand_in in stand_ins.values():
            await stand_in.stop()
