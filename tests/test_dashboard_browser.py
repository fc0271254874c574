"""The operator page in a real Chromium (Debian's, driven by Playwright), against a real gateway."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from harness import PASSWORD, Publisher, live_gateway, new_config
from playwright.async_api import Browser, Page, async_playwright, expect
from services import Mosquitto
from test_catalogue import rule_names

from gateway.catalogue import CATALOGUE

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_PRESENT = Path(CHROMIUM).exists()
pytestmark = [pytest.mark.asyncio, pytest.mark.browser]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM_PRESENT:
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install chromium)")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        yield chromium
        await chromium.close()


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
