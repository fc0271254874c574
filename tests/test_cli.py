"""The `careline` command line: configuration checks, migrations and user administration."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from stores import disable_append_only, store_execute, store_url, table_names
from typer.testing import CliRunner

from careline.cli import app
from dashboard.auth import Role, UserStore
from gateway.config import CarelineConfig
from gateway.directory import Directory
from gateway.incidents.db import make_engine
from gateway.incidents.migrate import upgrade
from gateway.incidents.store import IncidentStore

ROOT = Path(__file__).resolve().parent.parent
CARE_HOME = ROOT / "examples" / "care-home.yaml"
PASSWORD = "correct-horse-battery"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "careline.db"


@pytest.fixture
def config_file(tmp_path: Path, db_path: Path) -> Path:
    path = tmp_path / "careline.yaml"
    path.write_text(
        "broker:\n"
        "  url: mqtt://127.0.0.1:1883\n"
        "storage:\n"
        f"  url: {store_url(db_path)}\n"
        "sites:\n"
        "  - id: sunrise\n"
        "    name: Sunrise\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def users(db_path: Path) -> Iterator[UserStore]:
    engine = make_engine(store_url(db_path))
    yield UserStore(engine, lambda: datetime.now(UTC), 12)
    engine.dispose()


def tables(db_path: Path) -> set[str]:
    return table_names(store_url(db_path))


def test_config_check_accepts_the_care_home_example_and_prints_its_counts(runner: CliRunner) -> None:
    result = runner.invoke(app, ["config", "check", str(CARE_HOME)])

    assert result.exit_code == 0, result.output
    assert "OK (2 sites, 37 residents," in result.stdout
    assert "responders)" in result.stdout


def test_config_check_on_a_bad_file_exits_1_with_a_line_numbered_error(
    runner: CliRunner, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "sites:\n  - id: sunrise\n    name: Sunrise\n    timezone: Nowhere/Atlantis\n", encoding="utf-8"
    )

    result = runner.invoke(app, ["config", "check", str(bad)])

    assert result.exit_code == 1
    assert f"{bad}:4: sites.0.timezone" in result.stderr
    assert "OK" not in result.stdout


def test_config_check_on_a_missing_file_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "check", str(tmp_path / "missing.yaml")])

    assert result.exit_code == 1
    assert "cannot read" in result.stderr


def test_db_upgrade_creates_the_incident_store_tables(
    runner: CliRunner, config_file: Path, db_path: Path
) -> None:
    result = runner.invoke(app, ["db", "upgrade", "--config", str(config_file)])

    assert result.exit_code == 0, result.output
    assert "newest schema" in result.stdout
    assert {"incidents", "alarm_events", "audit_log", "dead_letters", "users", "user_sessions"} <= tables(
        db_path
    )


def test_user_add_creates_a_user_who_can_log_in(
    runner: CliRunner, config_file: Path, users: UserStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARELINE_TEST_PASSWORD", PASSWORD)

    result = runner.invoke(
        app,
        [
            "user",
            "add",
            "--config",
            str(config_file),
            "alice",
            "--role",
            "manager",
            "--password-env",
            "CARELINE_TEST_PASSWORD",
        ],
    )

    assert result.exit_code == 0, result.output
    assert "user alice (manager) created" in result.stdout
    logged_in = users.login("alice", PASSWORD)
    assert logged_in is not None
    account, token = logged_in
    assert account.role is Role.MANAGER
    assert users.account_for(token) == account
    assert users.login("alice", "wrong-password-entirely") is None


def test_user_add_refuses_a_too_short_password(
    runner: CliRunner, config_file: Path, users: UserStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARELINE_TEST_PASSWORD", "short")

    result = runner.invoke(
        app, ["user", "add", "--config", str(config_file), "bob", "--password-env", "CARELINE_TEST_PASSWORD"]
    )

    assert result.exit_code == 1
    assert "at least 10 characters" in result.stderr
    assert users.count() == 0


def test_user_add_refuses_an_existing_username(
    runner: CliRunner, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARELINE_TEST_PASSWORD", PASSWORD)
    command = [
        "user",
        "add",
        "--config",
        str(config_file),
        "alice",
        "--password-env",
        "CARELINE_TEST_PASSWORD",
    ]

    assert runner.invoke(app, command).exit_code == 0
    again = runner.invoke(app, command)

    assert again.exit_code == 1
    assert "already exists" in again.stderr


def test_python_dash_m_careline_runs_the_same_command_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("broker:\n  url: http://broker\n", encoding="utf-8")

    good = subprocess.run(
        [sys.executable, "-m", "careline", "config", "check", str(CARE_HOME)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    refused = subprocess.run(
        [sys.executable, "-m", "careline", "config", "check", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )

    assert good.returncode == 0, good.stderr
    assert "OK (2 sites" in good.stdout
    assert refused.returncode == 1
    assert f"{bad}:2: broker.url" in refused.stderr


def _audited_store(db_path: Path, rows: int) -> None:
    """An incident store whose audit trail holds `rows` entries."""
    engine = make_engine(store_url(db_path))
    upgrade(engine)
    store = IncidentStore(engine, Directory(CarelineConfig()), lambda: datetime.now(UTC))
    for n in range(rows):
        store.record("user:admin", "test.note", {"n": n})
    engine.dispose()


def test_audit_verify_counts_an_intact_trail_and_names_the_first_tampered_entry(
    runner: CliRunner, config_file: Path, db_path: Path
) -> None:
    _audited_store(db_path, 5)
    command = ["audit", "verify", "--config", str(config_file)]

    intact = runner.invoke(app, command)

    assert intact.exit_code == 0, intact.output
    assert "audit trail intact: 5 entries verified" in intact.stdout

    disable_append_only(store_url(db_path))
    store_execute(store_url(db_path), "UPDATE audit_log SET actor = 'user:mallory' WHERE id = 3")
    broken = runner.invoke(app, command)

    assert broken.exit_code == 1
    assert "audit trail BROKEN at entry #3 (test.note," in broken.stderr
    assert "its contents were changed after it was written; 2 entries before it verified" in broken.stderr


def test_audit_verify_without_a_store_exits_2(runner: CliRunner, config_file: Path, db_path: Path) -> None:
    result = runner.invoke(app, ["audit", "verify", "--config", str(config_file)])

    assert result.exit_code == 2
    assert "no incident store" in result.stderr
    assert not db_path.exists()
