"""The managers' response-script editor in a real Chromium against a real gateway: a manager writes a
site's script for falls, operators' incident screens get it, removing it brings the default back; the
page speaks Chinese, breaks no Content-Security-Policy rule, and an operator does not get it."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import PASSWORD, live_gateway
from playwright.async_api import Browser, Page, expect
from services import Mosquitto
from test_admin_browser import page_faults
from test_console_api import console_config

from dashboard.auth import Role
from gateway.catalogue import CATALOGUE
from gateway.incidents.scripts import default_steps

pytestmark = [pytest.mark.asyncio, pytest.mark.browser]


async def signed_in_page(browser: Browser, base_url: str, username: str) -> Page:
    page = await browser.new_page(locale="en-GB", viewport={"width": 1366, "height": 768})
    await page.add_init_script("localStorage.clear()")
    answer = await page.request.post(
        f"{base_url}/api/login", data={"username": username, "password": PASSWORD}
    )
    assert answer.ok
    return page


async def test_a_manager_writes_a_sites_fall_script_and_removes_it_again(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        live.gateway.users.create("manager", PASSWORD, Role.MANAGER, language="en")
        page = await signed_in_page(browser, live.base_url, "manager")
        faults = page_faults(page)
        await page.goto(f"{live.base_url}/office/scripts")
        await expect(page.locator("h1")).to_have_text("Response scripts")
        await expect(page.locator('#nav a[href="/office/scripts"]')).to_have_attribute("aria-current", "page")

        await page.select_option("#rule", "fall")
        await page.select_option("#site", "night")
        await expect(page.locator("#source")).to_have_attribute("data-source", "default")
        await expect(page.locator("#steps-en")).to_have_value("\n".join(default_steps("fall")["en"]))
        await expect(page.locator("#remove")).to_be_disabled()

        await page.fill(
            "#steps-en", "Call room 101 over the speech unit\n\nNo answer in 60 s: send the wing A carer"
        )
        await page.fill("#steps-zh", "通过对讲呼叫 101 室\n60 秒无应答：派 A 区护理员")
        await page.click("#save")
        await expect(page.locator("#notice")).to_have_text(CATALOGUE.text("script.editor.saved", "en"))
        await expect(page.locator("#source")).to_have_attribute("data-source", "site")
        await expect(page.locator('#written tr[data-rule="fall"][data-site="night"] li')).to_have_count(2)
        written = (await live.http.get("/api/response-scripts")).json()
        assert [(s["rule"], s["site"], s["steps"]) for s in written] == [
            (
                "fall",
                "night",
                {
                    "en": ["Call room 101 over the speech unit", "No answer in 60 s: send the wing A carer"],
                    "zh-CN": ["通过对讲呼叫 101 室", "60 秒无应答：派 A 区护理员"],
                },
            )
        ]

        # A script with a step missing in one language is refused, and the page says why.
        await page.fill("#steps-zh", "")
        await page.click("#save")
        await expect(page.locator("#error-banner")).to_be_visible()

        await page.click("#remove")
        await expect(page.locator("#notice")).to_have_text(CATALOGUE.text("script.editor.removed", "en"))
        await expect(page.locator("#source")).to_have_attribute("data-source", "default")
        assert (await live.http.get("/api/response-scripts")).json() == []

        await page.select_option("#lang", "zh-CN")
        await expect(page.locator("h1")).to_have_text("处置流程")
        await expect(page.locator("#rule option[value=fall]")).to_have_text(
            CATALOGUE.text("rule.fall", "zh-CN")
        )
        assert faults == []


async def test_an_operator_does_not_get_the_script_editor(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        page = await signed_in_page(browser, live.base_url, "operator")
        response = await page.goto(f"{live.base_url}/office/scripts")
        assert response is not None
        assert response.status == 403
        await expect(page.locator("#refused")).to_have_text(CATALOGUE.text("page.refused", "zh-CN"))
