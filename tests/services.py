"""Real services for tests: started on 127.0.0.1, on free ports, in temporary directories, and stopped.

Nothing here installs anything; `make test` installs the programs these helpers run.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

MOSQUITTO = Path("/usr/sbin/mosquitto")
_DEFAULT_MQTT_PORTS = frozenset({1883, 8883})


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (never a well-known MQTT port)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _DEFAULT_MQTT_PORTS:
            return port


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


INFLUXD = Path("/usr/bin/influxd")


def _http_status(url: str, timeout_s: float = 0.5) -> int | None:
    """Status of a GET on `url`, or None when nothing answers (stdlib only: this module installs nothing)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


class _ServerProcess(ABC):
    """A server program on a free port of 127.0.0.1 with its data in a temporary directory.

    Use it as a context manager, or call `start()`, `stop()` and `restart()` yourself; `restart()` keeps the
    port and the data directory, so what the server stored survives it, as it would survive a real outage.
    Subclasses say how to start the program (`_command()`), what to write before each start (`_prepare()`)
    and when it is ready (`_ready()`); `name` names it in messages and in its files.
    """

    host = "127.0.0.1"
    name = "server"
    scheme = "http"
    default_startup_timeout_s = 20.0

    def __init__(self, *, port: int | None = None, startup_timeout_s: float | None = None) -> None:
        self._port = port if port is not None else free_port()
        self._startup_timeout_s = (
            self.default_startup_timeout_s if startup_timeout_s is None else startup_timeout_s
        )
        self._dir = Path(tempfile.mkdtemp(prefix=f"careline-{self.name}-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self._port}"

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def output_path(self) -> Path:
        """What the program prints (for Mosquitto: before its log file is open, e.g. bad config)."""
        return self._dir / f"{self.name}.out"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @abstractmethod
    def _command(self) -> list[str]:
        """The program and its arguments; raises when the program is missing."""

    def _prepare(self) -> None:  # noqa: B027 (a hook: not every server writes configuration)
        """Write configuration files before each start."""

    @abstractmethod
    def _ready(self) -> bool:
        """True once the server answers."""

    def _logs(self) -> str:
        return _tail(self.output_path)

    def start(self) -> None:
        if self.running:
            return
        command = self._command()
        if _accepts_connections(self.host, self._port):
            raise RuntimeError(f"cannot start {self.name}: {self.host}:{self._port} is already in use")
        self._prepare()
        with self.output_path.open("ab") as output:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, cwd=self._dir
            )
        self._wait_until_ready()

    def stop(self) -> None:
        """SIGTERM and wait, so the server writes and closes its files (Mosquitto: persistence) first."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop the server and delete its temporary directory."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                self._process = None
                raise RuntimeError(f"{self.name} exited with status {code}:\n{self._logs()}")
            if self._ready():
                return
            time.sleep(0.02)
        with contextlib.suppress(Exception):
            self.stop()
        raise RuntimeError(
            f"{self.name} was not ready on {self.url} within {self._startup_timeout_s:g} s:\n{self._logs()}"
        )


class Mosquitto(_ServerProcess):
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
        return _accepts_connections(self.host, self._port)

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
        return f"--- output ---\n{super()._logs()}\n--- {self.log_path} ---\n{_tail(self.log_path)}"


class InfluxDB1(_ServerProcess):
    """A real InfluxDB 1.x (Debian's 1.6.7: `/write` and InfluxQL `/query`, no v2 API).

    Every listener is on 127.0.0.1 (HTTP on `port`, the backup RPC service on a second free port);
    meta, data and WAL live in the temporary directory; no usage reporting, no `_internal` monitoring.
    """

    name = "influxdb1"

    def __init__(self, *, port: int | None = None, startup_timeout_s: float = 20.0) -> None:
        super().__init__(port=port, startup_timeout_s=startup_timeout_s)
        self._rpc_port = free_port()

    @property
    def config_path(self) -> Path:
        return self._dir / "influxdb.conf"

    def _command(self) -> list[str]:
        if not INFLUXD.exists():
            raise RuntimeError(f"{INFLUXD} is missing: `make test` installs it (Debian package influxdb)")
        return [str(INFLUXD), "-config", str(self.config_path)]

    def _ready(self) -> bool:
        return _http_status(f"{self.url}/ping") == 204

    def _prepare(self) -> None:
        lines = [
            "reporting-disabled = true",
            f'bind-address = "{self.host}:{self._rpc_port}"',
            "[meta]",
            f'  dir = "{self._dir}/meta"',
            "[data]",
            f'  dir = "{self._dir}/data"',
            f'  wal-dir = "{self._dir}/wal"',
            "  query-log-enabled = false",
            "[monitor]",
            "  store-enabled = false",
            "[http]",
            f'  bind-address = "{self.host}:{self._port}"',
            "  log-enabled = false",
            "[continuous_queries]",
            "  enabled = false",
            "[logging]",
            '  level = "warn"',
        ]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def query(self, q: str, *, db: str | None = None) -> dict[str, object]:
        """Run one InfluxQL statement (POST, so CREATE/DROP work too) and return the decoded JSON."""
        import json
        import urllib.parse
        import urllib.request

        params = {"q": q, **({"db": db} if db else {})}
        body = urllib.parse.urlencode(params).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=body, timeout=10) as response:
            result: dict[str, object] = json.loads(response.read())
            return result

    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"')


class VictoriaMetrics(_ServerProcess):
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
        return _http_status(f"{self.url}/health") == 200

    def flush(self) -> None:
        """Make what was written so far searchable (VictoriaMetrics buffers for about a second)."""
        status = _http_status(f"{self.url}/internal/force_flush", timeout_s=10)
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
