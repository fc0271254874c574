"""`careline`: run the gateway, the demo, the simulators, and the admin chores."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import getpass
import itertools
import logging
import os
import random
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import httpx
import typer
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from careline.bootstrap import Gateway, bootstrap
from careline.broker_cli import broker_app, certs
from careline.services import INFLUXD, INFLUXD_HINT, InfluxDB1, influxd_installed
from common.errors import CarelineError, InvalidInputError
from dashboard.auth import Role, UserExistsError, UserStore
from devices.model import EventKind
from gateway.catalogue import normalize_language
from gateway.clock import zone_where_local_hour_is
from gateway.config import CarelineConfig, load_config
from gateway.directory import Directory, device_registry
from gateway.directory.changes import KINDS, ChangeSet, Kind
from gateway.directory.keysafe import KeySafeCipher, new_key
from gateway.directory.store import DirectoryStore
from gateway.directory.tables import TableKind, export_csv, parse_csv, template
from gateway.directory.transfer import DirectoryFile, decode_upload, describe, export_yaml, parse_yaml
from gateway.escalation.config import TwilioConfig
from gateway.incidents.db import make_engine, relaxed
from gateway.incidents.migrate import upgrade
from gateway.incidents.service import IncidentService
from gateway.incidents.store import IncidentStore
from gateway.telemetry.config import TelemetryConfig
from simulators.care_home import site_zones
from simulators.history import (
    HistorySettings,
    incident_lines,
    plan_history,
    plan_tests,
    telemetry_lines,
    write_incidents,
    write_telemetry,
)
from simulators.reassurance_history import write_reassurance_history
from simulators.rhythm import CareHomeRhythm
from simulators.twilio_standin import TwilioStandIn
from simulators.visits import write_visit_history

app = typer.Typer(
    help="Careline: elders' alarms from MQTT to an acknowledged incident.", no_args_is_help=True
)
config_app = typer.Typer(help="Check configuration files.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the incident store.", no_args_is_help=True)
user_app = typer.Typer(help="Manage dashboard users.", no_args_is_help=True)
simulate_app = typer.Typer(help="Publish simulated device traffic over real MQTT.", no_args_is_help=True)
audit_app = typer.Typer(help="Check the tamper-evident audit trail.", no_args_is_help=True)
directory_app = typer.Typer(
    help="Import, export and template the directory (sites, residents, devices, responders, policies).",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(simulate_app, name="simulate")
app.add_typer(directory_app, name="directory")
app.add_typer(broker_app, name="broker")
app.command("certs")(certs)

ConfigPath = Annotated[Path, typer.Option("--config", "-c", help="YAML configuration file")]
log = logging.getLogger("careline")


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    # One line per request to InfluxDB or Twilio would bury what matters.
    for chatty in ("httpx", "twilio.http_client"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


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


#: Where the demo's telemetry goes in its InfluxDB.
DEMO_DATABASE = "careline"
#: The environment variables holding the demo's Twilio credentials, made up at every start.
DEMO_TWILIO_SID_ENV, DEMO_TWILIO_TOKEN_ENV = (
    "CARELINE_DEMO_TWILIO_ACCOUNT_SID",
    "CARELINE_DEMO_TWILIO_AUTH_TOKEN",
)
DEMO_FROM_NUMBER = "+15005550006"
#: The demo places the day's reassurance calls this long after it is ready.
DEMO_REASSURANCE_AFTER_S = 10


@app.command()
def demo(
    config: ConfigPath = Path("examples/care-home.yaml"),
    data_dir: Annotated[Path, typer.Option(help="Wiped at every start")] = Path("var/demo"),
    http_port: int = 8080,
    mqtt_port: int = 1883,
    influx_port: Annotated[int, typer.Option(help="InfluxDB 1.x HTTP port (0: a free one)")] = 0,
    phone_port: Annotated[int, typer.Option(help="The simulated responders' phones (and Twilio)")] = 8090,
    history_days: Annotated[int, typer.Option(min=0, max=60, help="Days of past incidents")] = 7,
    seed: int = 7,
) -> None:
    """The whole product on embedded defaults: amqtt broker, SQLite, InfluxDB (when installed), a
    simulated care home with a few days of history, and the responders' phones."""
    _setup_logging()
    started = time.monotonic()
    base = _load(config)
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        influx = _start_influx(data_dir, influx_port)
        log.info("demo: InfluxDB %s after %.1f s", "up" if influx else "off", time.monotonic() - started)
        if influx is not None:
            stack.callback(influx.stop)
        phones = _start_phones(base, http_port, phone_port)
        stack.callback(phones.stop)
        demo_config = _demo_config(
            base,
            data_dir,
            http_port,
            mqtt_port,
            influx_url=influx.url if influx else None,
            twilio_url=phones.base_url,
        )
        gateway = bootstrap(demo_config)
        history = _write_history(gateway, influx, HistorySettings(days=history_days, seed=seed))
        log.info("demo: history written after %.1f s", time.monotonic() - started)
        gateway.open_store()
        password = secrets.token_urlsafe(12)
        gateway.users.create("admin", password, Role.ADMIN, language="zh-CN")
        # The district's carers sign in on their phones at /carer (docs/visits.md).
        for carer in ("homecarer-fang-li", "homecarer-tao-jun"):
            if any(r.id == carer for r in gateway.config.responders):
                gateway.users.create(carer, password, Role.CARER, language="zh-CN")
        banner = _banner(gateway, password, influx, phones, history)
        asyncio.run(_demo(gateway, banner, started, seed))


