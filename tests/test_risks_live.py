"""The risk rules end to end, on real Mosquitto and SQLite with the gateway's clock faked: the
repositioning task opened and closed by the bed sensor, a locked dementia zone's exit opening by day,
and the fever cluster of a site counted from a wearable's reading over MQTT and carers' entries. One
gateway serves the module (CI time); the fever count across a restart is tests/test_risks_store.py's.

The telemetry process keeps the system clock (tests/harness.py), so the repositioning interval is set
to 1.8 s and the rule is driven by the bed's own reports (their receive times), not by the clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from harness import PASSWORD, LiveGateway, Publisher, live_gateway, new_config
from services import InfluxDB1, Mosquitto

from dashboard.auth import Role
from dashboard.security import CSRF_HEADER
from devices.model import EventKind
from gateway.clock import FakeClock
from simulators.payloads import careline_event

SITE = "day"  # local time is 14:00 there (tests/harness.py)
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def broker() -> Iterator[Mosquitto]:
    with Mosquitto() as running:
        yield running


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC))


@pytest.fixture(scope="module")
def influx() -> Iterator[InfluxDB1]:
    with InfluxDB1() as server:
        server.create_database("careline")
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(
    broker: Mosquitto, influx: InfluxDB1, clock: FakeClock, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveGateway]:
    where = tmp_path_factory.mktemp("risks")
    config = risk_config(broker, where)
    config["telemetry"] = {
        "backend": "influxdb1",
        "url": influx.url,
        "database": "careline",
        "flush_interval_ms": 100,
        "spool_dir": str(where / "spool"),
    }
    async with live_gateway(config, clock=clock) as running:
        yield running


@pytest.fixture(scope="module")
def publisher(broker: Mosquitto) -> Iterator[Publisher]:
    device = Publisher(broker.port)
    yield device
    device.close()


def risk_config(mosquitto: Mosquitto, tmp_path: Path) -> dict[str, Any]:
    """The harness's day site with wing A a locked dementia zone (exit: the garden door), Zhao at risk of
    pressure sores on a bed sensor, Sun wearing a watch, and a fever cluster at three residents."""
    config = new_config(mosquitto.url, tmp_path)
    day = next(site for site in config["sites"] if site["id"] == SITE)
    day["wings"] = [{"id": "A", "locked_dementia_zone": True, "exits": ["day-garden-door"]}]
    for room in day["rooms"]:
        room["wing"] = "A"
    day["wellbeing"] = {"repositioning": {"hours": 0.0005}, "fever": {"residents": 3}}
    config["residents"] += [
        {"id": "day-zhao", "name": "赵凤英", "site": SITE, "room": "101", "risks": ["pressure_sores"]},
        {"id": "day-sun", "name": "孙德明", "site": SITE, "room": "102"},
    ]
    config["devices"] += [
        {"id": "day-garden-door", "type": "door_sensor", "site": SITE},
        {"id": "day-bed-zhao", "type": "bed_sensor", "site": SITE, "resident": "day-zhao"},
        {"id": "day-watch-sun", "type": "vitals_monitor", "site": SITE, "resident": "day-sun"},
    ]
    return config


def telemetry(publisher: Publisher, device: str, kind: EventKind, value: Any) -> None:
    publisher.send(f"careline/{SITE}/{device}/telemetry", careline_event(kind, value), qos=0)


async def evidence(live: LiveGateway, incident: int) -> dict[str, Any]:
    """What the rule saw when it opened the incident, as audited."""
    audit = (await live.http.get(f"/api/incidents/{incident}/audit")).json()
    found: dict[str, Any] = next(a for a in audit if a["action"] == "incident.opened")["details"]["evidence"]
    return found


async def of_rule(live: LiveGateway, rule: str) -> list[dict[str, Any]]:
    return [incident for incident in await live.incidents() if incident["rule"] == rule]


async def test_the_bed_sensor_opens_a_repositioning_task_and_closes_it_when_the_resident_is_turned(
    live: LiveGateway, publisher: Publisher
) -> None:
    telemetry(publisher, "day-bed-zhao", EventKind.BED_POSITION, "left")
    await asyncio.sleep(2.5)  # longer than the 1.8 s interval: the bed's next report finds it due
    telemetry(publisher, "day-bed-zhao", EventKind.BED_OCCUPIED, True)
    await live.wait_for(lambda found: any(i["rule"] == "repositioning_due" for i in found), "the task")
    [task] = await of_rule(live, "repositioning_due")
    assert (task["severity"], task["resident"], task["status"]) == ("low", "day-zhao", "open")
    assert task["category"] == "wellbeing"

    telemetry(publisher, "day-bed-zhao", EventKind.BED_POSITION, "right")
    closed = await live.poll(f"/api/incidents/{task['id']}", lambda i: i["status"] == "resolved")

    assert (closed["status"], closed["outcome"]) == ("resolved", "repositioned")
    assert closed["resolved_by"] == "device:day-bed-zhao"
    audit = (await live.http.get(f"/api/incidents/{task['id']}/audit")).json()
    assert (audit[-1]["action"], audit[-1]["actor"]) == ("incident.cancelled", "device:day-bed-zhao")


async def test_the_locked_zone_s_exit_opening_by_day_is_an_alarm_and_a_bedroom_door_is_not(
    live: LiveGateway, publisher: Publisher
) -> None:
    publisher.event(SITE, "day-door-101", EventKind.DOOR_OPEN)
    publisher.event(SITE, "day-garden-door", EventKind.DOOR_OPEN)

    await live.wait_for(lambda found: any(i["rule"] == "locked_zone_exit" for i in found), "the alarm")

    # The alarm lane takes messages in order: the bedroom door's was ruled before the exit's.
    doors = [i for i in await live.incidents() if i["device_id"] in ("day-door-101", "day-garden-door")]
    assert [(i["rule"], i["device_id"], i["severity"]) for i in doors] == [
        ("locked_zone_exit", "day-garden-door", "high")
    ]
    assert (await evidence(live, doors[0]["id"]))["zone"] == "A"


async def poll(
    client: httpx.AsyncClient, clock: FakeClock, path: str, done: Any, limit_s: float = 10.0
) -> Any:
    for _ in range(int(limit_s / 0.05)):
        clock.set(datetime.now(UTC))  # the list ends at the gateway's now; the reading came at the child's
        answer = (await client.get(path)).json()
        if done(answer):
            return answer
        await asyncio.sleep(0.05)
    return answer


async def poll_influx(influx: InfluxDB1, count: int, limit_s: float = 10.0) -> list[float]:
    """The body temperatures InfluxDB holds, once it holds `count` (the writer flushes in batches)."""
    found: list[float] = []
    for _ in range(int(limit_s / 0.1)):
        answer: Any = influx.query('SELECT "value" FROM "body_temperature"', db="careline")
        series = answer["results"][0].get("series")
        found = [row[1] for row in series[0]["values"]] if series else []
        if len(found) >= count:
            break
        await asyncio.sleep(0.1)
    return found


async def manager(live: LiveGateway) -> httpx.AsyncClient:
    live.gateway.users.create("head-nurse", PASSWORD, Role.MANAGER, language="en")
    client = httpx.AsyncClient(base_url=live.base_url)
    answer = await client.post("/api/login", json={"username": "head-nurse", "password": PASSWORD})
    client.headers[CSRF_HEADER] = answer.raise_for_status().json()["csrf_token"]
    return client


async def enter(live: LiveGateway, clock: FakeClock, resident: str, celsius: float) -> dict[str, Any]:
    clock.set(datetime.now(UTC))  # the gateway's clock keeps up with the telemetry process's
    answer = await live.http.post(f"/api/residents/{resident}/temperature", json={"celsius": celsius})
    assert answer.status_code == 200, answer.text
    entered: dict[str, Any] = answer.json()
    return entered


async def test_the_third_feverish_resident_of_a_day_raises_one_fever_cluster_from_either_source(
    live: LiveGateway, publisher: Publisher, clock: FakeClock, influx: InfluxDB1
) -> None:
    office = await manager(live)
    telemetry(publisher, "day-watch-sun", EventKind.BODY_TEMPERATURE, 38.4)
    listed = await poll(office, clock, "/api/office/fever", lambda f: len(f["residents"]) == 1)
    assert [(r["resident"], r["last_source"]) for r in listed["residents"]] == [("day-sun", "wearable")]

    normal = await enter(live, clock, "day-li", 36.8)
    second = await enter(live, clock, "day-wang", 37.6)
    again = await enter(live, clock, "day-wang", 37.9)

    assert (normal["fever"], second["fever"]) == (False, True)
    assert second["cluster_incident"] is None
    assert again["cluster_incident"] is None
    assert await of_rule(live, "fever_cluster") == []

    third = await enter(live, clock, "day-li", 37.3)
    fourth = await enter(live, clock, "day-zhao", 38.0)

    [cluster] = await of_rule(live, "fever_cluster")
    assert third["cluster_incident"] == cluster["id"] == fourth["cluster_incident"]
    assert (cluster["severity"], cluster["trigger_count"], cluster["resident"]) == ("high", 2, None)
    assert (await evidence(live, cluster["id"]))["residents"] == "day-li,day-sun,day-wang"
    listed = await poll(office, clock, "/api/office/fever", lambda f: len(f["residents"]) == 4)
    assert [r["resident"] for r in listed["residents"]] == ["day-zhao", "day-li", "day-wang", "day-sun"]
    # Carers' entries are readings in the sensor log too (the wearable's 38.4 with them).
    written = await poll_influx(influx, 6)
    assert sorted(written) == [36.8, 37.3, 37.6, 37.9, 38.0, 38.4]
    # Bad input and residents not there are refused, not 500s.
    assert (
        await live.http.post("/api/residents/nobody/temperature", json={"celsius": 37})
    ).status_code == 404
    assert (
        await live.http.post("/api/residents/day-li/temperature", json={"celsius": 99})
    ).status_code == 422
    assert (await live.http.get("/api/office/fever")).status_code == 403
    await office.aclose()
