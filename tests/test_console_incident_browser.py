"""The console's work on an incident, in a real Chromium against a real gateway with the console API:
two operators see who has taken what, the incident screen shows the resident, the place, the contacts
and the response script, "no response" leads to sending someone, the shift handover is signed and shown
to the next operator, and the zh-CN screens have no English or raw key left."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from harness import PASSWORD, Publisher, live_gateway
from playwright.async_api import Browser, BrowserContext, Page, expect
from services import Mosquitto
from test_console_api import console_config
from test_console_browser import ROWS, chimes, sign_in
from test_dashboard_browser import policy_violations

from dashboard.auth import Role
from gateway.catalogue import CATALOGUE
from gateway.incidents.scripts import default_steps

pytestmark = [pytest.mark.asyncio, pytest.mark.browser]


async def operator_page(browser: Browser, base_url: str, username: str, language: str = "en") -> Page:
    context: BrowserContext = await browser.new_context(
        locale="en-GB", viewport={"width": 1366, "height": 768}
    )
    # A clean browser once; reloads keep what the page stored (a dismissed notice, a language).
    await context.add_init_script(
        "if (!sessionStorage.getItem('fresh')) {"
        " localStorage.clear(); sessionStorage.setItem('fresh', '1'); }"
    )
    page = await context.new_page()
    await sign_in(page, base_url, username, language)
    return page


async def test_a_second_operator_sees_an_alarm_taken_and_a_take_over_asks_first(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        live.gateway.users.create("li", PASSWORD, Role.OPERATOR)
        first = await operator_page(browser, live.base_url, "operator")
        second = await operator_page(browser, live.base_url, "li")
        await first.mouse.click(5, 700)
        device = Publisher(mosquitto.port)
        device.sos("night", "night-pendant-wang")
        mine, theirs = first.locator(ROWS), second.locator(ROWS)
        await expect(mine).to_have_count(1, timeout=10_000)
        await expect(first.locator("#sound")).to_have_attribute("data-sounding", "true")

        await mine.locator("button[data-action=take]").click()
        await expect(mine).to_have_attribute("data-taken", "me")
        await expect(mine.locator(".taken")).to_have_text("★ Taken by you")
        # Taken: nobody needs calling to it any more, on either screen.
        await expect(first.locator("#sound")).to_have_attribute("data-sounding", "false")
        silent = await chimes(first)
        await expect(theirs).to_have_attribute("data-taken", "other", timeout=10_000)
        await expect(theirs.locator(".taken")).to_have_text("⚑ Taken by operator")
        await expect(theirs.locator("button[data-action=take]")).to_have_text("Take over")

        # Taking it from someone asks first; cancelling leaves it with them.
        await theirs.locator("button[data-action=take]").click()
        dialog = second.locator("#takeover-dialog")
        await expect(dialog).to_be_visible()
        await expect(second.locator("#takeover-text")).to_contain_text("operator is working on this alarm")
        await second.click("#takeover-no")
        await expect(dialog).to_be_hidden()
        await expect(theirs).to_have_attribute("data-taken", "other")
        await theirs.locator("button[data-action=take]").click()
        await second.click("#takeover-yes")
        await expect(theirs).to_have_attribute("data-taken", "me")
        await expect(mine).to_have_attribute("data-taken", "other", timeout=10_000)
        await expect(mine.locator(".taken")).to_have_text("⚑ Taken by li")
        [incident] = await live.incidents("active")
        assert incident["taken_by"] == "li"

        # Released: waiting again, so it sounds again.
        await theirs.locator("button[data-action=release]").click()
        await expect(mine).to_have_attribute("data-taken", "", timeout=10_000)
        await expect(first.locator("#sound")).to_have_attribute("data-sounding", "true")
        await expect(first.locator("#sound")).not_to_have_attribute("data-chimes", str(silent), timeout=6_000)
        device.close()


async def test_the_incident_screen_shows_resident_place_contacts_script_and_records_notes(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        page = await operator_page(browser, live.base_url, "operator")
        blocked = policy_violations(page)
        device = Publisher(mosquitto.port)
        device.sos("night", "night-pendant-wang")
        row = page.locator(ROWS)
        await expect(row).to_have_count(1, timeout=10_000)
        await row.locator("a[data-action=open]").click()
        incident_id = await row.get_attribute("data-incident-id")
        await expect(page).to_have_url(re.compile(rf"#/incident/{incident_id}$"))
        view = page.locator("#incident-view")
        await expect(view).to_have_attribute("data-loaded", "true")
        await expect(page.locator("#incident-heading")).to_have_text("SOS call — 王秀英")
        resident = page.locator("#incident-resident")
        await expect(page.locator("#resident-name")).to_have_text("王秀英")
        await expect(resident).to_contain_text("阿尔茨海默病, 高血压")
        await expect(resident).to_contain_text("傍晚常想回家")
        await expect(resident).to_contain_text("Chinese, English")
        await expect(resident.locator(".risks")).to_have_text(
            f"{CATALOGUE.text('risk.wandering', 'en')}, {CATALOGUE.text('risk.falls', 'en')}"
        )
        await expect(resident).to_contain_text(re.compile(r"Age\s*8\d years"))
        place = page.locator("#incident-place")
        await expect(place).to_contain_text("认知照护区")
        await expect(place).to_contain_text("101 室")
        await expect(place).to_contain_text("宛平南路 88 号")
        await expect(place).to_contain_text("夜间走东门")
        contacts = page.locator("#incident-contacts")
        await expect(contacts.locator("#responder-list tr").first).to_contain_text("李娜")
        await expect(contacts.locator("#responder-list tr").first).to_contain_text("on duty")
        await expect(contacts.locator("a[href='tel:+8613800000002']")).to_have_text("+8613800000002")
        await expect(contacts).to_contain_text("王明")
        await expect(contacts.locator("a[href='tel:+8613900000101']")).to_be_visible()
        steps = page.locator("#script-steps li")
        await expect(steps).to_have_text(_steps("sos", "en"))
        await page.select_option("#lang", "zh-CN")
        await expect(steps).to_have_text(_steps("sos", "zh-CN"))
        await page.select_option("#lang", "en")

        await page.fill("#note-text", "Resident answered on the speech unit; carer on her way")
        await page.click("#note-submit")
        await expect(page.locator("#note-list li")).to_have_count(1)
        await expect(page.locator("#note-list li")).to_contain_text("Resident answered on the speech unit")
        await expect(page.locator("#timeline li[data-kind=note]")).to_have_count(1, timeout=5_000)
        notes = (await live.http.get(f"/api/incidents/{incident_id}/notes")).json()
        assert [(n["author"], n["text"]) for n in notes] == [
            ("operator", "Resident answered on the speech unit; carer on her way")
        ]
        await expect(page.locator("#timeline li[data-kind=event]")).to_contain_text("Device: ")

        # Acknowledge from the screen; then resolve with an outcome.
        await page.locator("#incident-actions button[data-action=ack]").click()
        await expect(page.locator("#incident-status")).to_have_attribute("data-status", "acknowledged")
        await page.locator("#incident-actions button[data-action=resolve]").click()
        await page.select_option("#resolve-outcome", "assisted_on_site")
        await page.click("#resolve-submit")
        await expect(page.locator("#incident-status")).to_have_attribute("data-status", "resolved")
        [resolved] = await live.incidents("resolved")
        assert (resolved["outcome"], resolved["resolved_by"]) == ("assisted_on_site", "user:operator")
        await page.keyboard.press("Escape")
        await expect(page.locator("#no-incidents")).to_be_visible()
        assert blocked == []
        device.close()


def _steps(rule: str, language: str) -> list[str]:
    return list(default_steps(rule)[language])


async def test_no_response_cannot_be_closed_before_someone_is_sent(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        page = await operator_page(browser, live.base_url, "operator")
        device = Publisher(mosquitto.port)
        device.sos("night", "night-pendant-wang")
        row = page.locator(ROWS)
        await expect(row).to_have_count(1, timeout=10_000)
        await row.locator("button[data-action=resolve]").click()
        await page.select_option("#resolve-outcome", "no_response")
        error = page.locator("#resolve-error")
        await expect(error).to_have_text(
            '"No response from the resident" cannot be closed until someone has been sent to check.'
        )
        # Submitting anyway: the server refuses, and its reason is shown.
        await page.click("#resolve-submit")
        # The server words it in the page's language (English here; the account's is zh-CN).
        await expect(error).to_contain_text(CATALOGUE.text("console.noResponseNeedsDispatch", "en"))
        assert (await live.incidents("active"))[0]["status"] == "open"

        await page.click("#resolve-dispatch")
        await expect(page).to_have_url(re.compile(r"#/incident/\d+/dispatch$"))
        await expect(page.locator("#incident-view")).to_have_attribute("data-loaded", "true")
        await expect(page.locator("#dispatch-who")).to_be_focused()
        await page.click("#dispatch-submit")
        await expect(page.locator("#dispatch-error")).to_have_text("Choose a responder or name who goes.")
        await page.select_option("#dispatch-responder", "night-carer")
        await page.fill("#dispatch-note", "Room 101, east door")
        await page.click("#dispatch-submit")
        await expect(page.locator("#dispatch-list li")).to_have_count(1)
        await expect(page.locator("#dispatch-list li")).to_contain_text("Sent: 李娜")
        await expect(page.locator("#incident-summary .dispatched")).to_be_visible(timeout=5_000)

        await page.locator("#incident-actions button[data-action=resolve]").click()
        await page.select_option("#resolve-outcome", "no_response")
        await expect(page.locator("#resolve-error")).to_be_hidden()
        await page.fill("#resolve-note", "Carer found her asleep, hearing aid out")
        await page.click("#resolve-submit")
        await expect(page.locator("#incident-status")).to_have_attribute("data-status", "resolved")
        [resolved] = await live.incidents("resolved")
        assert resolved["outcome"] == "no_response"
        dispatches = (await live.http.get(f"/api/incidents/{resolved['id']}/dispatches")).json()
        assert [(d["responder"], d["by"], d["note"]) for d in dispatches] == [
            ("night-carer", "operator", "Room 101, east door")
        ]
        device.close()


async def test_a_shift_handover_is_signed_and_shown_to_the_next_operator(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        live.gateway.users.create("li", PASSWORD, Role.OPERATOR)
        page = await operator_page(browser, live.base_url, "operator")  # the shift starts
        device = Publisher(mosquitto.port)
        device.sos("night", "night-pendant-wang")
        device.zigbee("night/102/pendant", action="emergency")
        incidents = await live.wait_for(lambda i: len(i) == 2, "two SOS")
        wang = next(i for i in incidents if i["resident"] == "night-wang")
        (await live.http.post(f"/api/incidents/{wang['id']}/ack")).raise_for_status()
        resolution = {"outcome": "false_alarm", "note": ""}
        (await live.http.post(f"/api/incidents/{wang['id']}/resolve", json=resolution)).raise_for_status()

        await page.click("#handover-link")
        await expect(page).to_have_url(re.compile(r"/handover$"))
        await page.select_option("#lang", "en")  # each page starts in the account's language here
        await expect(page.locator("#happened tbody tr")).to_have_count(2)
        await expect(page.locator("#happened")).to_contain_text("False alarm")
        await expect(page.locator("#still-open tbody tr")).to_have_count(1)
        await expect(page.locator("#still-open")).to_contain_text("李建国")
        await page.fill("#handover-notes", "李建国 still open: carer checking room 102. Door 101 sticks.")
        await page.click("#handover-submit")
        await expect(page.locator("#handover-signed")).to_contain_text("Handover signed by operator")
        await expect(page.locator("#history li")).to_have_count(1)
        [signed] = (await live.http.get("/api/handovers")).json()
        assert (signed["signed_by"], signed["verified"]) == ("operator", True)
        assert signed["notes"] == "李建国 still open: carer checking room 102. Door 101 sticks."

        # The next operator: the notes greet them on the queue until dismissed, and on /handover.
        incoming = await operator_page(browser, live.base_url, "li")
        notice = incoming.locator("#handover-notice")
        await expect(notice).to_be_visible()
        await expect(incoming.locator("#handover-notice-text")).to_have_text(signed["notes"])
        await expect(incoming.locator("#handover-notice-by")).to_contain_text("Signed by operator")
        await incoming.click("#handover-dismiss")
        await expect(notice).to_be_hidden()
        await incoming.reload()
        await expect(incoming.locator("#live-status")).to_have_attribute("data-state", "live", timeout=10_000)
        await expect(incoming.locator(ROWS)).to_have_count(1)
        await expect(notice).to_be_hidden()
        await incoming.goto(f"{live.base_url.rstrip('/')}/handover")
        await expect(incoming.locator("#previous-notes")).to_have_text(signed["notes"])
        # The writer is not greeted by their own notes.
        await page.goto(live.base_url)
        await expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=10_000)
        await expect(page.locator("#handover-notice")).to_be_hidden()
        device.close()


# Texts that are names or data, not words of the page: the residents', sites', people's and devices'.
_NAMES = re.compile(
    r"Night House|night-[\w-]+|operator|li\b|Esc|Enter|Careline|SOS|English|HTTP|\+\d+|"
    r"/static/\S+|[A-Z]\b|\d+"
)


def _english_left(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]{2,}", _NAMES.sub(" ", text))


async def _screen_text(page: Page) -> dict[str, Any]:
    """Every data-i18n element's key and text, and the text of the whole page (dialogs included)."""
    return await page.evaluate(
        """() => ({
          keyed: [...document.querySelectorAll('[data-i18n]')].map((e) => [e.dataset.i18n, e.textContent]),
          titles: [...document.querySelectorAll('[title]')].map((e) => e.title),
          text: [...document.querySelectorAll('body > :not(script)')].map((e) => e.textContent).join(' '),
        })"""
    )


