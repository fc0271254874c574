"""The dashboard's defences against the web, and its health, on a real gateway: real Mosquitto, real
SQLite, real HTTP server and WebSocket. The login throttle's arithmetic is also checked on its own."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from harness import PASSWORD, LiveGateway, Publisher, live_gateway, new_config
from services import Mosquitto, free_port
from stores import POSTGRESQL, writes_blocked
from test_sensor_log_review import manager_client

from dashboard.api import MAX_BODY_BYTES
from dashboard.security import CSRF_HEADER
from dashboard.throttle import LoginThrottle, Scope, ThrottledError

STATIC = Path(__file__).resolve().parent.parent / "dashboard" / "static"
WRONG = {"username": "operator", "password": "not-the-password"}
RIGHT = {"username": "operator", "password": PASSWORD}


async def _an_open_incident(live: LiveGateway, mosquitto: Mosquitto) -> int:
    device = Publisher(mosquitto.port)
    try:
        device.sos("night", "night-pendant-wang")
        incidents = await live.wait_for(lambda i: len(i) == 1, "the SOS incident")
    finally:
        device.close()
    incident_id: int = incidents[0]["id"]
    return incident_id


def _refused(live: LiveGateway, reason: str) -> float:
    value: float = live.gateway.metrics.http_refused.labels(reason)._value.get()
    return value


# --- headers and the pages' own scripts -----------------------------------------------------------


async def test_every_response_carries_the_security_headers_and_the_docs_are_off(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        for path in ("/", "/review", "/static/app.js", "/api/healthz", "/api/incidents/1", "/no-such-page"):
            headers = (await live.http.get(path)).headers
            csp = headers["content-security-policy"]
            assert "script-src 'self';" in csp, path
            assert "unsafe-inline" not in csp, path
            assert "frame-ancestors 'none'" in csp, path
            assert headers["x-frame-options"] == "DENY", path
            assert headers["referrer-policy"] == "no-referrer", path
            assert headers["x-content-type-options"] == "nosniff", path
        assert (await live.http.get("/docs")).status_code == 404
        assert (await live.http.get("/openapi.json")).status_code == 404


@pytest.mark.parametrize("page", sorted(p.name for p in STATIC.glob("*.html")))
def test_the_pages_have_no_inline_scripts_or_styles(page: str) -> None:
    """The Content-Security-Policy allows only the pages' own files: inline code would be blocked."""
    html = (STATIC / page).read_text(encoding="utf-8")
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "<style" not in html
    assert re.findall(r"\s(?:style|on[a-z]+)\s*=", html) == []


# --- cross-site requests --------------------------------------------------------------------------


