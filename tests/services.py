"""Real services for tests: started on 127.0.0.1, on free ports, in temporary directories, and stopped.

The process-launching code (and InfluxDB 1.x, which the demo runs too) lives in `careline/services.py`;
here are the servers only the tests run, and the helpers that check no process outlives the tests.
Nothing here installs anything; `make test` installs the programs these helpers run.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from careline.services import (
    INFLUXD,
    InfluxDB1,
    ServerProcess,
    accepts_connections,
    free_port,
    http_status,
    tail,
)
from gateway.broker_identity.broker_files import DYNSEC_FILE, PLUGIN, Login, dynsec_document
from gateway.broker_identity.certs import CertFiles

__all__ = [
    "CHROMIUM",
    "CHROMIUM_PRESENT",
    "INFLUXD",
    "MOSQUITTO",
    "SESSION_MARKER",
    "ConfiguredMosquitto",
    "InfluxDB1",
    "Mosquitto",
    "MosquittoDynsec",
    "PostgreSQL",
    "ServerProcess",
    "VictoriaMetrics",
    "alive",
    "children_of",
    "command_line",
    "free_port",
    "parent_of",
    "processes_marked",
]

MOSQUITTO = Path("/usr/sbin/mosquitto")


class Mosquitto(ServerProcess):
    """A real Mosquitto broker with persistence, in its own temporary directory.

    `restart()` keeps the port and the persistence directory, so persistent sessions and their queued
    messages survive; `stop()` waits for Mosquitto to write its persistence file.
    """

    name = "mosquitto"
    scheme = "mqtt"
    default_startup_timeout_s = 10.0

    def __init__(
        self,
        *,
        port: int | None = None,
        startup_timeout_s: float | None = None,
        extra_config: Sequence[str] = (),
    ) -> None:
        super().__init__(port=port, startup_timeout_s=startup_timeout_s)
        #: Further mosquitto.conf lines, e.g. settings of the shipped deploy/mosquitto/mosquitto.conf.
        self._extra_config = list(extra_config)

    @property
    def config_path(self) -> Path:
        return self._dir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self._dir / "mosquitto.log"

    def _command(self) -> list[str]:
        if not MOSQUITTO.exists():
            raise RuntimeError(f"{MOSQUITTO} is missing: `make test` installs it (Debian package mosquitto)")
        return [str(MOSQUITTO), "-c", str(self.config_path)]

    def _ready(self) -> bool:
        return accepts_connections(self.host, self._port)

    def _prepare(self) -> None:
        lines = [
            f"listener {self._port} {self.host}",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self._dir}/",
            "autosave_interval 1",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
            "set_tcp_nodelay true",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            # Started as root, Mosquitto would switch to the `mosquitto` user, which cannot write our
            # temporary directory; staying the current user keeps the files ours.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            *self._extra_config,
        ]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def _logs(self) -> str:
        return f"--- output ---\n{super()._logs()}\n--- {self.log_path} ---\n{tail(self.log_path)}"


class MosquittoDynsec(Mosquitto):
    """Mosquitto with the dynamic-security plugin, no anonymous access, and TLS when `certs` are given
    (`gateway.broker_identity.certs.make_certs`): an admin client (`admin`) for provisioning and the
    gateway's client (`gateway`), each with a fresh password; every other login is made through the plugin.
    """

    def __init__(self, *, certs: CertFiles | None = None, extra_config: Sequence[str] = ()) -> None:
        super().__init__(extra_config=extra_config)
        self.certs = certs
        self.scheme = "mqtts" if certs else "mqtt"
        self.admin = Login("careline-admin", secrets.token_urlsafe(16))
        self.gateway = Login("careline-gateway", secrets.token_urlsafe(16))

    @property
    def dynsec_path(self) -> Path:
        return self._dir / DYNSEC_FILE

    def _prepare(self) -> None:
        super()._prepare()
        if not self.dynsec_path.exists():  # a restart keeps what the plugin saved
            self.dynsec_path.write_text(
                json.dumps(dynsec_document(self.admin, self.gateway)), encoding="utf-8"
            )
        lines = self.config_path.read_text(encoding="utf-8").splitlines()
        lines = [line for line in lines if line != "allow_anonymous true"]
        tls = []
        if self.certs is not None:
            tls = [
                f"cafile {self.certs.ca_cert}",
                f"certfile {self.certs.server_cert}",
                f"keyfile {self.certs.server_key}",
                "tls_version tlsv1.2",
            ]
        secured = [
            "per_listener_settings false",
            "allow_anonymous false",
            f"plugin {PLUGIN}",
            f"plugin_opt_config_file {self.dynsec_path}",
        ]
        self.config_path.write_text(
            "\n".join([*secured, lines[0], *tls, *lines[1:]]) + "\n", encoding="utf-8"
        )


class ConfiguredMosquitto(ServerProcess):
    """Mosquitto started with a configuration written elsewhere (`careline broker init`), unchanged."""

    name = "mosquitto"
    default_startup_timeout_s = 10.0

    def __init__(self, config_path: Path, port: int) -> None:
        super().__init__(port=port)
        self.config_path = config_path

    def _command(self) -> list[str]:
        return [str(MOSQUITTO), "-c", str(self.config_path)]

    def _ready(self) -> bool:
        return accepts_connections(self.host, self._port)


class VictoriaMetrics(ServerProcess):
    """A real VictoriaMetrics (Debian's 1.79.5), which accepts InfluxDB v2 writes at `/api/v2/write`.

    Read back with `flush()` then `export()`: metric names are `<measurement>_<field>`, times in ms.
    Points older than the one-month retention are refused, so write recent timestamps.
    """

    name = "victoria-metrics"

    def _command(self) -> list[str]:
        program = shutil.which("victoria-metrics")
        if program is None:
            raise RuntimeError("victoria-metrics is missing: `make test` installs it (Debian package)")
        return [
            program,
            f"-httpListenAddr={self.host}:{self._port}",
            f"-storageDataPath={self._dir}/data",
            "-retentionPeriod=1",
            "-loggerLevel=ERROR",
        ]

    def _ready(self) -> bool:
        return http_status(f"{self.url}/health") == 200

    def flush(self) -> None:
        """Make what was written so far searchable (VictoriaMetrics buffers for about a second)."""
        status = http_status(f"{self.url}/internal/force_flush", timeout_s=10)
        if status != 200:
            raise RuntimeError(f"force_flush answered {status}")

    def export(self, match: str = '{__name__!=""}') -> list[dict[str, object]]:
        """Every series matching `match`, as the JSON lines of `/api/v1/export`."""
        import json
        import urllib.parse
        import urllib.request

        query = urllib.parse.urlencode({"match[]": match})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=10) as response:
            text = response.read().decode("utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def _postgres_bin() -> Path | None:
    """Debian's newest PostgreSQL server programs (/usr/lib/postgresql/<major>/bin)."""
    found = [path for path in Path("/usr/lib/postgresql").glob("*/bin") if (path / "postgres").exists()]
    return max(found, key=lambda path: int(path.parent.name), default=None)


class PostgreSQL(ServerProcess):
    """A real PostgreSQL (Debian's), its cluster made with initdb in the temporary directory.

    It listens on 127.0.0.1 only (and on a Unix socket inside its directory, so it never meets Debian's
    own cluster's socket in /var/run/postgresql), with trust authentication for the superuser
    `careline`. fsync, synchronous commits and full-page writes are off: the tests do not cut the power,
    and durability across a power loss is tested on SQLite (docs/postgresql.md).

    PostgreSQL refuses to run as root: as root, initdb and the server run as Debian's `postgres` user
    (the package creates it), and the directory is handed to that user.
    """

    name = "postgresql"
    scheme = "postgresql+psycopg"
    superuser = "careline"
    # SIGTERM is PostgreSQL's "smart" shutdown, which waits for every client to leave; SIGINT ("fast")
    # ends the sessions and checkpoints.
    stop_signal = signal.SIGINT

    def __init__(self, *, port: int | None = None, startup_timeout_s: float | None = None) -> None:
        super().__init__(port=port, startup_timeout_s=startup_timeout_s)
        self._initialised = False

    @property
    def data_dir(self) -> Path:
        return self._dir / "data"

    def url_of(self, database: str) -> str:
        return f"{self.scheme}://{self.superuser}@{self.host}:{self._port}/{database}"

    def _user(self) -> str | None:
        if os.getuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError(
                "running as root, PostgreSQL needs the `postgres` user: `make test` installs the "
                "Debian package postgresql, which creates it"
            ) from None
        return "postgres"

    def _command(self) -> list[str]:
        programs = _postgres_bin()
        if programs is None:
            raise RuntimeError("PostgreSQL is missing: `make test` installs it (Debian package postgresql)")
        return [
            str(programs / "postgres"),
            "-D",
            str(self.data_dir),
            "-c",
            f"listen_addresses={self.host}",
            "-c",
            f"port={self._port}",
            "-c",
            f"unix_socket_directories={self._dir}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            # Every test's gateway has its pools (writer, readers, the directory's), and a worker's
            # tests may overlap by a moment while the previous one's connections close.
            "-c",
            "max_connections=400",
            "-c",
            "log_min_messages=warning",
        ]

    def _prepare(self) -> None:
        if self._initialised:
            return
        programs = _postgres_bin()
        assert programs is not None  # _command() ran first
        user = self._user()
        if user is not None:
            # The directory is the server's (it checks); root can still remove it.
            entry = pwd.getpwnam(user)
            os.chown(self._dir, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [
                str(programs / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.superuser,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            check=True,
            cwd=self._dir,
            user=user,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._initialised = True

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self._dsn("postgres"), connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    def _dsn(self, database: str) -> str:
        return f"host={self.host} port={self._port} user={self.superuser} dbname={database}"

    def admin(self, statement: str) -> None:
        """Run one statement outside a transaction (CREATE / DROP DATABASE) in the `postgres` database."""
        import psycopg

        with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
            connection.execute(statement)  # type: ignore[arg-type]  # ours, not a user's

    def create_database(self, name: str) -> str:
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url_of(name)

    def dump(self, database: str) -> bytes:
        """pg_dump of one database, schema and rows, as plain SQL."""
        programs = _postgres_bin()
        assert programs is not None
        return subprocess.run(
            [str(programs / "pg_dump"), "--no-owner", self._dsn(database)],
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        ).stdout

    def drop_database(self, name: str) -> None:
        # FORCE: a pool the test left open (or a gateway's last reader) must not keep the database.
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- processes -------------------------------------------------------------------------------------------

#: Set at the start of a test session (tests/conftest.py); every process the tests start inherits it.
SESSION_MARKER = "CARELINE_TEST_SESSION"


def _proc_read(pid: int, name: str) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return None  # gone meanwhile, or not ours to read


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def parent_of(pid: int) -> int | None:
    stat = _proc_read(pid, "stat")
    if stat is None:
        return None
    # The command name (in brackets) may hold spaces; the fields after its closing bracket do not.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return None if fields[0] == b"Z" else int(fields[1])


def children_of(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is `pid`."""
    return [child for child in _pids() if parent_of(child) == pid]


def alive(pid: int) -> bool:
    return parent_of(pid) is not None


def command_line(pid: int) -> str:
    raw = _proc_read(pid, "cmdline") or b""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def processes_marked(marker: str) -> list[int]:
    """Live processes other than this one whose environment carries ``SESSION_MARKER=<marker>``."""
    wanted = f"{SESSION_MARKER}={marker}".encode()
    marked = []
    for pid in _pids():
        environ = _proc_read(pid, "environ")
        if pid != os.getpid() and environ and wanted in environ.split(b"\0") and alive(pid):
            marked.append(pid)
    return marked


#: Debian's Chromium (`make test` installs it); Playwright drives it, never a browser it downloads itself.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_PRESENT = Path(CHROMIUM).exists()