def _start_influx(data_dir: Path, port: int) -> InfluxDB1 | None:
    """A local InfluxDB 1.x for the demo's telemetry, killed with the demo; None (and why) without it."""
    if not influxd_installed():
        typer.echo(f"careline demo: telemetry is off: {INFLUXD} is missing; {INFLUXD_HINT}", err=True)
        return None
    influx = InfluxDB1(port=port or None, directory=data_dir / "influxdb", die_with_parent=True)
    try:
        influx.start()
        influx.create_database(DEMO_DATABASE)
    except (RuntimeError, OSError) as exc:
        influx.stop()
        typer.echo(f"careline demo: telemetry is off: InfluxDB did not start: {exc}", err=True)
        return None
    return influx


def _start_phones(config: CarelineConfig, http_port: int, phone_port: int) -> TwilioStandIn:
    """The local Twilio stand-in with the responders' phone page; credentials made up for this run."""
    sid, token = "AC" + secrets.token_hex(16), secrets.token_hex(16)
    os.environ[DEMO_TWILIO_SID_ENV], os.environ[DEMO_TWILIO_TOKEN_ENV] = sid, token
    book = {r.phone: r.name for r in config.responders if r.phone}
    # The residents' own phones answer their daily reassurance call (docs/reassurance.md).
    book.update({r.reassurance.phone: r.name for r in config.residents if r.reassurance is not None})
    phones = TwilioStandIn(
        sid, token, port=phone_port, gateway_url=f"http://127.0.0.1:{http_port}", phone_book=book
    )
    try:
        phones.start()
    except RuntimeError:
        typer.echo(f"careline demo: port {phone_port} is in use; choose another with --phone-port", err=True)
        raise typer.Exit(1) from None
    return phones


def _demo_config(
    config: CarelineConfig,
    data_dir: Path,
    http_port: int,
    mqtt_port: int,
    *,
    influx_url: str | None = None,
    twilio_url: str | None = None,
) -> CarelineConfig:
    # Put the sites where it is about 02:00 now, so the night-door rule shows whatever the hour.
    # Only the demo does this; timestamps stay true UTC.
    zone = zone_where_local_hour_is(2)
    sites = tuple(site.model_copy(update={"timezone": zone}) for site in config.sites)
    telemetry = (
        TelemetryConfig(
            backend="influxdb1",
            url=influx_url,
            database=DEMO_DATABASE,
            spool_dir=data_dir / "telemetry-spool",
            flush_interval_ms=500,
        )
        if influx_url
        else config.telemetry.model_copy(update={"spool_dir": data_dir / "telemetry-spool"})
    )
    escalation = config.escalation.model_copy(
        update={
            "public_url": f"http://127.0.0.1:{http_port}",
            "smtp": None,
            "webhooks": {},
            "twilio": TwilioConfig(
                account_sid_env=DEMO_TWILIO_SID_ENV,
                auth_token_env=DEMO_TWILIO_TOKEN_ENV,
                from_number=DEMO_FROM_NUMBER,
                api_base_url=twilio_url,
                timeout_s=5,
            )
            if twilio_url
            else None,
        }
    )
    return config.model_copy(
        update={
            "broker": config.broker.model_copy(
                update={"url": None, "embedded_port": mqtt_port, "protocol": "3.1.1"}
            ),
            "storage": config.storage.model_copy(update={"url": f"sqlite:///{data_dir / 'careline.db'}"}),
            "http": config.http.model_copy(update={"host": "127.0.0.1", "port": http_port}),
            "sites": sites,
            "telemetry": telemetry,
            "escalation": escalation,
        }
    )


