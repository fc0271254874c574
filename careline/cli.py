"""`careline`: run the gateway, the demo, the simulators, and the admin chores."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from careline.bootstrap import Gateway, bootstrap
from common.errors import CarelineError
from dashboard.auth import Role, UserExistsError, UserStore
from devices.model import EventKind
from gateway.clock import zone_where_local_hour_is
from gateway.config import CarelineConfig, load_config
from gateway.directory import Directory, device_registry
from gateway.incidents.db import make_engine
from gateway.incidents.migrate import upgrade
from gateway.incidents.store import IncidentStore

app = typer.Typer(
    help="Careline: elders' alarms from MQTT to an acknowledged incident.", no_args_is_help=True
)
config_app = typer.Typer(help="Check configuration files.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the incident store.", no_args_is_help=True)
user_app = typer.Typer(help="Manage dashboard users.", no_args_is_help=True)
simulate_app = typer.Typer(help="Publish simulated device traffic over real MQTT.", no_args_is_help=True)
audit_app = typer.Typer(help="Check the tamper-evident audit trail.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(simulate_app, name="simulate")

ConfigPath = Annotated[Path, typer.Option("--config", "-c", help="YAML configuration file")]
log = logging.getLogger("careline")


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)


def _load(path: Path) -> CarelineConfig:
    try:
        return load_config(path)
    except CarelineError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


async def _serve_until_signalled(gateway: Gateway, *extra: asyncio.Task[None]) -> None:
    """Serve until SIGINT/SIGTERM; helpers (the demo's simulator) stop first, while the broker is up."""
    signalled, stop = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, signalled.set)

    async def stop_in_order() -> None:
        await signalled.wait()
        for task in extra:
            task.cancel()
        await asyncio.gather(*extra, return_exceptions=True)
        stop.set()

    stopping = asyncio.create_task(stop_in_order())
    try:
        await gateway.serve(stop)
    finally:
        stopping.cancel()
        for task in extra:
            task.cancel()


@app.command()
def run(config: ConfigPath, verbose: bool = False) -> None:
    """Run the gateway: both MQTT lanes, rules, incident store and dashboard."""
    _setup_logging(verbose)
    gateway = bootstrap(_load(config))
    http = gateway.config.http
    log.info("dashboard on http://%s:%d", http.host, http.port)
    asyncio.run(_serve_until_signalled(gateway))


@app.command()
def demo(
    config: ConfigPath = Path("examples/care-home.yaml"),
    data_dir: Annotated[Path, typer.Option(help="Wiped at every start")] = Path("var/demo"),
    http_port: int = 8080,
    mqtt_port: int = 1883,
) -> None:
    """The whole product on embedded defaults: amqtt broker, SQLite, a simulated care home, dashboard."""
    _setup_logging()
    demo_config = _demo_config(_load(config), data_dir, http_port, mqtt_port)
    shutil.rmtree(data_dir, ignore_errors=True)
    gateway = bootstrap(demo_config)
    gateway.open_store()
    password = secrets.token_urlsafe(12)
    gateway.users.create("admin", password, Role.ADMIN, language="zh-CN")
    asyncio.run(_demo(gateway, password))


def _demo_config(config: CarelineConfig, data_dir: Path, http_port: int, mqtt_port: int) -> CarelineConfig:
    # Put the sites where it is about 02:00 now, so the night-door rule shows whatever the hour.
    # Only the demo does this; timestamps stay true UTC.
    zone = zone_where_local_hour_is(2)
    sites = tuple(site.model_copy(update={"timezone": zone}) for site in config.sites)
    return config.model_copy(
        update={
            "broker": config.broker.model_copy(
                update={"url": None, "embedded_port": mqtt_port, "protocol": "3.1.1"}
            ),
            "storage": config.storage.model_copy(update={"url": f"sqlite:///{data_dir / 'careline.db'}"}),
            "http": config.http.model_copy(update={"host": "127.0.0.1", "port": http_port}),
            "sites": sites,
        }
    )


async def _demo(gateway: Gateway, password: str) -> None:
    from simulators.care_home import run_care_home

    http = gateway.config.http
    banner = (
        f"\n  Careline demo: open http://{http.host}:{http.port}  and log in as  admin / {password}\n"
        f"  Embedded MQTT broker on 127.0.0.1:{gateway.config.broker.port}; a simulated care home "
        "publishes alarms.\n  Sites are placed in a time zone where it is night now, so the "
        "night-door rule fires.\n  Ctrl-C stops.\n"
    )
    print(banner, flush=True)

    async def simulate() -> None:
        await asyncio.sleep(0.5)
        await gateway.wait_connected()
        bindings = device_registry(gateway.config).bindings()
        await run_care_home(gateway.config, bindings, "127.0.0.1", gateway.config.broker.port)

    simulation = asyncio.create_task(simulate())
    await _serve_until_signalled(gateway, simulation)


