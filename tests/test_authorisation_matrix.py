"""Every endpoint and page of the running gateway × every kind of caller, against one table.

The table is the classification tests/test_roles.py keeps (what is public and why, what an operator may
use) completed here with what only admins may do and which paths name something of one site. From it,
for each route and caller, the expected answer follows: no session → 401 (a page: to the sign-in page);
a role below the route's → 403; a caller limited to other sites asking for something of the night site →
403 or 404; anyone allowed → neither 401 nor 403; nobody → a server error. A route the table does not
classify fails the test, so a new endpoint is classified before it ships.

Each request is real (loopback HTTP to a gateway on real Mosquitto and SQLite), its path filled with the
ids of a real incident, handover, site, resident, device and user; changes refused must leave nothing
changed, and every change needs the session's CSRF token and the gateway's own origin.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import httpx
from harness import PASSWORD, LiveGateway, Publisher, live_gateway, new_config
from services import Mosquitto
from sqlalchemy import text
from test_roles import PAGES_FOR_MANAGERS, PUBLIC, every_route, operator_may

from dashboard.auth import Role
from dashboard.security import CSRF_HEADER, SAFE_METHODS


class Least(IntEnum):
    """Who a route lets in, in rising order."""

    PUBLIC = 0
    OPERATOR = 1
    MANAGER = 2
    ADMIN = 3
    #: A carer's own page and its API (the home visits): carers only, nobody above them either.
    CARER = 4


#: Changes to the directory only admins make: sites, devices, responders, policies, users, bulk edits.
ADMIN_ONLY = (
    re.compile(
        r"^(POST|PUT|DELETE) /api/directory/(sites|devices|responders|policies)(/\{entry_id\}(/retire)?)?$"
    ),
    re.compile(r"^(GET|POST|PUT) /api/directory/users(/\{username\}(/history)?)?$"),
    re.compile(r"^POST /api/directory/(devices/move|responders/rota)$"),
)
#: What managers (and admins) may use besides everything operators may.
MANAGERS_ONLY = (
    re.compile(r"^(POST|PUT) /api/directory/residents(/\{entry_id\}(/discharge)?)?$"),
    re.compile(r"^(POST /api/directory/import/(preview|apply)|GET /api/directory/export)$"),
    re.compile(
        r"^GET /api/(office/(incidents|audit|devices|visits)|reports/(response-times|false-alarms|quality))$"
    ),
    # The feverish residents of the manager's sites (docs/risks.md).
    re.compile(r"^GET /api/office/fever$"),
    re.compile(r"^GET /api/(sensor-log|review/alarms|audit/verify)$"),
    re.compile(r"^(PUT|DELETE) /api/response-scripts/\{rule\}$"),
    re.compile(r"^GET (" + "|".join(map(re.escape, PAGES_FOR_MANAGERS)) + ")$"),
    # The daily reassurance calls (dashboard/reassurance_api.py), within the manager's sites.
    re.compile(r"^GET /api/office/reassurance(/months)?$"),
    # Broker logins of devices and hubs (dashboard/broker_credentials.py), within the manager's sites.
    re.compile(
        r"^(GET /api/broker-identity/hubs|POST /api/broker-identity/(devices|hubs)/\{\w+\}/credentials)$"
    ),
)
#: The carer's page and its API (dashboard/visits_api.py): only carers, for their own visits.
CARERS_ONLY = (
    re.compile(r"^(GET /api/carer/visits|POST /api/carer/visits/\{visit_id\}/check-(in|out))$"),
    re.compile(r"^PUT /api/carer/visits/\{visit_id\}/record$"),
    re.compile(r"^GET /carer$"),
)
#: What a carer may use besides their own page: their session. Every other route refuses them (403).
CARER_ALSO = {("GET", "/api/me"), ("POST", "/api/logout")}
#: Paths naming something of one site (the night site's here): a caller limited to other sites is
#: refused them (403, or 404 as if it did not exist), whatever their role. Lists are filtered instead.
SITE_BOUND = (
    re.compile(r"^\w+ /api/incidents/\{incident_id\}"),
    re.compile(r"^\w+ /api/directory/(sites|residents|devices)/\{entry_id\}"),
    re.compile(r"^POST /api/broker-identity/devices/\{device_id\}/credentials$"),
    # Test mode of one alarm device (dashboard/duty_api.py): only within the tester's sites.
    re.compile(r"^(PUT|DELETE) /api/duty/test-mode/\{device_id\}$"),
    re.compile(r"^POST /api/residents/\{resident_id\}/temperature$"),
    # Scripts for every site are written by those who see every site.
    re.compile(r"^(PUT|DELETE) /api/response-scripts/\{rule\}$"),
)


def least_role(method: str, path: str) -> Least | None:
    """The table's line for a route; None when the route is not classified."""
    route = f"{method} {path}"
    lines = [
        Least.PUBLIC if (method, path) in PUBLIC else None,
        Least.OPERATOR if operator_may(method, path) else None,
        Least.MANAGER if any(p.match(route) for p in MANAGERS_ONLY) else None,
        Least.ADMIN if any(p.match(route) for p in ADMIN_ONLY) else None,
        Least.CARER if any(p.match(route) for p in CARERS_ONLY) else None,
    ]
    found = [line for line in lines if line is not None]
    return found[0] if len(found) == 1 else None