def _write_history(gateway: Gateway, influx: InfluxDB1 | None, settings: HistorySettings) -> str:
    """The past days, before anything else is written, so the audit trail runs in time order."""
    if settings.days == 0:
        return "no history"
    upgrade(gateway.database)
    config, now = gateway.config, datetime.now(UTC)
    bindings = device_registry(config).bindings()
    planned = plan_history(bindings, [r.id for r in config.responders], now, settings)
    directory = Directory(config)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="history") as pool:
        # The telemetry (InfluxDB works on its own core) while the incidents are committed one by one.
        points = (
            pool.submit(
                write_telemetry,
                influx.url,
                DEMO_DATABASE,
                itertools.chain(
                    telemetry_lines(
                        CareHomeRhythm(bindings, site_zones(config), random.Random(settings.seed)),
                        now,
                        settings,
                    ),
                    incident_lines(planned),
                ),
            )
            if influx is not None
            else None
        )
        # A made-up past, wiped at the next start: its commits need not each wait for the disk.
        written = write_incidents(
            lambda clock: IncidentStore(relaxed(gateway.database), directory, clock.now),
            planned,
            # Four weeks of button tests, like the visits: the quality page's weekly compliance is monthly.
            plan_tests(bindings, now, dataclasses.replace(settings, days=max(settings.days, 28))),
        )
        visits = write_visit_history(
            lambda clock: IncidentStore(relaxed(gateway.database), directory, clock.now),
            config,
            now,
            days=max(settings.days, 28),
            seed=settings.seed,
        )
        try:
            point_count = points.result() if points is not None else 0
        except httpx.HTTPError as exc:
            log.warning("past telemetry not written: %s", exc)
            point_count = 0
    calls = write_reassurance_history(gateway.database, config, now, settings.days, settings.seed)
    return (
        f"{written} past incidents, {calls} daily reassurance calls and {point_count} telemetry points "
        f"over the last {settings.days} days; {visits.past} past home visits, {visits.today} today"
    )


def _banner(
    gateway: Gateway, password: str, influx: InfluxDB1 | None, phones: TwilioStandIn, history: str
) -> str:
    http = gateway.config.http
    telemetry = (
        f"InfluxDB 1.x on {influx.url} (database {DEMO_DATABASE})"
        if influx
        else f"off ({INFLUXD} is missing: {INFLUXD_HINT})"
    )
    return (
        f"\n  Careline demo: open http://{http.host}:{http.port}  and log in as  admin / {password}\n"
        f"  Phones of responders and residents (SMS and calls arrive here; reply, press 1 or 2, or let a "
        f"call ring out): {phones.base_url}/phone\n"
        f"  The district's daily reassurance calls are placed {DEMO_REASSURANCE_AFTER_S} s after start.\n"
        f"  Telemetry: {telemetry}\n"
        f"  History: {history}\n"
        f"  Carers' phone page: http://{http.host}:{http.port}/carer  as  homecarer-fang-li / {password}\n"
        f"  Embedded MQTT broker on 127.0.0.1:{gateway.config.broker.port}; a simulated care home "
        "publishes alarms and telemetry.\n  Sites are placed in a time zone where it is night now, so "
        "the night-door rule fires.\n  Ctrl-C stops.\n"
    )


async def _demo(gateway: Gateway, banner: str, started: float, seed: int) -> None:
    from simulators.care_home import run_care_home

    async def simulate() -> None:
        await asyncio.sleep(0.5)
        await gateway.wait_connected()
        print(banner + f"  Ready in {time.monotonic() - started:.1f} s.\n", flush=True)
        # The district's daily reassurance calls now, not at each resident's configured time.
        gateway.reassurance.bring_forward(datetime.now(UTC) + timedelta(seconds=DEMO_REASSURANCE_AFTER_S))
        bindings = device_registry(gateway.config).bindings()
        await run_care_home(gateway.config, bindings, "127.0.0.1", gateway.config.broker.port, seed=seed)

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
        # A PostgreSQL database that exists but was never migrated holds no store either.
        if url.get_backend_name() != "sqlite" and not inspect(engine).has_table("audit_log"):
            typer.echo(f"no incident store at {url.render_as_string(hide_password=True)}", err=True)
            raise typer.Exit(2)
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


@contextlib.contextmanager
def _directory(cfg: CarelineConfig) -> Iterator[DirectoryStore]:
    """The directory store on the configured database, migrated and seeded as a gateway would at start."""
    engine = make_engine(cfg.storage.url, busy_timeout_s=cfg.storage.busy_timeout_s)
    try:
        upgrade(engine)
        incidents = IncidentStore(engine, Directory(cfg), lambda: datetime.now(UTC))
        store = DirectoryStore(
            IncidentService(incidents), cfg, KeySafeCipher.from_env(cfg.storage.directory_key_env)
        )
        store.seed(cfg)
        yield store
    finally:
        engine.dispose()


