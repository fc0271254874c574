"""The directory's REST API on a real gateway (real Mosquitto, real SQLite, real HTTP server): every route
is checked against every role and against a user of another site; changes are validated, audited and
refused in the user's language."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from directory_fixtures import KEY_ENV, new_key
from harness import PASSWORD, new_config
from services import Mosquitto

from careline.bootstrap import Gateway, bootstrap
from dashboard.auth import Role
from dashboard.security import CSRF_HEADER
from gateway.config import CarelineConfig

RANK = {"operator": 0, "manager": 1, "admin": 2}

#: Every directory route and the least role that may use it. A route missing here fails the test below,
#: so a new route is not exposed before someone decides who may call it.
LEAST_ROLE: dict[tuple[str, str], str] = {
    **{
        (method, f"/api/directory/{kind}{tail}"): role
        for kind in ("sites", "residents", "devices", "responders", "policies")
        for method, tail, role in (
            ("GET", "", "operator"),
            ("GET", "/{entry_id}", "operator"),
            ("GET", "/{entry_id}/history", "operator"),
            ("POST", "", "manager" if kind == "residents" else "admin"),
            ("PUT", "/{entry_id}", "manager" if kind == "residents" else "admin"),
        )
    },
    ("POST", "/api/directory/residents/{entry_id}/discharge"): "manager",
    ("POST", "/api/directory/residents/{entry_id}/key-safe"): "operator",
    ("POST", "/api/directory/devices/{entry_id}/retire"): "admin",
    ("DELETE", "/api/directory/sites/{entry_id}"): "admin",
    ("DELETE", "/api/directory/responders/{entry_id}"): "admin",
    ("DELETE", "/api/directory/policies/{entry_id}"): "admin",
    ("GET", "/api/directory/users"): "admin",
    ("POST", "/api/directory/users"): "admin",
    ("PUT", "/api/directory/users/{username}"): "admin",
    ("GET", "/api/directory/users/{username}/history"): "admin",
    ("POST", "/api/directory/import/preview"): "manager",
    ("POST", "/api/directory/import/apply"): "manager",
    ("GET", "/api/directory/export"): "manager",
    ("GET", "/api/directory/template"): "operator",
    ("POST", "/api/directory/devices/move"): "admin",
    ("POST", "/api/directory/responders/rota"): "admin",
}


def directory_routes(gateway: Gateway) -> set[tuple[str, str]]:
    """Every directory route the app serves, from its route table as OpenAPI publishes it (included
    routers too)."""
    return {
        (method.upper(), path)
        for path, operations in gateway.http.openapi()["paths"].items()
        if path.startswith("/api/directory")
        for method in operations
    }


def gateway_config(mosquitto: Mosquitto, tmp_path: Path) -> CarelineConfig:
    data = new_config(mosquitto.url, tmp_path)
    data["storage"]["directory_key_env"] = KEY_ENV
    data["responders"] = [
        {"id": f"{site}-nurse", "name": f"{site} nurse", "roles": ["nurse"], "sites": [site]}
        for site in ("night", "day")
    ]
    data["escalation"] = {
        "policies": [
            {"id": f"{site}-policy", "match": {"sites": [site]}, "tiers": [{"targets": [{"role": "nurse"}]}]}
            for site in ("night", "day")
        ]
    }
    return CarelineConfig.model_validate(data)


@dataclass
class Site:
    gateway: Gateway
    base_url: str
    clients: dict[str, httpx.AsyncClient]


@pytest.fixture
async def site(mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Site]:
    monkeypatch.setenv(KEY_ENV, new_key())
    gateway = bootstrap(gateway_config(mosquitto, tmp_path))
    gateway.open_store()
    gateway.users.create("admin", PASSWORD, Role.ADMIN, language="en")
    stop = asyncio.Event()
    serving = asyncio.create_task(gateway.serve(stop))
    base_url = f"http://127.0.0.1:{gateway.config.http.port}"
    clients: dict[str, httpx.AsyncClient] = {}
    try:
        await gateway.wait_connected()
        clients["admin"] = await _logged_in(base_url, "admin")
        for name, role, sites, language in (
            ("operator", "operator", [], "en"),
            ("manager", "manager", [], "zh-CN"),
            ("night-operator", "operator", ["night"], "en"),
            ("night-manager", "manager", ["night"], "zh-CN"),
        ):
            created = await clients["admin"].post(
                "/api/directory/users",
                json={
                    "username": name,
                    "password": PASSWORD,
                    "role": role,
                    "sites": sites,
                    "language": language,
                },
            )
            assert created.status_code == 200, created.text
            clients[name] = await _logged_in(base_url, name)
        clients["anonymous"] = httpx.AsyncClient(base_url=base_url)
        yield Site(gateway, base_url, clients)
    finally:
        for client in clients.values():
            await client.aclose()
        stop.set()
        await serving


async def _logged_in(base_url: str, username: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base_url)
    for _ in range(100):
        try:
            response = await client.post("/api/login", json={"username": username, "password": PASSWORD})
            break
        except httpx.TransportError:
            await asyncio.sleep(0.05)
    response.raise_for_status()
    # What the pages do: every change carries the session's CSRF token.
    client.headers[CSRF_HEADER] = response.json()["csrf_token"]
    return client


# -- building one valid request per route ------------------------------------------------------------------

Call = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
_serial = itertools.count()

NEW: dict[str, Callable[[str, str], dict[str, Any]]] = {
    "sites": lambda tag, site: {"id": f"site-{tag}", "name": "New site"},
    "residents": lambda tag, site: {"id": f"res-{tag}", "name": "新住户", "site": site, "room": "101"},
    "devices": lambda tag, site: {"id": f"dev-{tag}", "type": "other", "site": site, "room": "101"},
    "responders": lambda tag, site: {"id": f"resp-{tag}", "name": "Helper", "sites": [site]},
    "policies": lambda tag, site: {
        "id": f"pol-{tag}",
        "match": {"sites": [site]},
        "tiers": [{"targets": [{"role": "carer"}]}],
    },
}
#: An existing entry of each kind, by its site.
EXISTING = {
    "sites": lambda site: site,
    "residents": lambda site: f"{site}-li",
    "devices": lambda site: f"{site}-door-102",
    "responders": lambda site: f"{site}-nurse",
    "policies": lambda site: f"{site}-policy",
}


async def prepared(site: Site, method: str, path: str, place: str) -> Call:
    """A request for route (method, path) about the entries of site `place`, which would succeed for a
    user allowed to make it (entries it ends are made first, by the admin)."""
    admin = site.clients["admin"]
    tag = f"{next(_serial)}"
    parts = path.split("/")
    kind = parts[3] if len(parts) > 3 else ""
    if kind in NEW and path.endswith("{entry_id}") and method == "GET":
        entry = EXISTING[kind](place)
        return lambda c: c.get(f"/api/directory/{kind}/{entry}")
    if kind in NEW and path.endswith("/history"):
        entry = EXISTING[kind](place)
        return lambda c: c.get(f"/api/directory/{kind}/{entry}/history")
    if kind in NEW and path == f"/api/directory/{kind}" and method == "GET":
        return lambda c: c.get(f"/api/directory/{kind}", params={"limit": 500})
    if kind in NEW and method == "POST" and path == f"/api/directory/{kind}":
        body = NEW[kind](tag, place)
        return lambda c: c.post(f"/api/directory/{kind}", json=body)
    if kind in NEW and method == "PUT":
        entry = EXISTING[kind](place)
        current = (await admin.get(f"/api/directory/{kind}/{entry}")).json()
        current.pop("has_key_safe_code", None)
        return lambda c: c.put(f"/api/directory/{kind}/{entry}", json=current)
    if kind in NEW and (method == "DELETE" or path.endswith(("/discharge", "/retire"))):
        body = NEW[kind](tag, place)
        assert (await admin.post(f"/api/directory/{kind}", json=body)).status_code == 200
        if method == "DELETE":
            return lambda c: c.delete(f"/api/directory/{kind}/{body['id']}")
        return lambda c: c.post(f"/api/directory/{kind}/{body['id']}/{parts[-1]}", json={})
    if path == "/api/directory/devices/move":
        move = {"ids": [f"{place}-door-101"], "site": place, "room": "102"}
        return lambda c: c.post(path, json=move)
    if path == "/api/directory/responders/rota":
        rota = {"ids": [f"{place}-nurse"], "shifts": [{"start": "07:00", "end": "19:00"}]}
        return lambda c: c.post(path, json=rota)
    if path.endswith("/key-safe"):
        return lambda c: c.post(f"/api/directory/residents/{place}-wang/key-safe")
    if path.startswith("/api/directory/users"):
        return _user_call(method, path, tag)
    if path.startswith("/api/directory/import/"):
        return lambda c: _reimport_own_residents(c, path)
    if path == "/api/directory/export":
        return lambda c: c.get(path, params={"format": "csv", "kind": "devices"})
    if path == "/api/directory/template":
        return lambda c: c.get(path, params={"kind": "residents"})
    raise AssertionError(f"no request built for {method} {path}")


async def _reimport_own_residents(client: httpx.AsyncClient, path: str) -> httpx.Response:
    """Upload the residents the user exports (what they see): an import that changes nothing."""
    exported = (
        await client.get("/api/directory/export", params={"format": "csv", "kind": "residents"})
    ).content
    return await client.post(path, files={"file": ("residents.csv", exported, "text/csv")})


def _mentions_day(item: dict[str, Any]) -> bool:
    return "day" in json.dumps({key: item.get(key) for key in ("id", "site", "sites", "match")})


def _user_call(method: str, path: str, tag: str) -> Call:
    if method == "POST":
        return lambda c: c.post(path, json={"username": f"u{tag}", "password": PASSWORD})
    if method == "PUT":
        return lambda c: c.put("/api/directory/users/operator", json={"language": "en"})
    if path.endswith("/history"):
        return lambda c: c.get("/api/directory/users/operator/history")
    return lambda c: c.get(path)


async def test_every_directory_route_enforces_its_role_on_the_server(site: Site) -> None:
    routes = directory_routes(site.gateway)
    assert routes == set(LEAST_ROLE), "a directory route without a decided role, or a role for no route"
    await _give_key_safe(site, "day-wang")
    for (method, path), least in sorted(LEAST_ROLE.items()):
        call = await prepared(site, method, path, "day")
        assert (await call(site.clients["anonymous"])).status_code == 401, (method, path)
        for role in ("operator", "manager", "admin"):
            response = await call(site.clients[role])
            allowed = RANK[role] >= RANK[least]
            expected = 200 if allowed else 403
            assert response.status_code == expected, (method, path, role, response.text)
            if allowed:
                call = await prepared(site, method, path, "day")  # a fresh entry for the next role


async def test_every_directory_route_keeps_a_user_to_their_own_sites(site: Site) -> None:
    await _give_key_safe(site, "day-wang")
    for (method, path), least in sorted(LEAST_ROLE.items()):
        for user, role in (("night-operator", "operator"), ("night-manager", "manager")):
            client = site.clients[user]
            if RANK[role] < RANK[least]:
                call = await prepared(site, method, path, "day")
                assert (await call(client)).status_code == 403, (method, path, user)
                continue
            await _stays_at_home(site, client, method, path, user)


async def _stays_at_home(site: Site, client: httpx.AsyncClient, method: str, path: str, user: str) -> None:
    """The user reaches what is theirs (site night) and nothing of site day."""
    home = await (await prepared(site, method, path, "night"))(client)
    assert home.status_code == 200, (method, path, user, home.text)
    foreign = await (await prepared(site, method, path, "day"))(client)
    where = (method, path, user, foreign.text)
    if path in ("/api/directory/template",):
        assert foreign.status_code == 200
    elif method == "GET" and path.removeprefix("/api/directory/") in NEW:  # a list
        assert foreign.status_code == 200, where
        assert foreign.json()["items"], where
        assert not [item for item in foreign.json()["items"] if _mentions_day(item)], where
    elif path == "/api/directory/export":
        assert foreign.status_code == 200, where
        assert b"day-" not in foreign.content, where
    elif path.startswith("/api/directory/import/"):
        day_resident = (
            "id,name,site,room\r\n"
            + "".join(f"{r},{r},night,101\r\n" for r in ("night-wang", "night-li"))
            + "day-zhou,周,day,101\r\n"
        ).encode()
        refused = await client.post(path, files={"file": ("r.csv", day_resident, "text/csv")})
        assert refused.status_code == 422, where
        assert refused.json()["detail"]["problems"][0]["code"] == "site_not_yours"
        assert refused.json()["detail"]["problems"][0]["row"] == 4
    else:
        assert foreign.status_code == 404, where


async def _give_key_safe(site: Site, resident: str) -> None:
    admin = site.clients["admin"]
    for entry in (resident, resident.replace("day", "night")):
        body = (await admin.get(f"/api/directory/residents/{entry}")).json()
        body.pop("has_key_safe_code")
        assert (
            await admin.put(f"/api/directory/residents/{entry}", json={**body, "key_safe_code": "2580"})
        ).status_code == 200


async def test_a_manager_edits_a_resident_and_the_change_is_audited_in_their_history(site: Site) -> None:
    manager = site.clients["manager"]
    body = (await manager.get("/api/directory/residents/day-li")).json()
    body.pop("has_key_safe_code")
    body["contacts"] = [{"name": "李明", "relation": "儿子", "phones": ["+86 138 0000 0001"]}]
    changed = await manager.put("/api/directory/residents/day-li", json=body)
    assert changed.status_code == 200, changed.text
    assert changed.json()["summary"][1] == "老人：新增 0，修改 1，离院 0"
    history = (await site.clients["operator"].get("/api/directory/residents/day-li/history")).json()
    assert [h["action"] for h in history] == ["directory.resident.added", "directory.resident.changed"]
    assert history[-1]["actor"] == "user:manager"
    assert history[-1]["details"]["after"]["contacts"][0]["phones"] == ["+8613800000001"]
    discharged = await manager.post("/api/directory/residents/day-li/discharge", json={"on": "2026-03-01"})
    assert discharged.status_code == 422  # the pendant and fall radar of day-li are still active
    assert discharged.json()["detail"]["problems"][0]["message"].startswith("设备 'day-pendant-li' 仍在使用")


async def test_a_refused_form_names_each_field_in_the_users_language(site: Site) -> None:
    refused = await site.clients["manager"].post(
        "/api/directory/residents",
        json={
            "id": "zhou",
            "name": "周",
            "site": "day",
            "room": "101",
            "contacts": [{"name": "周明", "phones": ["12345"]}],
        },
    )
    assert refused.status_code == 422
    [found] = refused.json()["detail"]["problems"]
    assert found["loc"] == ["contacts", 0, "phones", 0]
    assert found["message"] == "电话 '12345' 不是国际格式号码（例如 +8613800000001）"
    elsewhere = await site.clients["manager"].post(
        "/api/directory/residents", json={"id": "zhou", "name": "周", "site": "day", "room": "999"}
    )
    assert (
        elsewhere.json()["detail"]["problems"][0]["message"]
        == "老人 'zhou' 所在的房间 '999' 不属于站点 'day'"
    )


async def test_lists_page_and_search(site: Site) -> None:
    admin = site.clients["admin"]
    for n in range(30):
        await admin.post(
            "/api/directory/devices", json={"id": f"pendant-{n:02}", "type": "sos_button", "site": "night"}
        )
    page = (
        await admin.get("/api/directory/devices", params={"site": "night", "offset": 10, "limit": 5})
    ).json()
    assert page["total"] == 35
    assert [d["id"] for d in page["items"]] == [
        "pendant-05",
        "pendant-06",
        "pendant-07",
        "pendant-08",
        "pendant-09",
    ]
    found = (await admin.get("/api/directory/residents", params={"q": "王秀"})).json()
    assert sorted(r["id"] for r in found["items"]) == ["day-wang", "night-wang"]
    assert found["items"][0]["has_key_safe_code"] is False


async def test_the_key_safe_code_is_revealed_only_on_request_and_every_reveal_is_audited(site: Site) -> None:
    await _give_key_safe(site, "day-wang")
    operator = site.clients["operator"]
    shown = (await operator.get("/api/directory/residents/day-wang")).json()
    assert shown["has_key_safe_code"] is True
    assert "key_safe_code" not in shown
    revealed = await operator.post("/api/directory/residents/day-wang/key-safe")
    assert revealed.json() == {"key_safe_code": "2580"}
    history = (await operator.get("/api/directory/residents/day-wang/history")).json()
    assert history[-1]["action"] == "directory.resident.key_safe_revealed"
    assert history[-1]["actor"] == "user:operator"
    assert "2580" not in str(history)


async def test_an_import_is_previewed_then_applied_and_an_upload_too_large_is_counted(site: Site) -> None:
    admin = site.clients["admin"]
    exported = (await admin.get("/api/directory/export")).content
    assert b"day-wang" in exported
    grown = exported.decode().replace(
        "devices:\n", "devices:\n- {id: fall-102, type: fall_sensor, site: day, room: '102'}\n"
    )
    preview = await admin.post("/api/directory/import/preview", files={"file": ("d.yaml", grown.encode())})
    assert preview.json()["changes"]["devices"]["added"] == ["fall-102"]
    assert (await admin.get("/api/directory/devices/fall-102")).status_code == 404
    applied = await admin.post("/api/directory/import/apply", files={"file": ("d.yaml", grown.encode())})
    assert applied.status_code == 200, applied.text
    assert (await admin.get("/api/directory/devices/fall-102")).status_code == 200
    huge = await admin.post(
        "/api/directory/import/preview", files={"file": ("big.csv", b"x" * (5 * 1024 * 1024 + 10))}
    )
    assert huge.status_code in (413, 422)
    metrics = (await admin.get("/metrics")).text
    assert 'careline_directory_imports_total{outcome="too_large"} 1.0' in metrics
    assert 'careline_directory_imports_total{outcome="applied"} 1.0' in metrics
