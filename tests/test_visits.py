"""Planned home visits: plans validated with the directory, occurrences in the site's local time, and
end to end (real Mosquitto and SQLite, the gateway's clock faked so an hour passes in a step): a missed
visit raises one incident for the coordinator, a late check-in after it raises nothing more and says on
the incident that the carer came, an on-time check-in raises nothing, a door tag pressed over MQTT
checks the carer in and out, a carer is refused the operators' endpoints, and the managers' counts."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import websockets
from harness import PASSWORD, LiveGateway, Publisher, live_gateway, new_config
from services import Mosquitto
from sqlalchemy import select

from careline.bootstrap import bootstrap
from common.errors import InvalidInputError
from dashboard.auth import Role
from dashboard.security import CSRF_HEADER
from devices.model import EventKind
from gateway.clock import FakeClock
from gateway.config import CarelineConfig, ResidentConfig, VisitPlanConfig, load_config, validated_copy
from gateway.directory.transfer import export_yaml, parse_yaml
from gateway.incidents.schema import AuditEntry, IncidentNote
from gateway.reports.visits import visits_done_vs_planned
from gateway.visits.schedule import plan_occurrences
from simulators.payloads import careline_event

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: Monday 5 January 2026, 10:00 in Shanghai.
START = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)


def _plan(carer: str, at: str, window_min: int, plan_id: str = "daily") -> dict[str, Any]:
    return {
        "id": plan_id,
        "carer": carer,
        "every_days": 1,
        "starting": "2026-01-01",
        "at": at,
        "window_min": window_min,
    }


def visits_config(mosquitto_url: str, tmp_path: Path) -> dict[str, Any]:
    config = new_config(mosquitto_url, tmp_path)
    config["sites"].append(
        {"id": "home", "name": "Home care", "kind": "district", "timezone": "Asia/Shanghai"}
    )
    config["residents"] += [
        {
            "id": "elder-a",
            "name": "钱淑兰",
            "site": "home",
            "address": "柳浪小区 3 幢 401",
            "visits": [_plan("carer-a", "10:10", 5)],
        },
        {"id": "elder-b", "name": "孔德海", "site": "home", "visits": [_plan("carer-a", "10:20", 10)]},
        {"id": "elder-c", "name": "Edward Hu", "site": "home", "visits": [_plan("carer-b", "10:10", 30)]},
    ]
    config["devices"].append(
        {"id": "tag-elder-c", "type": "visit_tag", "site": "home", "resident": "elder-c"}
    )
    config["responders"] = [
        {"id": "carer-a", "name": "方丽", "roles": ["carer"], "sites": ["home"]},
        {"id": "carer-b", "name": "陶军", "roles": ["carer"], "sites": ["home"]},
        {
            "id": "coordinator-xu",
            "name": "徐红",
            "roles": ["coordinator"],
            "sites": ["home"],
            "phone": "+8613800000033",
        },
    ]
    return config


# -- pure: plans and their occurrences ------------------------------------------------------------------


def test_a_weekly_plan_falls_on_its_weekdays_at_local_time() -> None:
    plan = VisitPlanConfig(id="weekly", carer="carer-a", weekdays=("tue", "fri"), at="09:30")
    resident = ResidentConfig(id="elder-a", name="钱淑兰", site="home", visits=(plan,))
    found = list(plan_occurrences(resident, plan, SHANGHAI, START, START + timedelta(days=7)))
    local = [o.planned_at.astimezone(SHANGHAI) for o in found]
    assert [(d.date(), d.hour, d.minute) for d in local] == [
        (date(2026, 1, 6), 9, 30),
        (date(2026, 1, 9), 9, 30),
    ]
    assert all(o.due_by - o.planned_at == timedelta(minutes=60) for o in found)


def test_a_plan_needs_one_rhythm() -> None:
    with pytest.raises(ValueError, match="either weekdays or every_days"):
        VisitPlanConfig(
            id="x", carer="carer-a", weekdays=("mon",), every_days=2, starting=date(2026, 1, 1), at="09:00"
        )
    with pytest.raises(ValueError, match="starting"):
        VisitPlanConfig(id="x", carer="carer-a", every_days=2, at="09:00")


def test_a_plan_naming_an_unknown_carer_or_one_of_another_site_is_refused(tmp_path: Path) -> None:
    base = CarelineConfig.model_validate(visits_config("mqtt://127.0.0.1:1", tmp_path))
    residents = [r.model_dump(mode="json") for r in base.residents]
    residents[-1]["visits"] = [_plan("carer-nobody", "10:00", 30)]
    with pytest.raises(InvalidInputError) as refused:
        validated_copy(base, residents=residents)
    assert [p.code for p in refused.value.problems] == ["visit_unknown_carer"]
    assert refused.value.problems[0].loc == ("residents", len(residents) - 1, "visits", 0, "carer")
    responders = [r.model_dump(mode="json") for r in base.responders]
    responders[0]["sites"] = ["day"]
    with pytest.raises(InvalidInputError) as elsewhere:
        validated_copy(base, responders=responders)
    assert {p.code for p in elsewhere.value.problems} == {"visit_carer_elsewhere"}


# -- end to end -----------------------------------------------------------------------------------------


async def _signed_in(live: LiveGateway, name: str, role: Role) -> httpx.AsyncClient:
    live.gateway.users.create(name, PASSWORD, role, language="en")
    client = httpx.AsyncClient(base_url=live.base_url)
    answer = await client.post("/api/login", json={"username": name, "password": PASSWORD})
    answer.raise_for_status()
    client.headers[CSRF_HEADER] = answer.json()["csrf_token"]
    return client


def _of(visits: list[dict[str, Any]], resident: str) -> dict[str, Any]:
    return next(v for v in visits if v["resident"] == resident and v["planned_at"].startswith("2026-01-05"))


async def test_a_day_of_visits_end_to_end(mosquitto: Mosquitto, tmp_path: Path) -> None:
    clock = FakeClock(START)
    config = visits_config(mosquitto.url, tmp_path)
    async with live_gateway(config, clock=clock) as live:
        gateway = live.gateway
        carer_a = await _signed_in(live, "carer-a", Role.CARER)
        carer_b = await _signed_in(live, "carer-b", Role.CARER)
        publisher = Publisher(mosquitto.port)
        try:
            await gateway.visit_scheduler.tick()
            mine = (await carer_a.get("/api/carer/visits")).json()
            assert {v["resident"] for v in mine["visits"]} == {"elder-a", "elder-b"}
            assert _of(mine["visits"], "elder-a")["resident_card"]["address"] == "柳浪小区 3 幢 401"
            assert len(mine["visits"]) == 14  # two plans, daily, a week ahead

            # A carer is not an operator: the queue, an incident list, the handover are refused.
            for path in ("/api/incidents", "/api/stats", "/api/handovers/draft"):
                assert (await carer_a.get(path)).status_code == 403, path
            assert (await live.http.get("/api/carer/visits")).status_code == 403
            # Nor is the live queue theirs: the WebSocket handshake is refused.
            cookie = "; ".join(f"{k}={v}" for k, v in carer_a.cookies.items())
            own = websockets.Origin(live.base_url.rstrip("/"))
            with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
                async with websockets.connect(live.ws_url, additional_headers={"Cookie": cookie}, origin=own):
                    pass
            assert refused.value.response.status_code == 403

            # 10:16: elder-a's visit (10:10, due 10:15) has no check-in: one incident for the coordinator.
            clock.set(START + timedelta(minutes=16))
            b_visit = _of(mine["visits"], "elder-b")
            assert (await carer_a.post(f"/api/carer/visits/{b_visit['id']}/check-in")).status_code == 200
            missed = await gateway.visit_scheduler.tick()
            assert [v.resident for v in missed] == ["elder-a"]
            incidents = await live.wait_for(lambda found: len(found) == 1, "the missed-visit incident")
            incident = incidents[0]
            assert (incident["rule"], incident["resident"], incident["severity"]) == (
                "visit_missed",
                "elder-a",
                "high",
            )
            # Escalated by the missed-visit policy, whose first tier is the coordinators'.
            audit = await live.poll(
                f"/api/incidents/{incident['id']}/audit",
                lambda found: any(e["action"] == "escalation.tier" for e in found),
            )
            tier = next(e for e in audit if e["action"] == "escalation.tier")
            assert (tier["details"]["policy"], tier["details"]["tier"]) == ("default-visit-missed", 1)
            first = gateway.config.escalation.policy_for("high", "visit_missed", "home").tiers[0]
            assert [t.role for t in first.targets] == ["coordinator"]

            # 10:30: elder-c's door tag (carer-b presses it, the tag's clock agrees) checks carer-b in.
            c_visit = _of((await carer_b.get("/api/carer/visits")).json()["visits"], "elder-c")
            clock.set(START + timedelta(minutes=30))
            await _press(publisher, clock, "carer-b")
            c_now = await _visit_until(carer_b, c_visit["id"], "in_progress")
            assert c_now["checked_in_via"] == "tag:tag-elder-c"
            # Later ticks raise nothing more.
            clock.set(START + timedelta(minutes=40))
            assert await gateway.visit_scheduler.tick() == []
            # 10:40: carer-a arrives at elder-a late: recorded late, no second alarm, the incident says so.
            a_visit = _of(mine["visits"], "elder-a")
            arrived = (await carer_a.post(f"/api/carer/visits/{a_visit['id']}/check-in")).json()
            assert (arrived["status"], arrived["late"], arrived["incident_id"]) == (
                "in_progress",
                True,
                incident["id"],
            )
            out = await carer_a.post(
                f"/api/carer/visits/{a_visit['id']}/check-out",
                json={
                    "checklist": {"eats_drinks": "yes", "mood": "concern"},
                    "notes": "had a fall last night",
                },
            )
            assert out.json()["status"] == "late", out.text
            assert await gateway.visit_scheduler.tick() == []
            after = await live.incidents()
            assert [(i["id"], i["trigger_count"]) for i in after] == [(incident["id"], 1)]
            with gateway.service.store.reading() as session:
                notes = session.scalars(
                    select(IncidentNote.text).where(IncidentNote.incident_id == incident["id"])
                ).all()
            assert len(notes) == 1
            assert "carer-a arrived" in notes[0]

            # elder-b, checked in on time, raised nothing; it is under way, then done.
            done = await carer_a.post(
                f"/api/carer/visits/{b_visit['id']}/check-out", json={"checklist": {"mobility": "yes"}}
            )
            assert (done.json()["status"], done.json()["late"]) == ("done", False)
            # Someone else's visit, a bad checklist: refused with a clear 4xx.
            assert (await carer_a.post(f"/api/carer/visits/{c_visit['id']}/check-in")).status_code == 404
            bad = await carer_a.put(
                f"/api/carer/visits/{b_visit['id']}/record", json={"checklist": {"sleep": "yes"}}
            )
            assert bad.status_code == 422

            # 10:55: pressed again, it checks carer-b out.
            clock.set(START + timedelta(minutes=55))
            await _press(publisher, clock, "carer-b")
            assert (await _visit_until(carer_b, c_visit["id"], "done"))[
                "checked_out_via"
            ] == "tag:tag-elder-c"

            # Every change is in the audit trail.
            with gateway.service.store.reading() as session:
                actions = session.scalars(
                    select(AuditEntry.action).where(AuditEntry.action.like("visit.%"))
                ).all()
            assert {
                "visit.planned",
                "visit.missed",
                "visit.checked_in",
                "visit.carer_arrived",
                "visit.checked_out",
            } <= set(actions)

            # The managers' counts: 3 visits planned on the 5th, all done, one late; the future pending.
            counts = await _office(live, "2026-01-05T00:00:00+08:00", "2026-01-06T00:00:00+08:00")
            per_carer = {row["key"]: row for row in counts["carers"]}
            assert {k: (r["planned"], r["done"], r["late"], r["missed"]) for k, r in per_carer.items()} == {
                "carer-a": (2, 2, 1, 0),
                "carer-b": (1, 1, 0, 0),
            }
            with gateway.service.store.reading() as session:
                months = visits_done_vs_planned(
                    session, gateway.config.sites, START - timedelta(days=5), START + timedelta(days=8)
                )
            assert [(m.site, m.month, m.planned, m.done, m.late, m.missed) for m in months] == [
                ("home", "2026-01", 3 * 8, 3, 1, 0)
            ]
            csv = await live.http.get("/api/office/visits", params={"format": "csv"})
            assert csv.status_code == 403  # the harness's operator is no manager
        finally:
            publisher.close()
            await carer_a.aclose()
            await carer_b.aclose()

    # Restarted on the same store, an hour on: nothing is alarmed again, the day's visits stay recorded.
    clock.set(START + timedelta(hours=1))
    restarted = bootstrap(CarelineConfig.model_validate(config), clock=clock)
    async with restarted.running():
        assert await restarted.visit_scheduler.tick() == []
        found = await restarted.service.read(restarted.service.store.incidents, ["open", "acknowledged"])
        assert [i.id for i in found] == [incident["id"]]
        day = await restarted.service.read(
            restarted.visits.in_period, None, START, START + timedelta(hours=2)
        )
        assert sorted(v.status for v in day) == ["done", "done", "late"]


async def _press(publisher: Publisher, clock: FakeClock, carer: str) -> None:
    payload = careline_event(EventKind.VISIT_TAG, carer, ts_ms=clock.now().timestamp() * 1000)
    publisher.send("careline/home/tag-elder-c/alarm", payload).wait_for_publish(5)


async def _visit_until(carer: httpx.AsyncClient, visit_id: int, status: str) -> dict[str, Any]:
    for _ in range(200):
        found = next(
            v for v in (await carer.get("/api/carer/visits")).json()["visits"] if v["id"] == visit_id
        )
        if found["status"] == status:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"visit {visit_id} never became {status}: {found}")


async def _office(live: LiveGateway, start: str, end: str) -> dict[str, Any]:
    manager = await _signed_in(live, "manager", Role.MANAGER)
    try:
        answer = await manager.get("/api/office/visits", params={"start": start, "end": end})
        assert answer.status_code == 200, answer.text
        csv = await manager.get("/api/office/visits", params={"start": start, "end": end, "format": "csv"})
        assert csv.text.splitlines()[0] == "key,site,month,planned,done,late,missed,pending,done_share"
        assert "carer:carer-a,home,,2,2,1,0,0,1.0" in csv.text
        # The visits' audit entries keep the chain intact.
        assert (await manager.get("/api/audit/verify")).json()["intact"] is True
        result: dict[str, Any] = answer.json()
        return result
    finally:
        await manager.aclose()


def test_plans_travel_with_the_directorys_yaml_export_and_import() -> None:
    example = load_config(Path(__file__).parent.parent / "examples" / "care-home.yaml")
    rows = {"residents": [r.model_dump(mode="json") for r in example.residents]}
    text = export_yaml(rows, exported_by="test", at=START)
    imported = parse_yaml(text, "export.yaml").incoming.residents
    assert {r.id: r.visits for r in imported if r.visits} == {
        r.id: r.visits for r in example.residents if r.visits
    }
    assert {r.id for r in imported if r.visits} == {"qian-shulan", "kong-dehai", "shen-yufang", "edward-hu"}
