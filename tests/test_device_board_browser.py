"""The device board in a real Chromium against a real gateway and Mosquitto: a pendant Zigbee2MQTT
reports offline is listed first under "needs attention", in English and in Chinese, with no raw
catalogue key on the page and no script or CSP error; a filter narrows the table and its CSV link."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from harness import PASSWORD, Publisher, live_gateway, new_config
from playwright.async_api import Browser, expect
from services import Mosquitto
from test_admin_browser import page_faults, sign_in

from dashboard.auth import Role
from gateway.catalogue import CATALOGUE

pytestmark = [pytest.mark.asyncio, pytest.mark.browser]
RAW_KEY = re.compile(r"\b(?:board|nav|admin|device_type|error)\.[A-Za-z_.]+\b")


async def test_the_board_shows_an_offline_pendant_first_in_both_languages(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        live.gateway.users.create("boss", PASSWORD, Role.MANAGER, language="en")
        device = Publisher(mosquitto.port)
        device.send("zigbee2mqtt/night/102/pendant/availability", json.dumps({"state": "offline"}).encode())
        await live.poll("/api/devices", lambda rows: any(not r["online"] for r in rows))
        page = await browser.new_page(locale="en-GB", viewport={"width": 1366, "height": 768})
        faults = page_faults(page)
        await sign_in(page, live.base_url, "boss")
        await page.clock.install()  # the page's 30-second refresh, run on demand
        await page.goto(f"{live.base_url}/office/devices")

        first = page.locator("#attention tbody tr").first
        await expect(first).to_have_attribute("data-device", "night-pendant-li")
        await expect(first.locator(".flag").first).to_have_text(
            f"✖ {CATALOGUE.text('board.flag.offline', 'en')}"
        )
        await expect(page.locator("#count-offline")).to_have_text("1")
        await expect(page.locator("#count-total")).to_have_text("10")
        await expect(page.locator("#count-test_overdue")).to_have_text("6")  # pendants, fall sensors
        await expect(page.locator('#nav a[href="/office/devices"]')).to_have_attribute("aria-current", "page")

        device.send("zigbee2mqtt/day/102/pendant/availability", json.dumps({"state": "offline"}).encode())
        await live.poll("/api/devices", lambda rows: sum(not r["online"] for r in rows) == 2)
        await page.clock.run_for(30_500)  # the page's own time: the refresh is due
        await expect(page.locator("#count-offline")).to_have_text("2")

        await page.select_option("#lang", "zh-CN")
        offline_zh = CATALOGUE.text("board.flag.offline", "zh-CN")
        await expect(first.locator(".flag").first).to_have_text(f"✖ {offline_zh}")
        await expect(page.locator("h1")).to_have_text(CATALOGUE.text("board.title", "zh-CN"))
        await expect(first.locator("td").nth(1)).to_contain_text(
            CATALOGUE.text("device_type.sos_button", "zh-CN")
        )
        text = await page.locator("body").inner_text()
        assert RAW_KEY.findall(text) == []

        await page.select_option("#filter-flag", "offline")
        rows = page.locator("#devices tbody tr")
        await expect(rows).to_have_count(2)
        assert sorted(await rows.evaluate_all("(rows) => rows.map((r) => r.dataset.device)")) == [
            "day-pendant-li",
            "night-pendant-li",
        ]
        await page.select_option("#filter-site", "day")
        await expect(rows).to_have_count(1)
        await expect(page.locator("#count-total")).to_have_text("5")  # the tiles follow the site
        await expect(page.locator("#csv")).to_have_attribute(
            "href", re.compile(r"site=day&flag=offline&format=csv")
        )
        await page.select_option("#lang", "en")
        text = await page.locator("body").inner_text()
        assert RAW_KEY.findall(text) == []
        # Words, not only colour: the state is written beside its symbol.
        assert CATALOGUE.text("board.flag.offline", "en") in text
        assert faults == []
        device.close()
