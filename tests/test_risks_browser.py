"""The fever watch page in a real Chromium: a manager enters residents' temperatures and sees the
feverish ones listed, the third raising the site's fever cluster (linked), in Chinese with no raw key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from harness import live_gateway
from playwright.async_api import Browser, expect
from services import Mosquitto
from test_office_browser import manager_page, page_faults
from test_risks_live import risk_config

pytestmark = [pytest.mark.asyncio, pytest.mark.browser]
RAW_KEY = re.compile(r"\b(?:risks|nav|rule|error)\.[A-Za-z0-9_.]+\b")


async def test_a_manager_enters_temperatures_and_sees_the_feverish_residents_and_the_cluster(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(risk_config(mosquitto, tmp_path)) as live:
        page = await manager_page(browser, live, language="zh-CN")
        faults = page_faults(page)
        await page.goto(f"{live.base_url}/office/fever")
        await expect(page.locator("body")).to_have_attribute("data-loaded", "true")

        for resident, celsius in (
            ("day-wang", "37.8"),
            ("day-li", "36.6"),
            ("day-zhao", "38.2"),
            ("day-sun", "37.4"),
        ):
            await page.select_option("#fever-resident", resident)
            await page.fill("#fever-celsius", celsius)
            await page.click("#fever-form button[type=submit]")
            await expect(page.locator("#fever-recorded")).to_contain_text(celsius)

        await expect(page.locator("#fever-recorded")).to_contain_text("发热聚集")
        rows = page.locator("#fever-table tbody tr")
        await expect(rows).to_have_count(3)
        await expect(rows.first).to_contain_text("孙德明")
        await expect(rows.first).to_contain_text("▲ 37.4 °C")
        await expect(page.locator("#fever-table")).not_to_contain_text("李建国")
        text = await page.locator("body").inner_text()
        assert RAW_KEY.findall(text) == []
        assert faults == []
