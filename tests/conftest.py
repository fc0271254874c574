"""Shared pytest fixtures. Helpers that run real services live in `services.py`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from services import Mosquitto


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    """A real Mosquitto broker on a free port of 127.0.0.1, with persistence; stopped afterwards."""
    with Mosquitto() as broker:
        yield broker
