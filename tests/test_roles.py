"""Roles are enforced by the server on every endpoint and page, not by what the pages show.

Every route of the running gateway is enumerated: each must be either public (listed below, with the
reason), or refuse an anonymous caller (401; pages send them to sign in), and an operator must be refused
(403) everything that is not on the operators' list. A new endpoint therefore has to be classified here
before the suite passes: nobody adds a manager's endpoint that an operator can call by accident.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute
from harness import live_gateway, new_config
from services import Mosquitto
from starlette.routing import BaseRoute

#: Reachable without signing in, and why that is safe.
PUBLIC: dict[tuple[str, str], str] = {
    ("POST", "/api/login"): "signing in",
    ("GET", "/api/healthz"): "load balancers; only ok/degraded is told",
    (
        "GET",
        "/api/readyz",
    ): "load balancers; ready or not, and which part is missing (store, broker, cluster)",
    ("GET", "/api/catalogue/{language}"): "the sign-in form's words; no text is a secret",
    ("GET", "/"): "the alarm queue is also the sign-in page",
    ("GET", "/metrics"): "off or behind a bearer token by configuration (tests/test_dashboard_hardening.py)",
    ("POST", "/api/twilio/sms-inbound"): "Twilio's signature is checked",
    ("POST", "/api/twilio/sms-status"): "Twilio's signature is checked",
    ("POST", "/api/twilio/call-status"): "Twilio's signature is checked",
    ("POST", "/api/twilio/gather"): "Twilio's signature is checked",
    ("POST", "/api/twilio/reassurance/gather"): "Twilio's signature is checked",
    ("POST", "/api/twilio/reassurance/call-status"): "Twilio's signature is checked",
    ("POST", "/api/twilio/reassurance/sms-status"): "Twilio's signature is checked",
    ("GET", "/api/escalation/ack/{token}"): "the link's one-time token is the credential",
    ("POST", "/api/escalation/ack/{token}"): "the link's one-time token is the credential",
}

#: What an operator may use: the queue, the incident screen, the handover, reading the directory.
#: Everything else (reports, audit, device board, sensor logs, directory changes, users) is refused.
OPERATOR: set[tuple[str, str]] = {
    ("POST", "/api/logout"),
    ("GET", "/api/me"),
    ("GET", "/api/incidents"),
    ("GET", "/api/incidents/{incident_id}"),
    ("GET", "/api/incidents/{incident_id}/audit"),
    ("GET", "/api/incidents/{incident_id}/escalation"),
    ("POST", "/api/incidents/{incident_id}/ack"),
    ("POST", "/api/incidents/{incident_id}/resolve"),
    ("GET", "/api/stats"),
    ("GET", "/api/dead-letters"),
    ("GET", "/api/device-tests"),
    ("GET", "/api/devices"),
    ("GET", "/api/health/details"),
    # The incident screen and the workflow of one alarm.
    ("GET", "/incident/{incident_id}"),
    ("GET", "/handover"),
    ("GET", "/api/incidents/{incident_id}/detail"),
    ("GET", "/api/incidents/{incident_id}/notes"),
    ("POST", "/api/incidents/{incident_id}/notes"),
    ("GET", "/api/incidents/{incident_id}/dispatches"),
    ("POST", "/api/incidents/{incident_id}/dispatch"),
    ("POST", "/api/incidents/{incident_id}/take"),
    ("POST", "/api/incidents/{incident_id}/release"),
    # Operators read the response scripts; only managers write them.
    ("GET", "/api/response-scripts"),
    ("GET", "/api/response-scripts/defaults"),
    # The shift handover is signed by the operator handing over.
    ("GET", "/api/handovers"),
    ("GET", "/api/handovers/draft"),
    ("GET", "/api/handovers/latest"),
    ("GET", "/api/handovers/{handover_id}"),
    ("POST", "/api/handovers"),
    # Every role tests alarm buttons (dashboard/duty_api.py), within its sites.
    ("GET", "/test-button"),
    ("GET", "/api/duty/test-mode"),
    ("PUT", "/api/duty/test-mode/{device_id}"),
    ("DELETE", "/api/duty/test-mode/{device_id}"),
}
#: Directory reads an operator needs at night (names, rooms, contacts, policies, what changed and when),
#: the resident's key-safe code (revealed one at a time, audited: responders must get in), and the
#: installer's lists of devices heard or paired but not bound (they explain a silent device).
OPERATOR_PATTERNS = (
    re.compile(
        r"^GET /api/directory/(sites|residents|devices|responders|policies)(/\{entry_id\}(/history)?)?$"
    ),
    re.compile(r"^GET /api/directory/template$"),
    re.compile(r"^POST /api/directory/residents/\{entry_id\}/key-safe$"),
    re.compile(r"^GET /api/devices/(pairing|unbound)$"),
    # A carer or nurse enters a resident's body temperature (docs/risks.md), within their sites.
    re.compile(r"^POST /api/residents/\{resident_id\}/temperature$"),
)

PAGES_FOR_MANAGERS = (
    "/admin",
    "/review",
    "/office/devices",
    "/office/history",
    "/office/audit",
    "/office/reports",
    "/office/quality",
    "/office/scripts",
    "/office/reassurance",
    "/office/fever",
    "/office/visits",
)


def _routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        if isinstance(route, APIRoute):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield method, prefix + route.path
            continue
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _routes(included.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]


def every_route(app: FastAPI) -> list[tuple[str, str]]:
    return sorted(set(_routes(app.routes)))


def _concrete(path: str) -> str:
    samples = {"incident_id": "1", "handover_id": "1", "language": "en", "token": "x" * 32}
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: samples.get(m.group(1), "nobody"), path)


def operator_may(method: str, path: str) -> bool:
    return (method, path) in OPERATOR or any(p.match(f"{method} {path}") for p in OPERATOR_PATTERNS)


async def _call(http: httpx.AsyncClient, method: str, path: str) -> httpx.Response:
    body: dict[str, Any] | None = None if method in ("GET", "DELETE") else {}
    return await http.request(method, _concrete(path), json=body, follow_redirects=False)


async def _let_in_anonymously(base_url: str, routes: list[tuple[str, str]]) -> list[tuple[str, str, int]]:
    let_in = []
    async with httpx.AsyncClient(base_url=base_url) as anonymous:
        for method, path in routes:
            if (method, path) in PUBLIC:
                continue
            answer = await _call(anonymous, method, path)
            sent_to_sign_in = answer.status_code == 303 and answer.headers["location"].startswith("/?next=")
            if answer.status_code != 401 and not sent_to_sign_in:
                let_in.append((method, path, answer.status_code))
    return let_in


async def _misjudged_operator(
    operator: httpx.AsyncClient, routes: list[tuple[str, str]]
) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]:
    """(routes an operator got into but should not have, routes an operator should use but was refused)"""
    let_in, refused = [], []
    for method, path in routes:
        if (method, path) in PUBLIC or (method, path) == ("POST", "/api/logout"):
            continue
        answer = await _call(operator, method, path)
        if operator_may(method, path) and answer.status_code in (401, 403):
            refused.append((method, path, answer.status_code))
        elif not operator_may(method, path) and answer.status_code != 403:
            let_in.append((method, path, answer.status_code))
    return let_in, refused


async def test_every_endpoint_refuses_the_anonymous_and_operators_get_only_their_own(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        routes = every_route(live.gateway.http)
        assert len(routes) > 30, routes
        assert await _let_in_anonymously(live.base_url, routes) == []
        let_in, refused = await _misjudged_operator(live.http, routes)
        assert let_in == [], f"classify these in tests/test_roles.py, or guard them: {let_in}"
        assert refused == []


async def test_pages_send_the_anonymous_to_sign_in_and_refuse_operators_the_managers_pages(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        async with httpx.AsyncClient(base_url=live.base_url) as anonymous:
            for path in PAGES_FOR_MANAGERS:
                answer = await anonymous.get(path, follow_redirects=False)
                assert answer.status_code == 303
                assert answer.headers["location"] == f"/?next={path}"
        for path in PAGES_FOR_MANAGERS:
            answer = await live.http.get(path, follow_redirects=False)
            assert answer.status_code == 403, path
            assert 'id="refused"' in answer.text
        # Links to one incident (history, sensor logs) open it on the console, signed in or after.
        linked = await live.http.get("/incident/7", follow_redirects=False)
        assert (linked.status_code, linked.headers["location"]) == (303, "/#/incident/7")
        async with httpx.AsyncClient(base_url=live.base_url) as anonymous:
            answer = await anonymous.get("/incident/7", follow_redirects=False)
            assert answer.headers["location"] == "/?next=/incident/7"
