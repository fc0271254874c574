"""Shared pytest fixtures. Helpers that run real services live in `services.py`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from services import Mosquitto

# Tests import the project's packages (gateway, devices, ...) from the working tree even when the project
# is not installed into the virtualenv.
PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
if PROJECT_ROOT not in sys.path:
    sys.path.insert(0, PROJECT_ROOT)


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    """A real Mosquitto broker on a free port of 127.0.0.1, with persistence; stopped afterwards."""
    with Mosquitto() as broker:
        yield broker
