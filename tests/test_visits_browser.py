"""The carer's phone page in a real Chromium at 390 × 844 against a real gateway (its clock faked to a
Monday morning): a carer signing in at the console's sign-in page lands on their visits, opens today's
visit, checks in, fills the checklist and notes and checks out, in English and in Chinese, one column
with nothing wider than the phone; the operators' pages are refused them."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import PASSWORD, LiveGateway, live_gateway
from playwright.async_api import Browser, Page, expect
from services import Mosquitto
from test_admin_browser import page_faults
from test_visits import START, visits_config

from dashboard.auth import Role
from gateway.catalogue import CATALOGUE
from gateway.clock import FakeClock

pytestmark = [pytest.mark.asyncio, pytest.mark.browser]

PHONE = {"width": 390, "height": 844}


async def phone_signed_in(browser: Browser, live: LiveGateway, username: str, locale: str) -> Page:
    page = await browser.new_page(locale=locale, viewport=PHONE, timezone_id="Asia/Shanghai", has_touch=True)
    await page.add_init_script("localStorage.clear()")
    await page.goto(f"{live.base_url}/carer")  # not signed in: the sign-in page, then back here
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_url("**/carer")
    return page


async def visit_once(page: Page, live: LiveGateway, language: str, resident_name: str) -> None:
    text = lambda key: CATALOGUE.text(key, language)  # noqa: E731
    await expect(page.locator("h1")).to_have_text(text("visits.carer.title"))
    today = page.locator("#today button")
    await expect(today.filter(has_text=resident_name)).to_have_count(1)
    await today.filter(has_text=resident_name).click()
    await expect(page.locator("#visit-name")).to_have_text(resident_name)
    await expect(page.locator("#visit-status")).to_have_text(text("visits.status.planned"))
    # Nothing to record before checking in.
    await expect(page.locator('#checklist-items button[data-answer="yes"]').first).to_be_disabled()
    await page.locator("#check-in").click()
    await expect(page.locator("#visit-status")).to_have_text(text("visits.status.in_progress"))
    await expect(page.locator("#check-in")).to_be_hidden()
    for item, answer in (("eats_drinks", "yes"), ("takes_medicine", "yes"), ("mood", "concern")):
        button = page.locator(f'#checklist-items button[data-item="{item}"][data-answer="{answer}"]')
        await button.click()
        await expect(button).to_have_attribute("aria-pressed", "true")
    await page.fill("#visit-notes", "冰箱快空了 / fridge nearly empty")
    await page.locator("#check-out").click()
    await expect(page.locator("#visit-status")).to_have_text(text("visits.status.done"))
    await expect(page.locator("#check-out")).to_be_hidden()
    # One column on the phone: nothing wider than its screen, the main buttons a thumb's size.
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    box = await page.locator("#save").bounding_box()
    assert box is not None
    assert box["height"] >= 44
    assert box["width"] >= PHONE["width"] * 0.8


async def test_carers_check_in_fill_the_checklist_and_check_out_on_their_phones(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    clock = FakeClock(START)
    async with live_gateway(visits_config(mosquitto.url, tmp_path), clock=clock) as live:
        live.gateway.users.create("carer-a", PASSWORD, Role.CARER, language="en")
        live.gateway.users.create("carer-b", PASSWORD, Role.CARER, language="zh-CN")
        await live.gateway.visit_scheduler.tick()

        english = await phone_signed_in(browser, live, "carer-a", "en-GB")
        faults = page_faults(english)
        await visit_once(english, live, "en", "钱淑兰")
        await expect(english.locator("#visit-card")).to_contain_text("柳浪小区 3 幢 401")

        chinese = await phone_signed_in(browser, live, "carer-b", "zh-CN")
        faults += page_faults(chinese)
        await visit_once(chinese, live, "zh-CN", "Edward Hu")

        # The operators' pages are not theirs.
        refused = await chinese.goto(f"{live.base_url}/handover")
        assert refused is not None
        assert refused.status == 403

        # The manager's view of that day: per carer, done against planned, with the chart.
        live.gateway.users.create("manager", PASSWORD, Role.MANAGER, language="en")
        office = await browser.new_page(
            locale="en-GB", viewport={"width": 1366, "height": 768}, timezone_id="Asia/Shanghai"
        )
        faults += page_faults(office)
        assert (
            await office.request.post(
                f"{live.base_url}/api/login", data={"username": "manager", "password": PASSWORD}
            )
        ).ok
        await office.goto(f"{live.base_url}/office/visits")
        # The page sets up its period picker as it starts: the dates are ours only once it has loaded.
        await expect(office.locator("body")).to_have_attribute("data-loaded", "true", timeout=10_000)
        await office.select_option("#period", "custom")
        await office.fill("#start", "2026-01-05")
        await office.fill("#end", "2026-01-05")
        await office.click("#show")
        rows = office.locator("#carers-table tbody tr")
        await expect(rows).to_have_count(2)
        await expect(rows.filter(has_text="方丽")).to_contain_text("100.0 %")
        await expect(office.locator("#visits-chart svg")).to_have_count(1)

        recorded = await live.gateway.service.read(
            live.gateway.visits.in_period, None, START, START.replace(hour=4)
        )
        done = {v.resident: v for v in recorded if v.status == "done"}
        assert set(done) == {"elder-a", "elder-c"}
        assert done["elder-a"].checklist == {"eats_drinks": "yes", "takes_medicine": "yes", "mood": "concern"}
        assert done["elder-c"].notes == "冰箱快空了 / fridge nearly empty"
        assert done["elder-c"].checked_in_via == "page"
        assert faults == []