@config_app.command("check")
def config_check(path: Path) -> None:
    """Validate a configuration file; errors carry line numbers."""
    config = _load(path)
    typer.echo(
        f"{path}: OK ({len(config.sites)} sites, {len(config.residents)} residents, "
        f"{len(config.devices)} devices, {len(config.responders)} responders)"
    )


@db_app.command("upgrade")
def db_upgrade(config: ConfigPath) -> None:
    """Apply the incident store's migrations (the gateway also does this at start)."""
    cfg = _load(config)
    engine = make_engine(cfg.storage.url)
    upgrade(engine)
    engine.dispose()
    typer.echo("incident store is at the newest schema")


@user_app.command("add")
def user_add(
    config: ConfigPath,
    username: str,
    role: Role = Role.OPERATOR,
    language: str = "zh-CN",
    password_env: Annotated[str | None, typer.Option(help="Read the password from this variable")] = None,
) -> None:
    """Create a dashboard user (the first admin is made this way)."""
    cfg = _load(config)
    password = (
        os.environ.get(password_env, "")
        if password_env
        else typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    )
    engine = make_engine(cfg.storage.url)
    upgrade(engine)
    try:
        UserStore(engine, lambda: datetime.now(UTC), cfg.http.session_hours).create(
            username, password, role, language
        )
    except (UserExistsError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    typer.echo(f"user {username} ({role.value}) created")


@audit_app.command("verify")
def audit_verify(config: ConfigPath) -> None:
    """Recompute the audit trail's hash chain: exit 0 when intact, 1 naming the first broken entry
    (2 when the store cannot be read)."""
    cfg = _load(config)
    url = make_url(cfg.storage.url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        typer.echo(f"no incident store at {url.database}", err=True)
        raise typer.Exit(2)
    # Read only: a check of the evidence must not migrate or otherwise touch the store.
    engine = make_engine(cfg.storage.url)
    try:
        report = IncidentStore(engine, Directory(cfg), lambda: datetime.now(UTC)).audit_chain()
    except SQLAlchemyError as exc:
        typer.echo(f"cannot read the audit trail: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    if report.intact:
        typer.echo(f"audit trail intact: {report.verified} entries verified")
        return
    at = report.first_broken_at.isoformat() if report.first_broken_at else "?"
    typer.echo(
        f"audit trail BROKEN at entry #{report.first_broken_id} ({report.first_broken_action}, {at}): "
        f"{report.reason}; {report.verified} entries before it verified",
        err=True,
    )
    raise typer.Exit(1)


@simulate_app.command("care-home")
def simulate_care_home(config: ConfigPath, broker: str = "mqtt://127.0.0.1:1883", once: bool = False) -> None:
    """Publish the care-home scenario (alarms, then telemetry) to a broker."""
    from urllib.parse import urlsplit

    from simulators.care_home import run_care_home

    _setup_logging()
    cfg = _load(config)
    parts = urlsplit(broker)
    bindings = device_registry(cfg).bindings()
    asyncio.run(
        run_care_home(cfg, bindings, parts.hostname or "127.0.0.1", parts.port or 1883, forever=not once)
    )


@simulate_app.command("alarm")
def simulate_alarm(
    config: ConfigPath, device: str, kind: EventKind = EventKind.SOS, broker: str = "mqtt://127.0.0.1:1883"
) -> None:
    """Publish one alarm from one configured device."""
    from urllib.parse import urlsplit

    from simulators.care_home import mqtt_client, publish_alarm

    cfg = _load(config)
    binding = device_registry(cfg).by_id(device)
    if binding is None:
        typer.echo(f"no device {device!r} in {config}", err=True)
        raise typer.Exit(1)
    parts = urlsplit(broker)

    async def send() -> None:
        async with mqtt_client(
            parts.hostname or "127.0.0.1", parts.port or 1883, "careline-sim-alarm"
        ) as client:
            await publish_alarm(client, binding, kind)

    asyncio.run(send())


def main() -> None:
    try:
        app()
    except CarelineError as exc:
        typer.echo(f"careline: {exc}", err=True)
        sys.exit(1)
