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
from pathlib import Path
from types import TracebackType

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


class Mosquitto:
    """A real Mosquitto broker with persistence, in its own temporary directory.

    Use it as a context manager, or call `start()`, `stop()` and `restart()` yourself; `restart()` keeps
    the port and the persistence directory, so persistent sessions and their queued messages survive.
    """

    host = "127.0.0.1"

    def __init__(self, *, port: int | None = None, startup_timeout_s: float = 10.0) -> None:
        self._port = port if port is not None else free_port()
        self._startup_timeout_s = startup_timeout_s
        self._dir = Path(tempfile.mkdtemp(prefix="careline-mosquitto-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self._port}"

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def config_path(self) -> Path:
        return self._dir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self._dir / "mosquitto.log"

    @property
    def _output_path(self) -> Path:
        # What Mosquitto prints before its log file is open (bad config, port in use).
        return self._dir / "mosquitto.out"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        if not MOSQUITTO.exists():
            raise RuntimeError(f"{MOSQUITTO} is missing: `make test` installs it (Debian package mosquitto)")
        if _accepts_connections(self.host, self._port):
            raise RuntimeError(f"cannot start mosquitto: {self.host}:{self._port} is already in use")
        self._write_config()
        with self._output_path.open("ab") as output:
            self._process = subprocess.Popen(
                [str(MOSQUITTO), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_listening()

    def stop(self) -> None:
        """SIGTERM and wait, so Mosquitto writes its persistence file before it exits."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop the broker and delete its temporary directory."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Mosquitto:
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

    def _write_config(self) -> None:
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
        ]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                self._process = None
                raise RuntimeError(f"mosquitto exited with status {code}:\n{self._logs()}")
            if _accepts_connections(self.host, self._port):
                return
            time.sleep(0.02)
        with contextlib.suppress(Exception):
            self.stop()
        raise RuntimeError(
            f"mosquitto did not accept connections on {self.host}:{self._port} "
            f"within {self._startup_timeout_s:g} s:\n{self._logs()}"
        )

    def _logs(self) -> str:
        return f"--- output ---\n{_tail(self._output_path)}\n--- {self.log_path} ---\n{_tail(self.log_path)}"
