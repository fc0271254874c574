"""`careline`: run the gateway, the demo, the simulators, and the admin chores."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from careline.bootstrap import Gateway, bootstrap
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
from gateway.incidents.db import make_engine
from gateway.incidents.migrate import upgrade
from gateway.incidents.service import IncidentService
from gateway.incidents.store import IncidentStore

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