def site_bound(method: str, path: str) -> bool:
    return any(p.match(f"{method} {path}") for p in SITE_BOUND)


@dataclass(frozen=True)
class Caller:
    name: str
    rank: Least
    #: Limited to the day site: the night site's incident, residents and devices are not theirs.
    elsewhere: bool = False
    #: A visiting carer: their own page and their session, nothing else.
    carer: bool = False


CALLERS = (
    Caller("anonymous", Least.PUBLIC),
    Caller("operator", Least.OPERATOR),
    Caller("day-operator", Least.OPERATOR, elsewhere=True),
    Caller("day-manager", Least.MANAGER, elsewhere=True),
    Caller("manager", Least.MANAGER),
    Caller("admin", Least.ADMIN),
    Caller("carer", Least.OPERATOR, carer=True),
)


def expected(route: tuple[str, str], caller: Caller, least: Least) -> str:
    """What the caller must get: "sign in" (401 / the sign-in page), "refused" (403), "not theirs"
    (403 or 404), or "let in" (neither 401 nor 403)."""
    if least is Least.PUBLIC:
        return "public"
    if caller.rank is Least.PUBLIC:
        return "sign in"
    if caller.carer:
        return "let in" if least is Least.CARER or route in CARER_ALSO else "refused"
    if caller.rank < least:
        return "refused"
    if caller.elsewhere and site_bound(*route):
        return "not theirs"
    return "let in"


def judged(answer: httpx.Response, wanted: str) -> bool:
    status = answer.status_code
    if status >= 500:
        return False
    if wanted == "public":
        return status != 401
    if wanted == "sign in":
        return status == 401 or (status == 303 and answer.headers["location"].startswith("/?next="))
    if wanted == "refused":
        return status == 403
    if wanted == "not theirs":
        return status in (403, 404)
    return status not in (401, 403)


@dataclass(frozen=True)
class Ids:
    incident: int
    handover: int


def concrete(path: str, ids: Ids) -> str:
    """The path with real ids (the night site's); ids of kinds the fixture has none of are dummies,
    answered 404 after the caller's role was checked."""
    kind = re.match(r"^/api/directory/(\w+)/\{entry_id\}", path)
    entries = {"sites": "night", "residents": "night-wang", "devices": "night-pendant-wang"}
    samples = {
        "incident_id": str(ids.incident),
        "handover_id": str(ids.handover),
        "entry_id": entries.get(kind.group(1), "nobody") if kind else "nobody",
        "device_id": "night-pendant-wang",
        "resident_id": "night-wang",
        "username": "operator",
        "rule": "sos",
        "language": "en",
        "token": "x" * 32,
        "visit_id": "1",
    }
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: samples.get(m.group(1), "nobody"), path)


async def signed_in(
    live: LiveGateway, name: str, role: Role, sites: tuple[str, ...] = ()
) -> httpx.AsyncClient:
    live.gateway.users.create(name, PASSWORD, role, language="en")
    if sites:
        with live.gateway.database.begin() as connection:
            connection.execute(
                text("UPDATE users SET sites = :sites WHERE username = :name"),
                {"sites": json.dumps(list(sites)), "name": name},
            )
    client = httpx.AsyncClient(base_url=live.base_url)
    answer = await client.post("/api/login", json={"username": name, "password": PASSWORD})
    answer.raise_for_status()
    client.headers[CSRF_HEADER] = answer.json()["csrf_token"]
    return client


