"""The administration page in a real Chromium against a real gateway and Mosquitto: an admin adds a
resident and a pendant whose first SOS reaches the operators' queue; a Zigbee device paired with
Zigbee2MQTT is bound in two clicks and its alarm opens an incident; the page speaks Chinese; an
operator does not get the page."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from directory_fixtures import KEY_ENV, new_key
from harness import PASSWORD, Publisher, live_gateway, new_config
from playwright.async_api import Browser, ConsoleMessage, Page, expect
from services import Mosquitto

from dashboard.auth import Role
from gateway.catalogue import CATALOGUE

FIXTURE = Path(__file__).parent / "fixtures" / "zigbee2mqtt_bridge_devices.json"
pytestmark = [pytest.mark.asyncio, pytest.mark.browser]


def page_faults(page: Page) -> list[str]:
    """Script errors and Content-Security-Policy refusals on this page (kept filling)."""
    seen: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if message.type == "error" and "status of 4" not in message.text:
            seen.append(message.text)

    page.on("console", note)
    page.on("pageerror", lambda error: seen.append(str(error)))
    return seen


async def sign_in(page: Page, base_url: str, username: str) -> None:
    await page.add_init_script("localStorage.clear()")
    await page.goto(base_url)
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=10_000)


async def open_admin(page: Page, base_url: str, tab: str = "residents") -> None:
    await page.goto(f"{base_url}/admin?tab={tab}")
    await expect(page.locator(f'[data-tab="{tab}"]')).to_have_attribute("aria-current", "true")


async def test_an_admin_adds_a_resident_and_a_pendant_whose_first_sos_reaches_the_queue(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, new_key())
    config = new_config(mosquitto.url, tmp_path)
    config["storage"]["directory_key_env"] = KEY_ENV
    async with live_gateway(config) as live:
        live.gateway.users.create("admin", PASSWORD, Role.ADMIN, language="en")
        admin = await browser.new_page(locale="en-GB")
        faults = page_faults(admin)
        await sign_in(admin, live.base_url, "admin")
        await expect(admin.locator("#admin-link")).to_be_visible()
        await admin.click("#admin-link")
        await expect(admin.locator("#entries tbody tr")).to_have_count(4)

        await admin.click("#new-entry")
        await admin.fill("#f-id", "night-zhao")
        await admin.fill("#f-name", "赵桂兰")
        await admin.select_option("#f-site", "night")
        await admin.select_option("#f-room", "102")
        await admin.check('input[name="risks"][value="falls"]')
        await admin.click(".add-contact")
        await admin.fill('[name="c-name"]', "赵强")
        await admin.fill('[name="c-phones"]', "12345")  # not E.164: refused next to the contacts
        await admin.click("#entry-save")
        await expect(admin.locator('[data-error-for="contacts"]')).to_be_visible()
        await admin.fill('[name="c-phones"]', "+8613800138000")
        await admin.fill("#f-key_safe_code", "4711")
        await admin.click("#entry-save")
        await expect(admin.locator("#notice")).to_contain_text("1 added")
        await expect(admin.locator("#history tbody tr")).to_have_count(1)
        await expect(admin.locator("#entry-form")).not_to_contain_text("4711")
        assert await admin.input_value("#f-key_safe_code") == ""  # never sent back to the page
        await admin.click("#reveal-key-safe")
        await expect(admin.locator("#key-safe-shown")).to_have_text("4711")
        history = await live.http.get("/api/directory/residents/night-zhao/history")
        assert [e["action"] for e in history.json()][-1] == "directory.resident.key_safe_revealed"

        await admin.click('[data-tab="devices"]')
        await admin.fill("#search", "night-pendant")
        await expect(admin.locator("#entries tbody tr")).to_have_count(2)
        await admin.click("#new-entry")
        await admin.fill("#f-id", "night-pendant-zhao")
        await admin.select_option("#f-type", "sos_button")
        await admin.select_option("#f-site", "night")
        await admin.select_option("#f-room", "102")
        await admin.fill("#f-resident", "night-zhao")
        await admin.click("#entry-save")
        await expect(admin.locator("#notice")).to_contain_text("1 added")

        operator = await browser.new_page(locale="en-GB")
        await sign_in(operator, live.base_url, "operator")
        await expect(operator.locator("#admin-link")).to_be_hidden()
        device = Publisher(mosquitto.port)
        device.sos("night", "night-pendant-zhao")
        row = operator.locator("#incidents tr[data-incident-id]")
        await expect(row).to_have_count(1, timeout=10_000)
        await expect(row).to_contain_text("赵桂兰")
        device.close()
        assert faults == []


async def test_a_paired_zigbee_pendant_is_bound_in_the_browser_and_its_emergency_opens_an_incident(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        live.gateway.users.create("admin", PASSWORD, Role.ADMIN, language="en")
        device = Publisher(mosquitto.port)
        device.client.publish("zigbee2mqtt/bridge/devices", FIXTURE.read_bytes(), qos=1, retain=True)
        await live.poll("/api/devices/pairing", lambda j: len(j["devices"]) == 5)

        page = await browser.new_page(locale="en-GB")
        faults = page_faults(page)
        await sign_in(page, live.base_url, "admin")
        await open_admin(page, live.base_url, "pairing")
        offer = page.locator('#offers tr[data-friendly-name="sunrise/201/pendant"]')
        await expect(offer).to_contain_text("Tuya")
        await expect(offer).to_contain_text("TS0215A_sos")
        await expect(offer.locator('select[name="type"]')).to_have_value("sos_button")
        await expect(offer.locator(".suggestion")).to_have_text(
            CATALOGUE.text("admin.pairing.by.model", "en")
        )
        unknown = page.locator('#offers tr[data-friendly-name="hall light"]')
        await expect(unknown.locator('select[name="type"]')).to_have_value("other")
        await expect(unknown.locator(".suggestion")).to_have_text(
            CATALOGUE.text("admin.pairing.by.unknown", "en")
        )

        await offer.locator('select[name="site"]').select_option("night")  # click one
        await offer.locator("button.bind").click()  # click two
        await expect(page.locator("#notice")).to_contain_text("1 added")
        await expect(offer).to_have_count(0)

        device.zigbee("sunrise/201/pendant", action="emergency")
        incidents = await live.wait_for(lambda found: len(found) == 1, "the bound pendant's incident")
        assert incidents[0]["device_id"] == "sunrise-201-pendant"
        device.close()
        assert faults == []


def _english_leftovers(text: str) -> list[str]:
    """English texts of the administration's messages (with words, unlike their Chinese) shown."""
    found = []
    for msgid, texts in CATALOGUE.entries.items():
        english = texts["en"]
        worded = english != texts["zh-CN"] and len(english) > 4 and "{" not in english
        if (
            msgid.startswith(("admin.", "field."))
            and worded
            and re.search(rf"\b{re.escape(english)}\b", text)
        ):
            found.append(english)
    return found


