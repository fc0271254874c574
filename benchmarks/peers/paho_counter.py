"""The bare paho subscriber, as a small program of its own: `zigbee2mqtt/#`, json.loads, count.

Started as a plain subprocess (not multiprocessing) so its CPU and RSS are paho's and the interpreter's
alone. The count goes out through a shared-memory int64 that a side thread refreshes every 0.1 s, so the
hot path takes no lock.

    python benchmarks/peers/paho_counter.py BROKER_PORT SHARED_MEMORY_NAME
"""

from __future__ import annotations

import json
import struct
import sys
import time
from multiprocessing import resource_tracker, shared_memory
from typing import Any

import paho.mqtt.client as mqtt
from generator import connect
from workload import TOPIC_ROOT


def main() -> None:
    port, name = int(sys.argv[1]), sys.argv[2]
    memory = shared_memory.SharedMemory(name=name)
    # Attaching registers the block with this process's resource tracker too (Python < 3.13), which
    # would unlink it when killed and warn; the benchmark that created it unlinks it.
    resource_tracker.unregister(memory._name, "shared_memory")  # type: ignore[attr-defined]
    handled = [0]

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        json.loads(message.payload)
        handled[0] += 1

    client = connect(port, "bench-paho-counter")
    client.on_message = on_message
    client.subscribe(f"{TOPIC_ROOT}/#", qos=1)
    try:
        while True:
            struct.pack_into("q", memory.buf, 0, handled[0])
            time.sleep(0.1)
    finally:
        memory.close()


if __name__ == "__main__":
    main()