@asynccontextmanager
async def clients_of(live: LiveGateway) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """A client per caller of CALLERS; the operator is the harness's."""
    async with AsyncExitStack() as stack:
        clients = {"anonymous": httpx.AsyncClient(base_url=live.base_url), "operator": live.http}
        stack.push_async_callback(clients["anonymous"].aclose)
        others = (
            ("day-operator", Role.OPERATOR, ("day",)),
            ("day-manager", Role.MANAGER, ("day",)),
            ("manager", Role.MANAGER, ()),
            ("admin", Role.ADMIN, ()),
            ("carer", Role.CARER, ()),
        )
        for name, role, sites in others:
            clients[name] = await signed_in(live, name, role, sites)
            stack.push_async_callback(clients[name].aclose)
        yield clients


async def seeded(live: LiveGateway, mosquitto: Mosquitto) -> Ids:
    """A night-site SOS incident and a signed handover, for the paths that name one."""
    publisher = Publisher(mosquitto.port)
    try:
        publisher.sos("night", "night-pendant-wang")
        incidents = await live.wait_for(lambda found: len(found) == 1, "the night SOS")
    finally:
        publisher.close()
    handover = await live.http.post("/api/handovers", json={"notes": "quiet night"})
    handover.raise_for_status()
    return Ids(incidents[0]["id"], handover.json()["id"])


#: Valid bodies where the body is read before the site is: a caller limited to other sites must be
#: refused for the site, not for an empty body. Every other change is sent `{}`.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/incidents/{incident_id}/notes"): {"text": "on my way"},
    ("POST", "/api/incidents/{incident_id}/resolve"): {"outcome": "false_alarm"},
    ("PUT", "/api/response-scripts/{rule}"): {"steps": {"en": ["Call"], "zh-CN": ["呼叫"]}},
    ("POST", "/api/residents/{resident_id}/temperature"): {"celsius": 37.0},
}


async def call(client: httpx.AsyncClient, method: str, path: str, ids: Ids) -> httpx.Response:
    body = None if method in ("GET", "DELETE") else BODIES.get((method, path), {})
    return await client.request(method, concrete(path, ids), json=body, follow_redirects=False)