async def test_a_page_on_another_origin_cannot_act_with_the_operators_cookie(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = new_config(mosquitto.url, tmp_path)
    config["http"]["trusted_origins"] = ["https://careline.example.org"]
    async with live_gateway(config) as live:
        incident_id = await _an_open_incident(live, mosquitto)
        ack = f"/api/incidents/{incident_id}/ack"
        same_host_other_port = f"http://127.0.0.1:{free_port()}"
        for headers in (
            {"Origin": same_host_other_port},
            {"Origin": "null"},
            {"Referer": f"{same_host_other_port}/evil.html"},
        ):
            refused = await live.http.post(ack, headers=headers)
            assert refused.status_code == 403, headers
            assert "not allowed" in refused.json()["detail"] or "opaque" in refused.json()["detail"]
        assert _refused(live, "origin") == 3

        token = live.http.headers.pop(CSRF_HEADER)
        without_token = await live.http.post(ack, headers={"Origin": live.base_url.rstrip("/")})
        assert without_token.status_code == 403
        assert CSRF_HEADER in without_token.json()["detail"]
        wrong_token = await live.http.post(ack, headers={CSRF_HEADER: "0" * 64})
        assert wrong_token.status_code == 403
        assert _refused(live, "csrf") == 2
        assert (await live.incidents())[0]["status"] == "open"

        live.http.headers[CSRF_HEADER] = token
        trusted = await live.http.post(ack, headers={"Origin": "https://careline.example.org"})
        assert trusted.status_code == 200
        assert trusted.json()["status"] == "acknowledged"


async def test_the_websocket_opens_only_for_the_gateways_own_pages(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        cookie = "; ".join(f"{k}={v}" for k, v in live.http.cookies.items())
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with websockets.connect(
                live.ws_url,
                additional_headers={"Cookie": cookie},
                origin=websockets.Origin("http://evil.test"),
            ):
                pass
        assert refused.value.response.status_code == 403
        assert _refused(live, "websocket_origin") == 1
        own = websockets.Origin(live.base_url.rstrip("/"))
        async with websockets.connect(live.ws_url, additional_headers={"Cookie": cookie}, origin=own) as ws:
            assert json.loads(await ws.recv()) == {"type": "hello"}


# --- login throttling -----------------------------------------------------------------------------


async def test_a_burst_of_wrong_passwords_is_locked_out_with_429_and_audited(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        # A generous timeout: unthrottled, 200 password checks take a while, and the count is the point.
        async with httpx.AsyncClient(base_url=live.base_url, timeout=120) as attacker:
            answers = await asyncio.gather(*(attacker.post("/api/login", json=WRONG) for _ in range(200)))
            codes = [answer.status_code for answer in answers]
            # Five free failures, then a lock that doubles: a burst gets only a handful of guesses checked.
            assert 5 <= codes.count(401) <= 8, codes
            assert codes.count(429) == 200 - codes.count(401)
            assert all(int(a.headers["Retry-After"]) >= 1 for a in answers if a.status_code == 429)
            probe = await attacker.post("/api/login", json=WRONG)
            codes.append(probe.status_code)
            if probe.status_code == 429:
                await asyncio.sleep(int(probe.headers["Retry-After"]) + 0.1)
                probe = await attacker.post("/api/login", json=WRONG)
                codes.append(probe.status_code)
            assert probe.status_code == 401  # a guess past the free ones: it locks for 2 s or more
            locked = await attacker.post("/api/login", json=RIGHT)
            codes.append(locked.status_code)
            assert locked.status_code == 429  # even the right password waits out the lock, unchecked
            await asyncio.sleep(int(locked.headers["Retry-After"]) + 0.1)
            assert (await attacker.post("/api/login", json=RIGHT)).status_code == 200
        metrics = live.gateway.metrics
        assert metrics.login_failures._value.get() == codes.count(401)
        throttled = sum(metrics.login_throttled.labels(s.value)._value.get() for s in Scope)
        assert throttled == codes.count(429)
        locks = [e for e in live.gateway.store.audit_trail() if e.action == "login.locked"]
        assert {(e.details["scope"], e.details["key"]) for e in locks} == {
            ("user", "operator"),
            ("address", "127.0.0.1"),
        }
        assert live.gateway.store.verify_audit_chain() is None


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fail(throttle: LoginThrottle, user: str, address: str = "10.0.0.1") -> None:
    throttle.begin(user, address)
    throttle.failed(user, address)


def test_the_lock_doubles_with_each_failure_and_a_success_clears_the_user_name() -> None:
    clock = _Clock()
    throttle = LoginThrottle(free_failures=3, max_lock_s=10, clock=clock)
    for _ in range(3):
        _fail(throttle, "Alice")
    with pytest.raises(ThrottledError) as locked:
        throttle.begin("alice", "10.0.0.9")  # user names are compared case-blind, from any address
    assert (locked.value.scope, locked.value.retry_after_header) == (Scope.USER, "1")
    waits = []
    for _ in range(6):
        clock.now += 11
        _fail(throttle, "alice", "10.0.0.2")
        with pytest.raises(ThrottledError) as again:
            throttle.begin("alice", "10.0.0.3")
        waits.append(again.value.retry_after_s)
    assert waits == [2, 4, 8, 10, 10, 10]
    clock.now += 11
    throttle.begin("alice", "10.0.0.4")
    throttle.succeeded("alice", "10.0.0.4")
    throttle.begin("alice", "10.0.0.4")  # afresh
    throttle.abandoned("alice", "10.0.0.4")


def test_one_address_guessing_many_user_names_is_locked_by_its_address() -> None:
    clock = _Clock()
    throttle = LoginThrottle(free_failures=3, max_lock_s=60, clock=clock)
    starts = []
    for n in range(3):
        throttle.begin(f"user-{n}", "10.0.0.1")
        starts += throttle.failed(f"user-{n}", "10.0.0.1")
    assert [(s.scope, s.key) for s in starts] == [(Scope.ADDRESS, "10.0.0.1")]
    with pytest.raises(ThrottledError) as locked:
        throttle.begin("user-99", "10.0.0.1")
    assert locked.value.scope is Scope.ADDRESS
    throttle.begin("user-99", "10.0.0.2")  # another address is not affected


def test_past_the_free_failures_only_one_attempt_at_a_time_is_admitted() -> None:
    throttle = LoginThrottle(free_failures=2, clock=_Clock())
    throttle.begin("bob", "10.0.0.1")
    throttle.begin("bob", "10.0.0.2")
    with pytest.raises(ThrottledError):
        throttle.begin("bob", "10.0.0.3")  # two guesses in flight already use up the free ones


def test_the_throttle_forgets_quiet_keys_and_never_holds_more_than_its_capacity() -> None:
    clock = _Clock()
    throttle = LoginThrottle(free_failures=3, max_lock_s=60, capacity=100, clock=clock)
    for n in range(1000):
        _fail(throttle, f"user-{n}", f"10.0.{n // 250}.{n % 250}")
    assert len(throttle) <= 200
    clock.now += 3600
    _fail(throttle, "late", "10.9.9.9")
    assert len(throttle) == 2


def test_spraying_made_up_user_names_does_not_lift_a_users_lock() -> None:
    clock = _Clock()
    throttle = LoginThrottle(free_failures=3, max_lock_s=300, capacity=50, clock=clock)
    for _ in range(3):
        _fail(throttle, "operator", "10.0.0.1")
    for n in range(500):
        clock.now += 0.001  # 500 guesses within the user's first (1 s) lock
        _fail(throttle, f"made-up-{n}", f"10.1.{n // 200}.{n % 200}")
    with pytest.raises(ThrottledError) as locked:
        throttle.begin("operator", "10.2.0.1")
    assert locked.value.scope is Scope.USER


# --- bounds on ids and dates ----------------------------------------------------------------------


async def test_ids_beyond_64_bits_and_year_one_dates_are_refused_not_a_server_error(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    huge = str(2**64)
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        for path in (f"/api/incidents/{huge}", f"/api/incidents/{huge}/audit", "/api/incidents/0"):
            assert (await live.http.get(path)).status_code == 422, path
        assert (await live.http.post(f"/api/incidents/{huge}/ack")).status_code == 422
        assert (await live.http.get("/api/incidents/123")).status_code == 404
        status_url = f"/api/twilio/sms-status?n={huge}"
        assert (await live.http.post(status_url, data={"MessageStatus": "sent"})).status_code == 422
        manager = await manager_client(live.base_url, live)
        try:
            for params in (
                {"end": "0001-01-01T00:00:00Z"},
                {"start": "0001-01-01T00:00:00", "end": "0001-01-02T00:00:00"},
                {"end": "9999-12-31T23:59:59+14:00"},
                {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            ):
                refused = await manager.get("/api/review/alarms", params=params)
                assert refused.status_code == 422, (params, refused.text)
            period = {"start": "2026-01-01T00:00:00", "end": "2026-01-02T00:00:00+08:00"}
            fine = await manager.get("/api/review/alarms", params=period)
            assert fine.status_code == 200
        finally:
            await manager.aclose()


# --- /metrics, /docs and health ------------------------------------------------------------------


async def test_metrics_need_the_configured_bearer_token_and_docs_are_served_when_asked(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_METRICS_TOKEN", "s3cret-scrape-token")
    config = new_config(mosquitto.url, tmp_path)
    config["http"] |= {"metrics_token_env": "TEST_METRICS_TOKEN", "api_docs": True}
    async with live_gateway(config) as live, httpx.AsyncClient(base_url=live.base_url) as anonymous:
        assert (await anonymous.get("/metrics")).status_code == 401
        wrong = await anonymous.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        scraped = await anonymous.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-token"})
        assert scraped.status_code == 200
        assert 'careline_http_refused_total{reason="metrics_token"} 2.0' in scraped.text
        docs = await anonymous.get("/docs")
        assert docs.status_code == 200
        assert "cdn.jsdelivr.net" in docs.headers["content-security-policy"]
        assert (await anonymous.get("/openapi.json")).json()["info"]["title"] == "Careline"


async def test_metrics_can_be_turned_off(mosquitto: Mosquitto, tmp_path: Path) -> None:
    config = new_config(mosquitto.url, tmp_path)
    config["http"]["metrics"] = False
    async with live_gateway(config) as live:
        assert (await live.http.get("/metrics")).status_code == 404


async def _health(live: LiveGateway, want: str, limit_s: float = 15.0) -> httpx.Response:
    async with httpx.AsyncClient(base_url=live.base_url) as anonymous:
        for _ in range(int(limit_s / 0.1)):
            answer = await anonymous.get("/api/healthz")
            if answer.json()["status"] == want:
                return answer
            await asyncio.sleep(0.1)
    raise AssertionError(f"/api/healthz never said {want!r}: {answer.json()}")


@pytest.mark.parametrize(
    ("storage", "reason"),
    [
        # The lock outlasts the busy timeout: every commit fails and is retried.
        (
            {"busy_timeout_s": 0.2},
            "alarm commits failing: "
            + ("canceling statement due to lock timeout" if POSTGRESQL else "database is locked"),
        ),
        # The commit waits on the lock (long busy timeout): the SOS waits beyond the health limit.
        ({"busy_timeout_s": 60}, "an alarm has waited"),
    ],
    ids=["commits-failing", "alarm-waiting"],
)
async def test_health_is_degraded_while_an_alarm_cannot_be_committed(
    mosquitto: Mosquitto, tmp_path: Path, storage: dict[str, Any], reason: str
) -> None:
    config = new_config(mosquitto.url, tmp_path)
    config["storage"] |= storage
    config["http"]["health_max_alarm_wait_s"] = 1.0
    async with live_gateway(config) as live:
        assert (await _health(live, "ok")).status_code == 200
        device = Publisher(mosquitto.port)
        try:
            with writes_blocked(live.gateway.config.storage.url):
                device.sos("night", "night-pendant-wang")
                degraded = await _health(live, "degraded")
                assert degraded.status_code == 503
                assert degraded.json() == {"status": "degraded"}  # no internals for anonymous callers
                details = await live.http.get("/api/health/details")
                assert details.status_code == 503
                assert any(r.startswith(reason) for r in details.json()["reasons"]), details.json()
            assert (await _health(live, "ok")).status_code == 200
            await live.wait_for(lambda i: len(i) == 1, "the SOS, committed once the lock is gone")
        finally:
            device.close()
        async with httpx.AsyncClient(base_url=live.base_url) as anonymous:
            assert (await anonymous.get("/api/health/details")).status_code == 401


# --- the single writer ----------------------------------------------------------------------------


@asynccontextmanager
async def writer_held(live: LiveGateway) -> AsyncIterator[None]:
    """Keep the incident store's single writer thread busy until the block ends."""
    gate = threading.Event()
    held = asyncio.ensure_future(live.gateway.service.write(gate.wait, 30))
    try:
        yield
    finally:
        gate.set()
        await held


async def test_login_and_logout_write_their_sessions_through_the_single_writer(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with (
        live_gateway(new_config(mosquitto.url, tmp_path)) as live,
        httpx.AsyncClient(base_url=live.base_url) as second,
    ):
        async with writer_held(live):
            login = asyncio.ensure_future(
                second.post("/api/login", json={"username": "operator", "password": PASSWORD})
            )
            await asyncio.sleep(1.0)
            assert not login.done(), "the session row was written beside the writer"
        assert (await login).status_code == 200
        second.headers[CSRF_HEADER] = (await login).json()["csrf_token"]
        async with writer_held(live):
            logout = asyncio.ensure_future(second.post("/api/logout"))
            await asyncio.sleep(1.0)
            assert not logout.done(), "the session row was deleted beside the writer"
        assert (await logout).status_code == 204
        assert (await second.get("/api/me")).status_code == 401


async def test_a_body_beyond_the_limit_is_refused_413_declared_or_streamed_and_sign_in_still_works(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Anyone may post to /api/login: an unbounded body there would cost memory before any check."""
    json_body = {"content-type": "application/json"}

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b" " * (1024 * 1024)

    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        anyone = httpx.AsyncClient(base_url=live.base_url)
        huge = b'{"username": "' + b"x" * (MAX_BODY_BYTES + 1) + b'", "password": "p"}'
        declared = await anyone.post("/api/login", content=huge, headers=json_body)
        streamed = await anyone.post("/api/login", content=chunks(), headers=json_body)
        fine = await anyone.post("/api/login", json={"username": "operator", "password": PASSWORD})
        await anyone.aclose()

    assert declared.status_code == 413
    assert declared.json()["detail"] == f"request body larger than {MAX_BODY_BYTES} bytes"
    assert declared.headers["x-frame-options"] == "DENY"  # refused outside the app, the headers still go on
    assert streamed.status_code == 413
    assert fine.status_code == 200
