"""`careline broker init` and `careline certs`: a secured Mosquitto for per-device logins
(docs/broker-identity.md)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from gateway.broker_identity.broker_files import DYNSEC_FILE, PLUGIN, Listener, Login, write_broker_files
from gateway.broker_identity.certs import make_certs

broker_app = typer.Typer(help="Set up a Mosquitto broker with per-device logins.", no_args_is_help=True)

Directory = Annotated[Path, typer.Option("--dir", help="Where the files are written")]


def _login(username: str, password_env: str | None, what: str) -> tuple[Login, bool]:
    """The login, and whether its password was generated (then it is printed, once)."""
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            typer.echo(f"environment variable {password_env} ({what}'s password) is not set", err=True)
            raise typer.Exit(1)
        return Login(username, password), False
    return Login(username, secrets.token_urlsafe(32)), True


@broker_app.command("init")
def broker_init(
    directory: Directory,
    certs: Annotated[
        Path | None, typer.Option(help="ca.crt, server.crt, server.key (`careline certs`); default DIR/certs")
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8883,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: every address)")] = None,
    admin_username: str = "careline-admin",
    admin_password_env: Annotated[str | None, typer.Option(help="Else a password is generated")] = None,
    gateway_username: str = "careline-gateway",
    gateway_password_env: Annotated[str | None, typer.Option(help="Else a password is generated")] = None,
    run_as: Annotated[
        str | None, typer.Option(help="The user Mosquitto runs as when started as root (`user`)")
    ] = None,
    plugin: Annotated[
        Path, typer.Option(help="The dynamic-security plugin (Debian's path by default)")
    ] = PLUGIN,
    force: Annotated[bool, typer.Option(help="Overwrite an existing dynamic-security.json")] = False,
) -> None:
    """Write mosquitto.conf (dynamic-security plugin, TLS listener, no anonymous access) and the plugin's
    first dynamic-security.json: the provisioning admin and the gateway's login, passwords only hashed."""
    if (directory / DYNSEC_FILE).exists() and not force:
        typer.echo(
            f"{directory / DYNSEC_FILE} exists and holds the broker's logins; --force replaces it", err=True
        )
        raise typer.Exit(1)
    cert_dir = (certs or directory / "certs").resolve()
    needed = [cert_dir / name for name in ("ca.crt", "server.crt", "server.key")]
    missing = [str(path) for path in needed if not path.exists()]
    if missing:
        typer.echo(f"missing {', '.join(missing)}: run `careline certs --dir {cert_dir}` first", err=True)
        raise typer.Exit(1)
    admin, admin_made = _login(admin_username, admin_password_env, "the admin")
    gateway, gateway_made = _login(gateway_username, gateway_password_env, "the gateway")
    listener = Listener(port=port, host=host, cafile=needed[0], certfile=needed[1], keyfile=needed[2])
    extra = (f"user {run_as}",) if run_as else ()
    if not plugin.exists():
        typer.echo(f"{plugin} is missing: give the dynamic-security plugin's path with --plugin", err=True)
        raise typer.Exit(1)
    config, dynsec = write_broker_files(directory, listener, admin, gateway, plugin=plugin, extra=extra)
    typer.echo(f"wrote {config} and {dynsec}")
    typer.echo(f"start the broker: mosquitto -c {config}")
    for login, made in ((admin, admin_made), (gateway, gateway_made)):
        if made:
            typer.echo(f"password of {login.username} (shown once, kept only hashed): {login.password}")
    typer.echo(
        "\nin careline.yaml:\n"
        "broker:\n"
        f"  url: mqtts://<this broker's name>:{port}\n"
        f"  username: {gateway.username}\n"
        "  password_env: CARELINE_MQTT_PASSWORD\n"
        f"  tls: {{ca_file: {needed[0]}}}\n"
        "  identity:\n"
        "    enabled: true\n"
        f"    admin_username: {admin.username}\n"
        "    admin_password_env: CARELINE_DYNSEC_ADMIN_PASSWORD"
    )


def certs(
    directory: Directory,
    name: Annotated[
        list[str] | None, typer.Option("--name", help="A name or address devices use (repeatable)")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing CA")] = False,
) -> None:
    """A lab CA and a broker certificate (localhost, 127.0.0.1 and every --name). For a closed lab and
    tests; production uses a certificate from a real CA (docs/broker-identity.md)."""
    if (directory / "ca.key").exists() and not force:
        typer.echo(
            f"{directory / 'ca.key'} exists; --force makes a new CA (every device must trust it)", err=True
        )
        raise typer.Exit(1)
    files = make_certs(directory, tuple(name or ()))
    typer.echo(
        f"wrote {files.ca_cert}, {files.server_cert}, {files.server_key} (and {files.ca_key}: keep it)"
    )
    typer.echo(f"devices and the gateway trust {files.ca_cert}")