async def test_every_route_answers_every_caller_as_the_table_says(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = new_config(mosquitto.url, tmp_path)
    # The carer caller's account names this responder (a carer's user name is their responder id).
    config["responders"] = [{"id": "carer", "name": "Carer Fang", "roles": ["carer"]}]
    async with live_gateway(config) as live:
        routes = every_route(live.gateway.http)
        unclassified = [route for route in routes if least_role(*route) is None]
        assert unclassified == [], f"classify these (tests/test_roles.py or the table here): {unclassified}"
        ids = await seeded(live, mosquitto)
        async with clients_of(live) as clients:
            wrong, counted = await _every_answer(clients, routes, ids)
    print(f"\n{len(routes)} routes × {len(CALLERS)} callers = {counted} requests")
    assert wrong == [], "\n".join(wrong)
    assert len(routes) > 90


async def _every_answer(
    clients: dict[str, httpx.AsyncClient], routes: list[tuple[str, str]], ids: Ids
) -> tuple[list[str], int]:
    """Each answer that is not what the table says, per caller and route; and how many were asked."""
    wrong: list[str] = []
    counted = 0
    # Signing out ends the caller's session: last, once every other route was tried.
    order = sorted(routes, key=lambda route: route == ("POST", "/api/logout"))
    for caller in CALLERS:
        for method, path in order:
            least = least_role(method, path)
            assert least is not None
            wanted = expected((method, path), caller, least)
            answer = await call(clients[caller.name], method, path, ids)
            counted += 1
            if not judged(answer, wanted):
                wrong.append(f"{caller.name} {method} {path}: wanted {wanted}, got {answer.status_code}")
    return wrong, counted


async def _directory_state(admin: httpx.AsyncClient, incident: int) -> dict[str, Any]:
    return {
        "residents": (await admin.get("/api/directory/residents")).json()["total"],
        "devices": (await admin.get("/api/directory/devices")).json()["total"],
        "scripts": (await admin.get("/api/response-scripts")).json(),
        "users": (await admin.get("/api/directory/users")).json(),
        "incident": (await admin.get(f"/api/incidents/{incident}")).json(),
    }


async def test_refused_changes_change_nothing(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """Valid changes, refused only for who asks: the directory, the scripts, the users and the
    incident stay as they were."""
    resident = {"id": "night-zhao", "name": "赵桂兰", "site": "night", "room": "102"}
    device = {"id": "night-door-103", "type": "door_sensor", "site": "night", "room": "101"}
    script = {"steps": {"en": ["Call the resident"], "zh-CN": ["呼叫住户"]}}
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        ids = await seeded(live, mosquitto)
        async with clients_of(live) as who:
            before = await _directory_state(who["admin"], ids.incident)
            incident = f"/api/incidents/{ids.incident}"
            refusals = [
                await who["operator"].post("/api/directory/residents", json=resident),
                await who["manager"].post("/api/directory/devices", json=device),
                await who["operator"].put("/api/response-scripts/sos", json=script),
                await who["day-manager"].put("/api/response-scripts/sos", json=script),
                await who["day-operator"].post(f"{incident}/ack"),
                await who["day-manager"].post(f"{incident}/resolve", json={"outcome": "false_alarm"}),
                await who["manager"].put("/api/directory/users/operator", json={"role": "admin"}),
            ]
            assert [r.status_code for r in refusals] == [403, 403, 403, 403, 404, 404, 403]
            after = await _directory_state(who["admin"], ids.incident)
            assert after == before
            assert after["incident"]["status"] == "open"
            # The same change by someone allowed goes through: the refusal was about who asked.
            allowed = await who["manager"].post("/api/directory/residents", json=resident)
            assert allowed.status_code == 200, allowed.text


async def test_scoped_callers_lists_hold_only_their_sites(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        ids = await seeded(live, mosquitto)
        async with clients_of(live) as who:
            residents = (await who["day-manager"].get("/api/directory/residents")).json()["items"]
            office = (await who["day-manager"].get("/api/office/incidents")).json()
            queue = (await who["day-operator"].get("/api/incidents", params={"status": "all"})).json()
            everyone = (await who["manager"].get("/api/incidents", params={"status": "all"})).json()
    assert residents
    assert {r["site"] for r in residents} == {"day"}
    assert office["total"] == 0
    assert queue["incidents"] == []
    assert [i["id"] for i in everyone["incidents"]] == [ids.incident]


async def test_every_change_needs_the_csrf_token_and_the_gateways_own_origin(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Every route that changes something behind a session, as an admin (who may do everything):
    without the CSRF token, with a wrong one, from another origin or another page, each refused (403)."""
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        ids = await seeded(live, mosquitto)
        changes = [
            (method, path)
            for method, path in every_route(live.gateway.http)
            if method not in SAFE_METHODS and least_role(method, path) not in (Least.PUBLIC, None)
        ]
        async with clients_of(live) as who:
            admin = who["admin"]
            token = admin.headers.pop(CSRF_HEADER)
            attempts = {
                "no token": {},
                "a wrong token": {CSRF_HEADER: "0" * 64},
                "another origin": {CSRF_HEADER: token, "Origin": "http://evil.example"},
                "another page": {CSRF_HEADER: token, "Referer": "http://127.0.0.1:1/page"},
            }
            let_through = [
                f"{method} {path} with {attempt}: {answer.status_code}"
                for method, path in changes
                for attempt, headers in attempts.items()
                if (
                    answer := await admin.request(method, concrete(path, ids), json={}, headers=headers)
                ).status_code
                != 403
            ]
            # The session is still good: with the token, from its own origin, the change is made.
            own = {CSRF_HEADER: token, "Origin": live.base_url.rstrip("/")}
            acknowledged = await admin.post(f"/api/incidents/{ids.incident}/ack", headers=own)
    assert let_through == []
    assert len(changes) > 30
    assert acknowledged.status_code == 200, acknowledged.text
