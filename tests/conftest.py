"""Shared pytest fixtures. Helpers that run real services live in `services.py`.

The session also checks that the tests leave no process behind: every process started during the
session inherits a marker in its environment, and whatever still carries it at the end is killed and
fails the session.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser, async_playwright
from services import (
    CHROMIUM,
    CHROMIUM_PRESENT,
    SESSION_MARKER,
    Mosquitto,
    command_line,
    parent_of,
    processes_marked,
)
from stores import stop_server, test_ended, test_starts

#: A process that is exiting as the last test ends gets this long to finish.
_SURVIVOR_GRACE_S = 3.0


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    """A real Mosquitto broker on a free port of 127.0.0.1, with persistence; stopped afterwards."""
    with Mosquitto() as broker:
        yield broker


@pytest.fixture(autouse=True)
def _fresh_store_databases() -> Iterator[None]:
    """On PostgreSQL, the databases a test made (tests/stores.py) are dropped after it."""
    test_starts()
    yield
    test_ended()


@pytest.fixture(autouse=True, scope="session")
def _store_server() -> Iterator[None]:
    """This worker's PostgreSQL (started by the first test that needs it) stops before the session's
    leftover-process check."""
    yield
    stop_server()


def pytest_sessionstart(session: pytest.Session) -> None:
    os.environ[SESSION_MARKER] = uuid.uuid4().hex


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    survivors = _survivors(os.environ[SESSION_MARKER])
    if not survivors:
        return
    described = [f"  pid {pid}: {command_line(pid)[:300]}" for pid in survivors]
    for pid in survivors:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = "processes started by the tests outlived them (killed now):\n" + "\n".join(described)
    if reporter is not None:
        reporter.write_line(message, red=True, bold=True)
    else:
        print(message)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _survivors(marker: str) -> list[int]:
    deadline = time.monotonic() + _SURVIVOR_GRACE_S
    while True:
        survivors = [pid for pid in processes_marked(marker) if not _ends_with_this_process(pid)]
        if not survivors or time.monotonic() > deadline:
            return survivors
        time.sleep(0.1)


def _ends_with_this_process(pid: int) -> bool:
    # multiprocessing's resource tracker, started once for this interpreter, exits when it does.
    return parent_of(pid) == os.getpid() and "multiprocessing.resource_tracker" in command_line(pid)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium for the pages' tests; the flags keep it off this machine's closed network."""
    if not CHROMIUM_PRESENT:
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install chromium)")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        yield chromium
        await chromium.close()
