"""Real servers started on 127.0.0.1 on free ports: the demo's InfluxDB, and the tests' services.

`ServerProcess` starts a program with its data in a directory (a temporary one unless given), waits
until it answers, and stops it with SIGTERM so it closes its files. With `die_with_parent` the kernel
kills the program when the process that started it dies (`PR_SET_PDEATHSIG`), so a demo killed with
SIGKILL leaves no server behind. Nothing here installs anything: `make test` and `make demo` do.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from common.net import free_port

__all__ = [
    "INFLUXD",
    "INFLUXD_HINT",
    "InfluxDB1",
    "ServerProcess",
    "dies_with_this_process",
    "free_port",
    "influxd_installed",
]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: What to run when `influxd` is missing (the influx part of the system-deps script).
INFLUXD_HINT = "install it with `./scripts/install-system-deps.sh influxdb` (Debian package influxdb)"


def accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


#: Debian's `influxd`; CARELINE_INFLUXD names another (the tests name a missing one).
INFLUXD = Path(os.environ.get("CARELINE_INFLUXD", "/usr/bin/influxd"))


def influxd_installed() -> bool:
    return INFLUXD.exists()


def _death_signal_setter(parent_pid: int) -> Callable[[], None]:
    """A `preexec_fn`: in the child, before exec, ask Linux for SIGKILL when the parent dies. It fires
    when the parent's thread that forked ends, so start servers from a thread that lives as long as the
    process (the main thread). If the parent died before the request took hold, give up at once."""

    def set_death_signal() -> None:
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)

    return set_death_signal


def dies_with_this_process() -> Callable[[], None]:
    """A `preexec_fn` for `subprocess.Popen`: the program gets SIGKILL when this process dies (the same
    request `ServerProcess(die_with_parent=True)` makes), e.g. for a gateway a benchmark starts itself."""
    return _death_signal_setter(os.getpid())


def http_status(url: str, timeout_s: float = 0.5) -> int | None:
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


class ServerProcess(ABC):
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
    #: What `stop()` sends; a server whose SIGTERM waits for its clients to leave (PostgreSQL) says otherwise.
    stop_signal = signal.SIGTERM

    def __init__(
        self,
        *,
        port: int | None = None,
        startup_timeout_s: float | None = None,
        directory: Path | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self._port = port if port is not None else free_port()
        self._startup_timeout_s = (
            self.default_startup_timeout_s if startup_timeout_s is None else startup_timeout_s
        )
        #: Given (the demo's data dir): kept by `cleanup()`; otherwise a temporary directory, deleted.
        self._owns_dir = directory is None
        if directory is None:
            self._dir = Path(tempfile.mkdtemp(prefix=f"careline-{self.name}-"))
        else:
            directory.mkdir(parents=True, exist_ok=True)
            self._dir = directory.resolve()
        self._die_with_parent = die_with_parent
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
        return tail(self.output_path)

    def _user(self) -> str | None:
        """The user to run the program as (None: this process's); PostgreSQL refuses to run as root."""
        return None

    def start(self) -> None:
        if self.running:
            return
        command = self._command()
        if accepts_connections(self.host, self._port):
            raise RuntimeError(f"cannot start {self.name}: {self.host}:{self._port} is already in use")
        self._prepare()
        with self.output_path.open("ab") as output:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
                user=self._user(),
                preexec_fn=_death_signal_setter(os.getpid()) if self._die_with_parent else None,
            )
        self._wait_until_ready()

    def stop(self) -> None:
        """`stop_signal` and wait, so the server writes and closes its files (Mosquitto: its persistence)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(self.stop_signal)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop the server and delete its temporary directory (a directory given to it is kept)."""
        self.stop()
        if self._owns_dir:
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


class InfluxDB1(ServerProcess):
    """A real InfluxDB 1.x (Debian's 1.6.7: `/write` and InfluxQL `/query`, no v2 API).

    Every listener is on 127.0.0.1 (HTTP on `port`, the backup RPC service on a second free port);
    meta, data and WAL live in the temporary directory; no usage reporting, no `_internal` monitoring.
    """

    name = "influxdb1"

    def __init__(
        self,
        *,
        port: int | None = None,
        startup_timeout_s: float = 20.0,
        directory: Path | None = None,
        die_with_parent: bool = False,
    ) -> None:
        super().__init__(
            port=port,
            startup_timeout_s=startup_timeout_s,
            directory=directory,
            die_with_parent=die_with_parent,
        )
        self._rpc_port = free_port()

    @property
    def config_path(self) -> Path:
        return self._dir / "influxdb.conf"

    def _command(self) -> list[str]:
        if not influxd_installed():
            raise RuntimeError(f"{INFLUXD} is missing: {INFLUXD_HINT}")
        return [str(INFLUXD), "-config", str(self.config_path)]

    def _ready(self) -> bool:
        return http_status(f"{self.url}/ping") == 204

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
