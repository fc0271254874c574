"""The office's endpoints through a real gateway (Mosquitto, SQLite, HTTP): alarms raised over MQTT,
answered through the API, then reported; operators are refused; a scoped manager sees their sites only;
bad input is a clear 422; every CSV parses and holds the JSON's figures."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import PASSWORD, LiveGateway, Publisher, live_gateway, new_config
from services import Mosquitto
from stores import store_execute

from dashboard.auth import Role

pytestmark = pytest.mark.asyncio
ENDPOINTS = (
    "/api/office/incidents",
    "/api/office/audit",
    "/api/reports/response-times",
    "/api/reports/false-alarms",
    "/api/reports/quality",
)
#: Those read over [start, end); the quality indicators take months (first, last) instead.
PERIOD_ENDPOINTS = tuple(path for path in ENDPOINTS if path != "/api/reports/quality")
PAGES = ("/office/history", "/office/audit", "/office/reports", "/office/quality")


@asynccontextmanager
async def signed_in(
    live: LiveGateway, username: str, role: Role, sites: list[str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    live.gateway.users.create(username, PASSWORD, role, language="en")
    if sites is not None:
        store_execute(
            live.gateway.config.storage.url,
            "UPDATE users SET sites = :sites WHERE username = :username",
            sites=json.dumps(sites),
            username=username,
        )
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        response = await client.post("/api/login", json={"username": username, "password": PASSWORD})
        response.raise_for_status()
        yield client


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def config_with_a_wing(mosquitto: Mosquitto, tmp_path: Path) -> dict[str, Any]:
    config = new_config(mosquitto.url, tmp_path)
    night = config["sites"][0]
    night["rooms"] = [{"id": "101", "wing": "east"}, {"id": "102", "wing": "west"}]
    return config


async def three_alarms(live: LiveGateway, mosquitto: Mosquitto) -> list[dict[str, Any]]:
    """Night: a false alarm (resolved), then a second call left open. Day: one acknowledged."""
    device = Publisher(mosquitto.port)
    try:
        device.sos("night", "night-pendant-wang")
        [first] = await live.wait_for(lambda i: len(i) == 1, "the first SOS")
        answer = await live.http.post(
            f"/api/incidents/{first['id']}/resolve",
            json={"outcome": "false_alarm", "note": "pressed by mistake"},
        )
        answer.raise_for_status()
        device.sos("day", "day-pendant-wang")
        [day] = [i for i in await live.wait_for(lambda i: len(i) == 2, "the day SOS") if i["site"] == "day"]
        (await live.http.post(f"/api/incidents/{day['id']}/ack")).raise_for_status()
        device.sos("night", "night-pendant-wang")
        return await live.wait_for(lambda i: len(i) == 3, "the second night SOS")
    finally:
        device.close()


async def test_operators_are_refused_every_office_endpoint_and_page(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        for path in ENDPOINTS:
            answer = await live.http.get(path)
            assert answer.status_code == 403, path
            assert answer.json()["detail"] == "managers and admins only"
        for path in PAGES:
            page = await live.http.get(path)
            assert page.status_code == 403, path
            assert 'id="refused"' in page.text
        async with httpx.AsyncClient(base_url=live.base_url) as stranger:
            assert (await stranger.get(ENDPOINTS[2])).status_code == 401
        async with signed_in(live, "manager", Role.MANAGER) as manager:
            for path in PAGES:
                page = await manager.get(path)
                assert page.status_code == 200, path
                assert "/static/office-" in page.text


async def test_a_manager_reports_the_alarms_answered_and_the_csv_holds_the_same_figures(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(config_with_a_wing(mosquitto, tmp_path)) as live:
        await three_alarms(live, mosquitto)
        async with signed_in(live, "manager", Role.MANAGER) as manager:
            report = (await manager.get("/api/reports/response-times", params={"group": "site"})).json()
            by_site = {row["group"]: row for row in report["rows"]}
            assert (by_site["night"]["incidents"], by_site["night"]["acknowledged"]) == (2, 1)
            assert (by_site["day"]["incidents"], by_site["day"]["resolved"]) == (1, 0)
            assert report["total"]["incidents"] == 3
            # Answered at once by the API: within 60 s; the open one counts against the share.
            assert report["total"]["within_60s"] == 2
            assert report["total"]["met_60s"] is False
            assert [y["share"] for y in report["yardsticks"]] == [0.975, 0.99]

            csv_answer = await manager.get(
                "/api/reports/response-times", params={"group": "site", "format": "csv"}
            )
            assert csv_answer.headers["content-type"].startswith("text/csv")
            assert "attachment" in csv_answer.headers["content-disposition"]
            parsed = {row["group"]: row for row in rows_of(csv_answer.text)}
            for site, row in by_site.items():
                assert int(parsed[site]["incidents"]) == row["incidents"]
                assert parsed[site]["met_60s"] == ("true" if row["met_60s"] else "false")
                assert float(parsed[site]["share_60s"]) == pytest.approx(row["share_60s"])

            daily = (
                await manager.get(
                    "/api/reports/response-times", params={"bucket": "day", "group": "operator"}
                )
            ).json()
            assert sum(row["incidents"] for row in daily["series"]) == 3
            assert {row["group"] for row in daily["rows"]} == {"user:operator", ""}

            false = (await manager.get("/api/reports/false-alarms", params={"by": "device"})).json()
            [pendant] = [row for row in false["rows"] if row["key"] == "night-pendant-wang"]
            assert (pendant["incidents"], pendant["false_alarms"], pendant["false_alarm_rate"]) == (2, 1, 0.5)
            by_rule = rows_of(
                (await manager.get("/api/reports/false-alarms", params={"by": "rule", "format": "csv"})).text
            )
            assert [(r["key"], r["incidents"], r["false_alarms"]) for r in by_rule] == [("sos", "3", "1")]


async def test_the_history_filters_and_pages_and_links_each_incident(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(config_with_a_wing(mosquitto, tmp_path)) as live:
        incidents = await three_alarms(live, mosquitto)
        async with signed_in(live, "manager", Role.MANAGER) as manager:

            async def history(**params: Any) -> dict[str, Any]:
                answer = await manager.get("/api/office/incidents", params=params)
                assert answer.status_code == 200, answer.text
                found: dict[str, Any] = answer.json()
                return found

            everything = await history()
            assert everything["total"] == 3
            assert [i["id"] for i in everything["incidents"]] == sorted(
                (i["id"] for i in incidents), reverse=True
            )
            assert everything["incidents"][0]["link"] == f"/incident/{everything['incidents'][0]['id']}"
            assert (await history(outcome="false_alarm"))["total"] == 1
            assert (await history(site="day"))["total"] == 1
            assert (await history(wing="east"))["total"] == 2
            assert (await history(operator="user:operator"))["total"] == 2
            assert (await history(resident="night-wang", rule="sos"))["total"] == 2
            page = await history(limit=1, offset=1)
            assert (page["total"], len(page["incidents"])) == (3, 1)
            assert page["incidents"][0]["id"] == everything["incidents"][1]["id"]
            exported = rows_of((await manager.get("/api/office/incidents", params={"format": "csv"})).text)
            assert [int(r["id"]) for r in exported] == [i["id"] for i in everything["incidents"]]
            assert exported[-1]["outcome"] == "false_alarm"
            assert "false_alarm" in everything["outcomes"]

            audit = (await manager.get("/api/office/audit", params={"action": "incident.resolved"})).json()
            assert audit["total"] == 1
            assert audit["entries"][0]["details"]["note"] == "pressed by mistake"
            text = (await manager.get("/api/office/audit", params={"text": "mistake"})).json()
            assert [e["action"] for e in text["entries"]] == ["incident.resolved"]
            # The escalation goes on writing to the trail meanwhile, so both read one settled period: up
            # to `cut`, once the single writer has committed what it stamped before then (a no-op queued
            # behind the escalation's own writes).
            cut = datetime.now(UTC)
            await live.gateway.service.bookkeeping(lambda: None)
            period = {"end": cut.isoformat()}
            listed = (await manager.get("/api/office/audit", params={**period, "limit": 500})).json()
            exported_audit = await manager.get("/api/office/audit", params={"format": "csv", **period})
            exported_ids = [int(r["id"]) for r in rows_of(exported_audit.text)]
            assert len(exported_ids) == listed["total"]
            assert exported_ids == [e["id"] for e in listed["entries"]]


async def test_a_manager_of_one_site_sees_only_that_site(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        await three_alarms(live, mosquitto)
        async with signed_in(live, "nightboss", Role.MANAGER, sites=["night"]) as scoped:
            history = (await scoped.get("/api/office/incidents")).json()
            assert {i["site"] for i in history["incidents"]} == {"night"}
            report = (await scoped.get("/api/reports/response-times")).json()
            assert [row["group"] for row in report["rows"]] == ["night"]
            false = (await scoped.get("/api/reports/false-alarms")).json()
            assert {row["site"] for row in false["rows"]} == {"night"}
            audit = (await scoped.get("/api/office/audit")).json()
            assert audit["total"] > 0
            night_ids = {i["id"] for i in history["incidents"]}
            assert {e["incident_id"] for e in audit["entries"]} <= night_ids
            refused = await scoped.get("/api/reports/response-times", params={"site": "day"})
            assert refused.status_code == 403
            assert "not one of your sites" in refused.json()["detail"]
            quality = (await scoped.get("/api/reports/quality")).json()
            assert {row["site"] for row in quality["rows"]} == {"night"}
            assert sum(row["incidents"] for row in quality["rows"]) == 2
            assert (await scoped.get("/api/reports/quality", params={"site": "day"})).status_code == 403
            backwards = await scoped.get(
                "/api/reports/quality", params={"first": "2026-05", "last": "2026-04"}
            )
            assert backwards.status_code == 422
            too_long = await scoped.get(
                "/api/reports/quality", params={"first": "2020-01", "last": "2026-04"}
            )
            assert too_long.status_code == 422


async def test_a_user_of_one_site_sees_only_that_sites_devices_tests_and_dead_letters(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = new_config(mosquitto.url, tmp_path)
    for site in ("night", "day"):
        detector = {"id": f"{site}-smoke", "type": "smoke_detector", "profile": "zigbee2mqtt", "site": site}
        config["devices"].append(detector)
    async with live_gateway(config) as live:
        device = Publisher(mosquitto.port)
        for site in ("night", "day"):
            device.zigbee(f"{site}-smoke", smoke=True, test=True, battery=90)
            device.send(f"careline/{site}/{site}-pendant-wang/alarm", b"{broken")
        await live.poll("/api/device-tests", lambda tests: len(tests) == 2)
        await live.poll("/api/dead-letters", lambda letters: len(letters) == 2)
        await live.poll("/api/devices", lambda devices: len(devices) >= 2)
        async with signed_in(live, "nightdesk", Role.OPERATOR, sites=["night"]) as scoped:
            tests = (await scoped.get("/api/device-tests")).json()
            letters = (await scoped.get("/api/dead-letters")).json()
            devices = (await scoped.get("/api/devices")).json()
        device.close()

    assert [t["device_id"] for t in tests] == ["night-smoke"]
    assert [letter["device_id"] for letter in letters] == ["night-pendant-wang"]
    assert {d["device_id"] for d in devices} == {"night-smoke"}


BAD_INPUT = [
    ("/api/reports/response-times", {"group": "wing"}, "group"),
    ("/api/reports/response-times", {"bucket": "week"}, "bucket"),
    ("/api/reports/false-alarms", {"by": "resident"}, "by"),
    ("/api/office/incidents", {"limit": "501"}, "limit"),
    ("/api/office/incidents", {"offset": "-1"}, "offset"),
    ("/api/office/incidents", {"outcome": "lost"}, "outcome"),
    ("/api/office/incidents", {"wing": "nowhere"}, "no room is in wing nowhere"),
    ("/api/office/audit", {"incident": "0"}, "incident"),
    ("/api/office/audit", {"start": "yesterday"}, "start"),
    ("/api/office/audit", {"start": "0001-01-01T00:00:00Z"}, "between 1970 and 2200"),
    ("/api/reports/quality", {"first": "2026-13"}, "first"),
    ("/api/reports/quality", {"last": "0000-01"}, "last"),
    ("/api/reports/quality", {"first": "2026-05", "last": "2026-04"}, "at most 24 months"),
]


@asynccontextmanager
async def a_manager(mosquitto: Mosquitto, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        live_gateway(new_config(mosquitto.url, tmp_path)) as live,
        signed_in(live, "manager", Role.MANAGER) as manager,
    ):
        yield manager


async def test_bad_input_and_overlong_periods_are_clear_422s(mosquitto: Mosquitto, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    async with a_manager(mosquitto, tmp_path) as manager:
        for path, params, says in BAD_INPUT:
            answer = await manager.get(path, params=params)
            assert answer.status_code == 422, (path, params)
            assert says in answer.text, (path, params, answer.text)
        for path in PERIOD_ENDPOINTS:
            backwards = {"start": now.isoformat(), "end": (now - timedelta(days=1)).isoformat()}
            too_long = {"start": (now - timedelta(days=401)).isoformat(), "end": now.isoformat()}
            for params in (backwards, too_long):
                answer = await manager.get(path, params=params)
                assert answer.status_code == 422, (path, params)
                assert answer.json()["detail"] == "start must be before end, at most 400 days apart"
            year = {"start": (now - timedelta(days=366)).isoformat(), "end": now.isoformat()}
            assert (await manager.get(path, params=year)).status_code == 200