def _who() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _print_refusal(exc: InvalidInputError, source: str, parsed: DirectoryFile | None = None) -> None:
    problems = parsed.locate(exc.problems) if parsed is not None else exc.problems
    typer.echo(f"{source}: refused, nothing was applied:", err=True)
    for found in problems:
        typer.echo(f"  {describe(found)}", err=True)


def _read_import(path: Path, kind: TableKind | None) -> DirectoryFile:
    try:
        data = path.read_bytes()
    except OSError as exc:
        typer.echo(f"{path}: cannot read: {exc.strerror}", err=True)
        raise typer.Exit(1) from None
    try:
        if kind is not None or path.suffix.lower() == ".csv":
            return parse_csv(data, path.name, kind)
        return parse_yaml(decode_upload(data), path.name)
    except InvalidInputError as exc:
        _print_refusal(exc, path.name)
        raise typer.Exit(1) from None


def _print_changes(changes: ChangeSet) -> None:
    for kind, line in zip(KINDS, changes.summary("en"), strict=True):
        typer.echo(f"  {line}")
        for verb, ids in changes.of(kind).items():
            if ids:
                shown = ", ".join(ids[:20]) + (f" … and {len(ids) - 20} more" if len(ids) > 20 else "")
                typer.echo(f"      {verb}: {shown}")


@directory_app.command("import")
def directory_import(
    file: Path,
    config: ConfigPath,
    yes: Annotated[
        bool, typer.Option("--yes", help="Apply the changes (without it, only show them)")
    ] = False,
    kind: Annotated[
        TableKind | None, typer.Option(help="What a CSV file lists (else told by its header)")
    ] = None,
) -> None:
    """Show what importing FILE (YAML of the directory sections, or CSV of residents or devices) would
    change; with --yes, apply it. Entries a listed kind leaves out are retired or discharged."""
    cfg = _load(config)
    parsed = _read_import(file, kind)
    with _directory(cfg) as store:
        try:
            plan = store.plan(store.importing(parsed.incoming, None), f"cli:{_who()}", source=file.name)
        except InvalidInputError as exc:
            _print_refusal(exc, file.name, parsed)
            raise typer.Exit(1) from None
        typer.echo(f"{file.name}: {'applying' if yes else 'would apply'}:")
        _print_changes(plan.changes)
        if not yes:
            typer.echo("nothing was applied; run again with --yes to apply")
            return
        store.commit(plan)
        typer.echo("applied (audited); a running gateway follows the directory in its database")


@directory_app.command("export")
def directory_export(
    config: ConfigPath,
    kind: Annotated[TableKind | None, typer.Option(help="Only residents or devices")] = None,
    format: Annotated[str, typer.Option("--format", help="yaml, or csv (with --kind)")] = "yaml",
    language: Annotated[str, typer.Option(help="CSV headers and words: en or zh-CN")] = "en",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (else standard output)")
    ] = None,
) -> None:
    """Write the directory as YAML (imports back to the same state) or one kind as CSV."""
    cfg = _load(config)
    if format not in ("yaml", "csv") or (format == "csv" and kind is None):
        typer.echo("give --format yaml, or --format csv with --kind residents|devices", err=True)
        raise typer.Exit(2)
    with _directory(cfg) as store:
        if format == "csv":
            assert kind is not None
            data = export_csv(kind, store.export_rows([kind])[kind], normalize_language(language))
        else:
            kinds: list[Kind] = list(KINDS) if kind is None else [kind]
            data = export_yaml(store.export_rows(kinds), exported_by=f"cli:{_who()}", at=store.now()).encode()
    _write_out(data, output)


@directory_app.command("template")
def directory_template(
    kind: Annotated[TableKind, typer.Option(help="residents or devices")],
    language: Annotated[str, typer.Option(help="Headers in en or zh-CN")] = "zh-CN",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """An empty CSV with the headers of residents or devices, to fill in a spreadsheet."""
    _write_out(template(kind, normalize_language(language)), output)


@directory_app.command("new-key")
def directory_new_key() -> None:
    """Print a new Fernet key for storage.directory_key_env (keep it like a password)."""
    typer.echo(new_key())


def _write_out(data: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    output.write_bytes(data)
    typer.echo(f"wrote {output} ({len(data)} bytes)")


def main() -> None:
    try:
        app()
    except CarelineError as exc:
        typer.echo(f"careline: {exc}", err=True)
        sys.exit(1)
