"""Migration 0005 on a store that already holds incidents: rows kept, the one-active-incident-per-key
index kept (the columns are added in place, the table is not rebuilt)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from stores import POSTGRESQL, store_execute, store_rows, store_url

from gateway.incidents.db import make_engine
from gateway.incidents.migrate import alembic_config, upgrade


def test_upgrading_a_store_with_incidents_keeps_them_and_their_unique_active_key(tmp_path: Path) -> None:
    path = tmp_path / "careline.db"
    engine = make_engine(store_url(path))
    config = alembic_config(store_url(path))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
        connection.execute(
            text(
                "INSERT INTO incidents (key, rule, severity, status, site, device_id, opened_at,"
                " last_triggered_at, trigger_count, evidence)"
                " VALUES ('sos:p1', 'sos', 'critical', 'open', 'night', 'p1', '2026-11-30 02:00:00',"
                " '2026-11-30 02:00:00', 1, '{}')"
            )
        )
    upgrade(engine)
    engine.dispose()

    url = store_url(path)
    [row] = store_rows(url, "SELECT key, status, taken_by, taken_at, dispatched_at FROM incidents")
    assert tuple(row) == ("sos:p1", "open", None, None, None)
    indexes = _index_definitions(url)
    assert "status" in indexes["uq_incidents_active_key"]
    assert "'resolved'" in indexes["uq_incidents_active_key"]
    assert {"ix_incidents_opened_at", "ix_incidents_site_opened"} <= set(indexes)
    with pytest.raises(IntegrityError):
        store_execute(
            url,
            "INSERT INTO incidents (key, rule, severity, status, site, device_id, opened_at,"
            " last_triggered_at, trigger_count, evidence) VALUES ('sos:p1', 'sos', 'critical', 'open',"
            " 'night', 'p1', '2026-11-30 02:01:00', '2026-11-30 02:01:00', 1, '{}')",
        )


def _index_definitions(url: str) -> dict[str, str]:
    """Index name → its CREATE INDEX statement, as the database keeps it."""
    if POSTGRESQL:
        query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'incidents'"
    else:
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'incidents'"
    return {name: sql or "" for name, sql in store_rows(url, query)}


def test_downgrading_below_0005_keeps_the_incidents_and_their_alarm_events(tmp_path: Path) -> None:
    """Dropped in place: a table rebuild would drop `incidents` under its alarm events (foreign keys)."""
    url = store_url(tmp_path / "careline.db")
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO incidents (id, key, rule, severity, status, site, device_id, opened_at,"
                " last_triggered_at, trigger_count, evidence) VALUES (1, 'sos:p1', 'sos', 'critical',"
                " 'open', 'night', 'p1', '2026-11-30 02:00:00', '2026-11-30 02:00:00', 1, '{}')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO alarm_events (incident_id, message_key, kind, device_id, event_ts,"
                " received_at, recorded_at, effect) VALUES (1, 'm1', 'sos', 'p1', '2026-11-30 02:00:00',"
                " '2026-11-30 02:00:00', '2026-11-30 02:00:00', 'opened')"
            )
        )
    config = alembic_config(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alarm_events")).scalar() == 1
        columns = {column["name"] for column in inspect(connection).get_columns("incidents")}
    engine.dispose()
    assert "taken_by" not in columns
