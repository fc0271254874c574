"""The operator page in a real Chromium (Debian's, driven by Playwright), against a real gateway."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from harness import PASSWORD, Publisher, live_gateway, new_config
from playwright.async_api import Browser, ConsoleMessage, Page, expect
from services import Mosquitto
from stores import disable_append_only, store_execute
from test_catalogue import rule_names

from gateway.catalogue import CATALOGUE

pytestmark = [pytest.mark.asyncio, pytest.mark.browser]


def policy_violations(page: Page) -> list[str]:
    """Console reports of anything the Content-Security-Policy blocked on this page (kept filling)."""
    seen: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            seen.append(message.text)

    page.on("console", note)
    return seen


async def _log_in(page: Page, base_url: str) -> None:
    await page.goto(base_url)
    await page.fill("#username", "operator")
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=10_000)


async def test_an_operator_sees_an_sos_arrive_live_and_acknowledges_and_resolves_it(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        page = await browser.new_page(locale="en-GB")
        blocked = policy_violations(page)
        await page.add_init_script("localStorage.clear()")
        await _log_in(page, live.base_url)
        await expect(page.locator("#no-incidents")).to_be_visible()

        device = Publisher(mosquitto.port)
        device.sos("night", "night-pendant-wang")
        row = page.locator("#incidents tr[data-incident-id]")
        await expect(row).to_have_count(1, timeout=10_000)
        await expect(row).to_have_attribute("data-status", "open")
        await expect(row).to_have_attribute("data-severity", "critical")
        await expect(row).to_contain_text("王秀英")
        await page.screenshot(path=str(tmp_path / "open-incident.png"))

        await row.locator("button[data-action=ack]").click()
        await expect(row).to_have_attribute("data-status", "acknowledged")

        await row.locator("button[data-action=resolve]").click()
        await page.select_option("#resolve-outcome", "assisted_on_site")
        await page.fill("#resolve-note", "Helped back to bed; no injury")
        await page.click("#resolve-submit")
        await expect(row).to_have_count(0)
        await expect(page.locator("#no-incidents")).to_be_visible()

        incident = (await live.incidents("resolved"))[0]
        assert (incident["outcome"], incident["note"], incident["resolved_by"]) == (
            "assisted_on_site",
            "Helped back to bed; no injury",
            "user:operator",
        )
        # The acknowledgement and the resolution carried the session's CSRF token; nothing was blocked.
        assert live.gateway.metrics.http_refused.labels("csrf")._value.get() == 0
        assert blocked == []
        device.close()


async def test_the_page_speaks_simplified_chinese(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        page = await browser.new_page(locale="en-GB")
        await page.add_init_script("localStorage.clear()")
        await _log_in(page, live.base_url)
        await page.select_option("#lang", "zh-CN")
        assert await page.evaluate("document.documentElement.lang") == "zh-CN"
        device = Publisher(mosquitto.port)
        device.zigbee("night/102/pendant", action="emergency", battery="lots")
        row = page.locator("#incidents tr[data-incident-id]")
        await expect(row).to_contain_text("紧急呼叫", timeout=10_000)
        await expect(row.locator("button[data-action=ack]")).to_have_text("确认接警")
        rules = sorted(rule_names())
        in_page = "(names) => import('/static/i18n.js').then((m) => names.map((r) => m.label('rule', r)))"
        shown = await page.evaluate(in_page, rules)
        assert shown == [CATALOGUE.label("rule", rule, "zh-CN") for rule in rules]
        assert not set(shown) & set(rules)  # no raw rule id on the operator's screen
        faults = row.locator(".faults")
        await expect(faults).to_have_text("设备数据有误（1 处），报警照常处理")
        await expect(faults).to_have_attribute("title", re.compile("battery must be a number; ignored"))
        await page.select_option("#lang", "en")
        await expect(row).to_contain_text("SOS call")
        await expect(faults).to_have_text("Device data faulty (1); alarm kept")
        device.close()


async def test_a_manager_sees_whether_the_audit_trail_is_intact_and_where_it_was_tampered(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    from test_sensor_log_review import manager_client

    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        device = Publisher(mosquitto.port)
        device.sos("night", "night-pendant-wang")
        [incident] = await live.wait_for(lambda i: len(i) == 1, "the SOS")
        (await live.http.post(f"/api/incidents/{incident['id']}/ack")).raise_for_status()
        device.close()
        entries = live.gateway.store.audit_trail()
        assert (await live.http.get("/api/audit/verify")).status_code == 403  # operators: no
        manager = await manager_client(live.base_url, live)
        report = (await manager.get("/api/audit/verify")).json()
        assert (report["intact"], report["verified"], report["first_broken_id"]) == (True, len(entries), None)

        context = await browser.new_context(locale="en-GB")
        await context.add_cookies(
            [{"name": k, "value": v, "url": live.base_url} for k, v in manager.cookies.items()]
        )
        page = await context.new_page()
        blocked = policy_violations(page)
        await page.goto(f"{live.base_url.rstrip('/')}/review")
        line = page.locator("#audit-chain")
        await expect(line).to_have_attribute("data-state", "intact")
        await expect(line).to_have_text(f"Audit trail intact: {len(entries)} entries verified.")

        tampered = entries[-1].id
        url = live.gateway.config.storage.url
        disable_append_only(url)
        store_execute(url, "UPDATE audit_log SET actor = 'user:mallory' WHERE id = :id", id=tampered)
        report = (await manager.get("/api/audit/verify")).json()
        assert (report["intact"], report["first_broken_id"], report["verified"]) == (
            False,
            tampered,
            len(entries) - 1,
        )
        await page.reload()
        await expect(line).to_have_attribute("data-state", "broken")
        await expect(line).to_contain_text(f"BROKEN at entry #{tampered} (incident.acknowledged")
        await page.select_option("#lang", "zh-CN")
        await expect(line).to_contain_text(f"审计记录在第 #{tampered} 条被破坏")
        assert blocked == []
        await context.close()
        await manager.aclose()
