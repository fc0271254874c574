"""The managers' office in a real Chromium against a real gateway: the response-time report with its
figures, verdicts in words and a CSV download, in English and Chinese with no raw catalogue key; the
history's filters and inline timeline; the audit page's hash-chain state."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx
import pytest
from harness import PASSWORD, LiveGateway, live_gateway
from playwright.async_api import Browser, ConsoleMessage, Page, expect
from services import Mosquitto
from stores import disable_append_only, store_execute
from test_office_api import config_with_a_wing, three_alarms

from dashboard.auth import Role

pytestmark = [pytest.mark.asyncio, pytest.mark.browser]
#: A catalogue key shown as it is (a text the catalogue lacks): "office.kpi.ackP90", "nav.reports".
RAW_KEY = re.compile(r"\b(?:office|nav|audit|error|rule|outcome|status)\.[A-Za-z0-9_.]+\b")


def page_faults(page: Page) -> list[str]:
    seen: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if message.type == "error":
            seen.append(message.text)

    page.on("console", note)
    page.on("pageerror", lambda error: seen.append(str(error)))
    return seen


async def manager_page(browser: Browser, live: LiveGateway, language: str = "en") -> Page:
    live.gateway.users.create("manager", PASSWORD, Role.MANAGER, language=language)
    page = await browser.new_page(locale="en-GB", viewport={"width": 1366, "height": 768})
    await page.add_init_script("localStorage.clear()")
    await page.goto(live.base_url)
    await page.fill("#username", "manager")
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=10_000)
    return page


def csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


async def no_raw_keys(page: Page) -> None:
    text = await page.locator("body").inner_text()
    assert RAW_KEY.findall(text) == []


async def test_a_manager_reads_the_response_time_report_and_downloads_its_csv(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(config_with_a_wing(mosquitto, tmp_path)) as live:
        await three_alarms(live, mosquitto)
        page = await manager_page(browser, live)
        faults = page_faults(page)
        await page.goto(f"{live.base_url}/office/reports")
        await expect(page.locator("body")).to_have_attribute("data-loaded", "true", timeout=10_000)
        await expect(page.locator("#kpi-incidents")).to_have_text("3")
        # Two of three answered at once: 66.7 %, short of 97.5 % — said in words and with a symbol.
        await expect(page.locator("#kpi-share-60")).to_have_text("66.7 %")
        await expect(page.locator("#kpi-verdict-60")).to_have_text("✘ Target not met")
        await expect(page.locator("#groups-table tbody tr")).to_have_count(2)
        await expect(page.locator("#groups-table")).to_contain_text("Night House")
        await expect(page.locator("#share-chart svg")).to_have_count(1)
        await expect(page.locator("#fa-table tbody tr").first).to_contain_text("night-pendant-wang")
        await expect(page.locator("#fa-table tbody tr").first).to_contain_text("50.0 %")
        await no_raw_keys(page)

        async with page.expect_download() as download_info:
            await page.click("#groups-csv")
        download = await download_info.value
        rows = csv_rows(await download.path())
        assert {row["group"]: row["incidents"] for row in rows} == {"day": "1", "night": "2"}
        assert {row["group"]: row["met_60s"] for row in rows} == {"day": "true", "night": "false"}

        await page.select_option("#group", "shift")
        await page.select_option("#bucket", "day")
        await page.click("#show")
        await expect(page.locator("#groups-table thead")).to_contain_text("Shift")

        await page.select_option("#lang", "zh-CN")
        await expect(page.locator("h1")).to_have_text("响应时间报表")
        await expect(page.locator("#kpi-verdict-60")).to_have_text("✘ 未达标")
        await expect(page.locator("#groups-table thead")).to_contain_text("班次")
        await expect(page.locator("#share-chart svg")).to_have_count(1)
        await no_raw_keys(page)
        assert faults == []


async def test_the_service_quality_indicators_in_chinese_and_english_with_their_csv(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(config_with_a_wing(mosquitto, tmp_path)) as live:
        await three_alarms(live, mosquitto)
        page = await manager_page(browser, live, language="zh-CN")
        faults = page_faults(page)
        await page.goto(f"{live.base_url}/office/quality")
        await expect(page.locator("body")).to_have_attribute("data-loaded", "true", timeout=10_000)
        await expect(page.locator("h1")).to_have_text("服务质量指标")
        # Two sites × the last three months; the night site's two alarms, one false, this month.
        await expect(page.locator("#quality-table tbody tr")).to_have_count(6)
        night = page.locator("#quality-table tbody tr", has_text="1 · 50.0 %")
        await expect(night).to_have_count(1)
        await expect(night).to_contain_text("✘ 未达标")
        await no_raw_keys(page)
        await page.select_option("#lang", "en")
        await expect(page.locator("h1")).to_have_text("Service quality")
        await expect(page.locator("#quality-table thead")).to_contain_text("Weekly button tests")
        await no_raw_keys(page)
        async with page.expect_download() as download_info:
            await page.click("#quality-csv")
        rows = csv_rows(await (await download_info.value).path())
        assert len(rows) == 6
        busy = {row["site"]: row for row in rows if row["incidents"] != "0"}
        assert {site: row["false_alarms"] for site, row in busy.items()} == {"night": "1", "day": "0"}
        assert busy["night"]["false_alarm_rate"] == "0.5"
        assert faults == []


async def test_the_history_filters_and_shows_an_incidents_timeline(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(config_with_a_wing(mosquitto, tmp_path)) as live:
        await three_alarms(live, mosquitto)
        page = await manager_page(browser, live, language="zh-CN")
        faults = page_faults(page)
        await page.goto(f"{live.base_url}/office/history")
        await expect(page.locator("#history-table tbody tr")).to_have_count(3, timeout=10_000)
        await expect(page.locator("#history-total")).to_have_text("共 3 条事件符合条件")
        await page.select_option("#outcome", "false_alarm")
        await page.click("#show")
        await expect(page.locator("#history-table tbody tr")).to_have_count(1)
        await expect(page.locator("#history-table tbody tr")).to_contain_text("误报")
        link = page.locator("#history-table tbody tr a").first
        assert re.fullmatch(r"/incident/\d+", await link.get_attribute("href") or "")
        await page.click(".timeline-toggle")
        timeline = page.locator("tr.timeline")
        await expect(timeline).to_contain_text("已处理完成")
        await expect(timeline).to_contain_text("pressed by mistake")
        await page.select_option("#outcome", "")
        await page.select_option("#site", "night")
        await page.select_option("#wing", "east")
        await page.click("#show")
        await expect(page.locator("#history-table tbody tr[data-incident-id]")).to_have_count(2)
        await no_raw_keys(page)

        await page.select_option("#period", "custom")
        await page.fill("#start", "")
        await page.click("#show")
        await expect(page.locator("#error-text")).to_have_text("请选择时间段的开始和结束日期。")
        await page.fill("#start", "2020-01-01")
        await page.fill("#end", "2020-01-31")
        await page.click("#show")
        await expect(page.locator("#history-total")).to_have_text("共 0 条事件符合条件")
        assert faults == []


async def test_the_audit_page_shows_the_chain_state_and_filters(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(config_with_a_wing(mosquitto, tmp_path)) as live:
        await three_alarms(live, mosquitto)
        page = await manager_page(browser, live)
        faults = page_faults(page)
        await page.goto(f"{live.base_url}/office/audit")
        chain = page.locator("#audit-chain")
        await expect(chain).to_have_attribute("data-state", "intact", timeout=10_000)
        await expect(chain).to_contain_text("✔")
        await page.fill("#text", "mistake")
        await page.click("#show")
        await expect(page.locator("#audit-table tbody tr")).to_have_count(1)
        await expect(page.locator("#audit-table tbody tr")).to_contain_text("Resolved")
        await no_raw_keys(page)

        # Someone edits a row behind the gateway's back: the page says the chain is broken, and where.
        url = live.gateway.config.storage.url
        disable_append_only(url)
        store_execute(url, "UPDATE audit_log SET actor = 'user:mallory' WHERE action = 'incident.resolved'")
        await page.reload()
        await expect(chain).to_have_attribute("data-state", "broken", timeout=10_000)
        await expect(chain).to_contain_text("✘")
        assert faults == []
        async with httpx.AsyncClient(base_url=live.base_url) as anonymous:
            assert (await anonymous.get("/office/audit", follow_redirects=False)).status_code == 303
