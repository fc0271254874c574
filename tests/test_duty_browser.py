"""The "Test a button" page in a real Chromium against a real gateway and Mosquitto, phone-sized: the
tester starts test mode for a pendant, presses it, and the page says "test received" in Chinese (the
operator's own language) and in English, with no alarm in the queue and no script or CSP error."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import Publisher, live_gateway, new_config
from playwright.async_api import Browser, expect
from services import Mosquitto
from test_admin_browser import page_faults, sign_in

from gateway.catalogue import CATALOGUE

pytestmark = [pytest.mark.asyncio, pytest.mark.browser]


def before_placeholder(msgid: str, language: str) -> str:
    """The words of a text up to its first placeholder (the time the page fills in)."""
    return CATALOGUE.entries[msgid][language].split("{", 1)[0]


async def test_a_tester_is_told_test_received_in_both_languages(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        page = await browser.new_page(locale="en-GB", viewport={"width": 390, "height": 844})
        faults = page_faults(page)
        await sign_in(page, live.base_url, "operator")
        await page.goto(f"{live.base_url}/test-button")
        await expect(page.locator("#test-link")).to_have_attribute("data-state", "live")
        card = page.locator('.test-card[data-device="night-pendant-wang"]')
        await expect(card).to_have_attribute("data-state", "idle")
        await expect(page.locator('.test-card[data-device="night-door-101"]')).to_have_count(0)

        await card.locator(".test-start").click()
        await expect(card).to_have_attribute("data-state", "armed")
        await expect(card.locator(".test-status")).to_contain_text(
            before_placeholder("duty.page.armed", "zh-CN")
        )

        device = Publisher(mosquitto.port)
        device.sos("night", "night-pendant-wang")
        await expect(card).to_have_attribute("data-state", "received")
        await expect(card.locator(".test-status")).to_contain_text(
            before_placeholder("duty.page.received", "zh-CN")
        )
        assert await live.incidents() == []

        await page.select_option("#lang", "en")
        en_card = page.locator('.test-card[data-device="night-pendant-wang"]')
        await expect(en_card.locator(".test-status")).to_contain_text(
            before_placeholder("duty.page.received", "en")
        )
        await expect(page.locator("h1")).to_have_text(CATALOGUE.text("duty.page.title", "en"))
        await expect(en_card.locator(".test-last")).to_contain_text(
            before_placeholder("duty.page.lastTest", "en")
        )
        device.close()
    assert faults == []