def _check_chinese(screen: dict[str, Any], where: str) -> None:
    for key, text in screen["keyed"]:
        assert text != key, f"{where}: raw key {key}"
        assert re.search(r"[\u4e00-\u9fff]", text) or not _english_left(text), f"{where}: {key} = {text!r}"
    left = _english_left(screen["text"])
    assert left == [], f"{where}: English left on the zh-CN screen: {sorted(set(left))}"
    assert [t for t in screen["titles"] if _english_left(t)] == [], where


async def test_the_zh_cn_screens_have_no_english_or_raw_key_left(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        page = await operator_page(browser, live.base_url, "operator", language="zh-CN")
        await page.mouse.click(5, 700)
        device = Publisher(mosquitto.port)
        device.sos("night", "night-pendant-wang")
        device.zigbee("night/102/pendant", action="emergency")
        rows = page.locator(ROWS)
        await expect(rows).to_have_count(2, timeout=10_000)
        await rows.first.locator("button[data-action=take]").click()
        await expect(rows.first).to_have_attribute("data-taken", "me")
        await page.click("#mute")
        await expect(page.locator("#sound-label")).to_contain_text("已静音")
        _check_chinese(await _screen_text(page), "queue")

        await page.keyboard.press("?")
        _check_chinese(await _screen_text(page), "help")
        await page.keyboard.press("Escape")
        await rows.first.locator("button[data-action=resolve]").click()
        await page.select_option("#resolve-outcome", "no_response")
        _check_chinese(await _screen_text(page), "resolve dialog")
        await page.click("#resolve-cancel")

        await rows.first.locator("a[data-action=open]").click()
        await expect(page.locator("#incident-view")).to_have_attribute("data-loaded", "true")
        await page.select_option("#dispatch-responder", "night-carer")
        await page.click("#dispatch-submit")
        await page.fill("#note-text", "已电话联系")
        await page.click("#note-submit")
        await expect(page.locator("#timeline li[data-kind=note]")).to_have_count(1, timeout=5_000)
        await expect(page.locator("#timeline li[data-kind=dispatch]")).to_have_count(1, timeout=5_000)
        _check_chinese(await _screen_text(page), "incident screen")

        await page.goto(f"{live.base_url.rstrip('/')}/handover")
        await expect(page.locator("#still-open tbody tr")).to_have_count(2)
        await page.fill("#handover-notes", "交班备注")
        await page.click("#handover-submit")
        await expect(page.locator("#handover-signed")).to_be_visible()
        _check_chinese(await _screen_text(page), "handover")
        device.close()


async def test_a_take_refused_because_someone_was_quicker_names_them_and_offers_the_take_over(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(console_config(mosquitto, tmp_path)) as live:
        page = await operator_page(browser, live.base_url, "operator")
        device = Publisher(mosquitto.port)
        device.sos("night", "night-pendant-wang")
        row = page.locator(ROWS)
        await expect(row).to_have_count(1, timeout=10_000)
        # This screen stops hearing frames (a frame still in flight), and a colleague takes the alarm.
        await page.evaluate("window.careline.state.ws.onmessage = null")
        live.gateway.users.create("li", PASSWORD, Role.OPERATOR, language="en")
        colleague = await operator_page(browser, live.base_url, "li")
        await colleague.locator(ROWS).locator("button[data-action=take]").click()
        await expect(colleague.locator(ROWS)).to_have_attribute("data-taken", "me")
        await expect(row).to_have_attribute("data-taken", "")  # this screen does not know yet

        await row.locator("button[data-action=take]").click()
        await expect(page.locator("#takeover-dialog")).to_be_visible()
        await expect(page.locator("#takeover-text")).to_have_text(
            CATALOGUE.text("console.takenBy", "en", user="li")
        )
        await page.click("#takeover-yes")
        await expect(row).to_have_attribute("data-taken", "me")
        [incident] = await live.incidents("active")
        assert incident["taken_by"] == "operator"
        audit = (await live.http.get(f"/api/incidents/{incident['id']}/audit")).json()
        assert [entry["action"] for entry in audit if entry["action"].startswith("incident.taken")] == [
            "incident.taken",
            "incident.taken_over",
        ]
        device.close()