async def test_the_administration_pages_speak_chinese(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        live.gateway.users.create("guanli", PASSWORD, Role.ADMIN, language="zh-CN")
        page = await browser.new_page(locale="zh-CN")
        faults = page_faults(page)
        await sign_in(page, live.base_url, "guanli")
        await open_admin(page, live.base_url)
        await expect(page.locator("h1")).to_have_text("系统管理")
        for tab in ("residents", "devices", "pairing", "sites", "responders", "users", "import"):
            await page.click(f'[data-tab="{tab}"]')
            if tab in ("residents", "devices", "sites", "users"):
                await expect(page.locator("#entries tbody tr").first).to_be_visible()
                await page.locator("#entries tbody tr").first.click()
                await expect(page.locator("#editor")).to_be_visible()
            text = await page.locator("body").inner_text()
            assert re.search(r"[\u4e00-\u9fff]", text)
            assert not re.findall(r"\b(?:admin|field|device_type|risk|history|role)\.[\w.]+", text), tab
            assert _english_leftovers(text) == [], tab
        await page.click('[data-tab="residents"]')
        await expect(page.locator("#page-info")).to_have_text("第 1–4 条，共 4 条")
        assert faults == []


async def test_a_manager_gets_the_residents_and_the_import_but_not_the_devices_forms(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        live.gateway.users.create("zhuguan", PASSWORD, Role.MANAGER, language="en")
        page = await browser.new_page(locale="en-GB")
        await sign_in(page, live.base_url, "zhuguan")
        await page.click("#admin-link")
        await expect(page.locator("#new-entry")).to_be_visible()
        for tab in ("pairing", "sites", "responders", "users"):
            await expect(page.locator(f'[data-tab="{tab}"]')).to_be_hidden()
        await page.click('[data-tab="devices"]')
        await expect(page.locator("#new-entry")).to_be_hidden()
        await page.locator("#entries tbody tr").first.click()
        await expect(page.locator("#entry-save")).to_be_hidden()
        await expect(page.locator("#f-type")).to_be_disabled()


async def test_an_operator_cannot_reach_the_edit_forms(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        page = await browser.new_page(locale="zh-CN")
        await sign_in(page, live.base_url, "operator")
        await expect(page.locator("#admin-link")).to_be_hidden()
        response = await page.goto(f"{live.base_url}/admin")
        assert response is not None
        assert response.status == 403
        await expect(page.locator("#refused")).to_have_text(CATALOGUE.text("page.refused", "zh-CN"))
        assert await page.locator("#entry-form").count() == 0
        # Nor may the page's own requests change anything, whatever a script sends.
        status = await page.evaluate(
            """async () => {
                const me = await (await fetch("/api/me")).json();
                const res = await fetch("/api/directory/devices/night-door-101/retire", {
                    method: "POST",
                    headers: {"X-CSRF-Token": me.csrf_token, "Content-Type": "application/json"},
                    body: "{}",
                });
                return res.status;
            }"""
        )
        assert status == 403


async def test_an_import_is_previewed_with_located_errors_in_chinese_then_applied(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        live.gateway.users.create("guanli", PASSWORD, Role.ADMIN, language="zh-CN")
        async with httpx.AsyncClient(base_url=live.base_url) as client:
            signed_in = await client.post("/api/login", json={"username": "guanli", "password": PASSWORD})
            signed_in.raise_for_status()
            export = await client.get(
                "/api/directory/export", params={"format": "csv", "kind": "devices", "language": "en"}
            )
        existing = export.content.decode("utf-8-sig").strip().splitlines()
        header = existing[0]
        rows = "\n".join(
            existing
            + [",".join(_device_row(header, f"night-door-{n}", "101")) for n in (201, 202)]
            + [",".join(_device_row(header, "night-door-203", "999"))]
        )
        bad = tmp_path / "设备.csv"
        bad.write_text(rows + "\n", encoding="utf-8")
        page = await browser.new_page(locale="zh-CN")
        faults = page_faults(page)
        await sign_in(page, live.base_url, "guanli")
        await open_admin(page, live.base_url, "import")
        await page.set_input_files("#import-file", str(bad))
        await page.click("#import-preview")
        problems = page.locator("#import-problems li")
        await expect(problems).to_have_count(1)
        await expect(problems).to_contain_text("999")
        await expect(problems).to_contain_text("第 14 行，room 列")  # header, 10 devices, 3 new
        await expect(page.locator("#import-apply")).to_be_disabled()

        good = tmp_path / "设备-改.csv"
        good.write_text(rows.replace(",999,", ",102,") + "\n", encoding="utf-8")
        await page.set_input_files("#import-file", str(good))
        await page.click("#import-preview")
        await expect(page.locator("#import-summary")).to_contain_text("新增 3")
        assert await _device_count(live) == 10
        await page.click("#import-apply")
        await expect(page.locator("#import-summary")).to_contain_text("已导入")
        assert await _device_count(live) == 13
        assert faults == []


def _device_row(header: str, device_id: str, room: str) -> list[str]:
    values = {"id": device_id, "type": "door_sensor", "site": "night", "room": room, "state": "active"}
    return [values.get(column, "") for column in header.split(",")]


async def _device_count(live: object) -> int:
    response = await live.http.get("/api/directory/devices", params={"limit": 1})  # type: ignore[attr-defined]
    return int(response.json()["total"])


async def test_a_thousand_residents_page_and_search_quickly_and_a_rota_changes_in_one_step(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    config = new_config(mosquitto.url, tmp_path)
    config["residents"] += [
        {"id": f"resident-{n:04d}", "name": f"住户{n:04d}", "site": "day", "room": "101"} for n in range(1000)
    ]
    config["responders"] = [
        {"id": f"carer-{n}", "name": f"护理员{n}", "phone": f"+861380013800{n}", "roles": ["carer"]}
        for n in range(3)
    ]
    async with live_gateway(config) as live:
        live.gateway.users.create("admin", PASSWORD, Role.ADMIN, language="en")
        page = await browser.new_page(locale="en-GB")
        faults = page_faults(page)
        await sign_in(page, live.base_url, "admin")
        await open_admin(page, live.base_url)
        await expect(page.locator("#page-info")).to_have_text("1–50 of 1004")
        await page.click("#next-page")
        await expect(page.locator("#page-info")).to_have_text("51–100 of 1004")
        await page.fill("#search", "resident-0999")
        await expect(page.locator("#entries tbody tr")).to_have_count(1, timeout=2_000)
        await expect(page.locator("#entries tbody tr")).to_contain_text("住户0999")

        await page.click('[data-tab="responders"]')
        await expect(page.locator("#entries tbody tr")).to_have_count(3)
        for n in (0, 1):
            await page.locator(f'#entries tr[data-entry-id="carer-{n}"] input[type="checkbox"]').check()
        await expect(page.locator("#bulk-count")).to_have_text("2 selected")
        await page.fill("#bulk-shifts", "mon,tue 07:00-19:00")
        await page.click("#bulk-rota")
        await expect(page.locator("#notice")).to_contain_text("2 changed")
        shifts = [
            (await live.http.get(f"/api/directory/responders/carer-{n}")).json().get("shifts")
            for n in range(3)
        ]
        assert shifts[0] == shifts[1]
        assert [(s["days"], s["start"][:5], s["end"][:5]) for s in shifts[0]] == [
            (["mon", "tue"], "07:00", "19:00")
        ]
        assert not shifts[2]
        assert faults == []


async def test_a_device_is_retired_and_a_discharge_with_a_device_still_bound_is_refused_saying_why(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        live.gateway.users.create("admin", PASSWORD, Role.ADMIN, language="en")
        page = await browser.new_page(locale="en-GB")
        page.on("dialog", lambda dialog: dialog.accept())
        await sign_in(page, live.base_url, "admin")
        await open_admin(page, live.base_url, "devices")
        await page.locator('#entries tr[data-entry-id="night-fall-101"]').click()
        await page.click("#entry-end")
        await expect(page.locator("#notice")).to_contain_text("1 retired")
        await expect(page.locator('#entries tr[data-entry-id="night-fall-101"]')).to_contain_text("Retired")
        await expect(page.locator("#history tbody tr")).to_have_count(2)

        await page.click('[data-tab="residents"]')
        await page.locator('#entries tr[data-entry-id="night-wang"]').click()
        await page.click("#entry-end")
        await expect(page.locator("#form-problems")).to_contain_text("night-pendant-wang")
        resident = (await live.http.get("/api/directory/residents/night-wang")).json()
        assert resident["status"] == "active"
