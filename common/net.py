"""Local ports: the demo's servers and the tests' ones are started on free ports of 127.0.0.1."""

from __future__ import annotations

import socket

_DEFAULT_MQTT_PORTS = frozenset({1883, 8883})


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (never a well-known MQTT port)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _DEFAULT_MQTT_PORTS:
            return port
