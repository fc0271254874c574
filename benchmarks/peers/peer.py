"""What every processor under test offers the benchmark, and the simplest of them: a bare paho subscriber."""

from __future__ import annotations

import asyncio
import struct
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

from workload import POINTS_PER_MESSAGE

from careline.services import dies_with_this_process


@dataclass
class PhaseLoad:
    """What the generator offered in one phase: messages per kind, and the devices' time window."""

    kinds: dict[str, int] = field(default_factory=dict)
    first_ms: int = 0
    last_ms: int = 0

    @property
    def messages(self) -> int:
        return sum(self.kinds.values())

    @property
    def points(self) -> int:
        return sum(POINTS_PER_MESSAGE[k] * n for k, n in self.kinds.items())

    def points_per_message(self) -> float:
        return self.points / self.messages if self.messages else 3.5


class Peer(ABC):
    """A processor of the Zigbee2MQTT stream, started and stopped by the benchmark."""

    name = "peer"
    label = "peer"
    #: Whether an SOS makes an alarm on the probe's MQTT topic (Node-RED).
    alarms_on_mqtt = False

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    def processes(self) -> dict[str, int]:
        """The processor's own processes by name (their CPU and RSS are the processor's)."""

    def services(self) -> dict[str, int]:
        """Servers only this processor needs (Careline: InfluxDB), measured but not its own."""
        return {}

    @abstractmethod
    async def handled(self) -> float:
        """Messages dealt with so far (cumulative)."""

    async def begin_phase(self, load: PhaseLoad) -> None:  # noqa: B027 (a hook)
        """Called before a phase with the mix about to be offered."""

    async def account(self, load: PhaseLoad, handled: float) -> dict[str, Any]:
        """After a phase has settled: what reached its end, against what was offered."""
        return {"lost": max(0, round(load.messages - handled))}

    def sos_latencies_ms(self, presses: list[tuple[str, int, float]]) -> list[float] | None:
        """Careline's SOS publish → committed incident frame; None when measured elsewhere or not at all."""
        return None

    def settle_quiet_s(self) -> float:
        """How long the counter must stand still before a phase counts as settled."""
        return 1.0


class BarePaho(Peer):
    """The ceiling: a threaded paho subscriber in its own process that only decodes and counts."""

    name = "paho"
    label = "bare paho subscriber (json.loads, count)"

    def __init__(self, broker_port: int) -> None:
        self.port = broker_port
        self.memory = shared_memory.SharedMemory(create=True, size=8)
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.process = self._launch()
        await asyncio.sleep(1.0)  # connected and subscribed; the warm-up phase proves it
        if self.process.poll() is not None:
            raise RuntimeError("the paho subscriber exited")

    def _launch(self) -> subprocess.Popen[bytes]:
        program = Path(__file__).with_name("paho_counter.py")
        return subprocess.Popen(
            [sys.executable, str(program), str(self.port), self.memory.name],
            stdin=subprocess.DEVNULL,
            preexec_fn=dies_with_this_process(),
        )

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.memory.close()
        self.memory.unlink()

    def processes(self) -> dict[str, int]:
        assert self.process is not None
        return {"paho-subscriber": self.process.pid}

    async def handled(self) -> float:
        return float(struct.unpack_from("q", self.memory.buf, 0)[0])
