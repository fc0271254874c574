"""The operators' console in a real Chromium against a real gateway: alarms arrive over real MQTT, the
queue orders them by category, sounds until someone takes or acknowledges them, mutes for a while,
announces them, answers the keyboard, and keeps the screen through a re-login."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from harness import PASSWORD, Publisher, live_gateway, new_config
from playwright.async_api import Browser, Page, expect
from services import Mosquitto
from test_dashboard_browser import policy_violations

from devices.model import EventKind
from gateway.incidents.schema import Outcome

pytestmark = [pytest.mark.asyncio, pytest.mark.browser]

ROWS = "#incidents tr[data-incident-id]"


async def sign_in(page: Page, base_url: str, username: str = "operator", language: str = "en") -> None:
    """Sign in and pick the page's language (accounts are created speaking zh-CN)."""
    await page.goto(base_url)
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=10_000)
    await page.select_option("#lang", language)


async def chimes(page: Page) -> int:
    return int(await page.locator("#sound").get_attribute("data-chimes") or "0")


async def test_an_sos_over_mqtt_sounds_until_acknowledged_and_a_mute_silences_it_for_a_while(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        page = await browser.new_page(locale="en-GB", viewport={"width": 1366, "height": 768})
        blocked = policy_violations(page)
        await page.add_init_script("localStorage.clear()")
        await sign_in(page, live.base_url)
        sound = page.locator("#sound")
        await page.mouse.click(5, 700)  # the gesture the browser's autoplay rule waits for
        await expect(sound).to_have_attribute("data-state", "on")
        await expect(sound).to_have_attribute("data-sounding", "false")
        assert await chimes(page) == 0

        device = Publisher(mosquitto.port)
        device.sos("night", "night-pendant-wang")
        row = page.locator(ROWS)
        await expect(row).to_have_count(1, timeout=10_000)
        await expect(sound).to_have_attribute("data-sounding", "true")
        await expect(page.locator("#sound-label")).to_have_text("♪♪ Alarm sounding")
        # Screen readers hear it: the live region names the alarm, the resident and the place.
        await expect(page.locator("#announcer")).to_have_text(
            "New alarm: SOS call, 王秀英, Night House · 101."
        )
        # It repeats every few seconds: a second chime within the repeat interval.
        first = await chimes(page)
        assert first >= 1
        await expect(sound).not_to_have_attribute("data-chimes", str(first), timeout=6_000)

        await row.locator("button[data-action=ack]").click()
        await expect(row).to_have_attribute("data-status", "acknowledged")
        await expect(sound).to_have_attribute("data-sounding", "false")
        after_ack = await chimes(page)
        await page.wait_for_timeout(4_500)
        assert await chimes(page) == after_ack  # silent once acknowledged

        # A mute: no chimes for a new alarm, the time left shown, and it ends by itself.
        await page.click("#mute")
        await expect(sound).to_have_attribute("data-state", "muted")
        await expect(page.locator("#sound-label")).to_have_text(
            re.compile(r"Muted, 4 min 5\d s left|Muted, 5 min")
        )
        device.zigbee("night/102/pendant", action="emergency")
        await expect(row).to_have_count(2, timeout=10_000)
        await page.wait_for_timeout(4_500)
        assert await chimes(page) == after_ack
        await expect(sound).to_have_attribute("data-sounding", "false")
        # The mute's end brought forward to a second from now (five minutes is long for a test).
        await page.evaluate(
            "window.careline.sound.mutedUntil = Date.now() + 1000; window.careline.sound.changed()"
        )
        await expect(sound).to_have_attribute("data-state", "on", timeout=5_000)
        await expect(sound).to_have_attribute("data-sounding", "true")
        await expect(sound).not_to_have_attribute("data-chimes", str(after_ack), timeout=6_000)
        assert blocked == []
        device.close()


async def test_before_any_click_the_console_says_sound_is_blocked(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        # Chromium's real autoplay rule, as on an operator's workstation.
        context = await browser.new_context(locale="en-GB")
        page = await context.new_page()
        await page.goto(live.base_url)
        await page.fill("#username", "operator")
        await page.fill("#password", PASSWORD)
        await page.press("#password", "Enter")  # a key press: a gesture too
        await expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=10_000)
        await page.select_option("#lang", "en")
        state = await page.evaluate("window.careline.sound.context.state")
        label = page.locator("#sound-label")
        if state != "running":
            await expect(page.locator("#sound")).to_have_attribute("data-state", "blocked")
            await expect(label).to_have_text("✕ Sound off: click anywhere to enable it")
        await page.mouse.click(5, 700)
        await expect(page.locator("#sound")).to_have_attribute("data-state", "on")
        await expect(label).to_have_text("♪ Sound on")
        await context.close()


async def test_life_safety_comes_before_wandering_and_the_oldest_first_within_a_group(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        page = await browser.new_page(locale="en-GB")
        await page.add_init_script("localStorage.clear()")
        await sign_in(page, live.base_url)
        device = Publisher(mosquitto.port)
        device.event("night", "night-door-101", EventKind.DOOR_OPEN, True)
        await live.wait_for(lambda i: len(i) == 1, "the door at night")
        device.zigbee("night/102/pendant", action="emergency")
        await live.wait_for(lambda i: len(i) == 2, "the first SOS")
        device.sos("night", "night-pendant-wang")
        await live.wait_for(lambda i: len(i) == 3, "the second SOS")
        rows = page.locator(ROWS)
        await expect(rows).to_have_count(3, timeout=10_000)
        await expect(rows.nth(0)).to_contain_text("李建国")
        await expect(rows.nth(1)).to_contain_text("王秀英")
        await expect(rows.nth(2)).to_contain_text("Door opened at night")
        categories = [await rows.nth(i).get_attribute("data-category") for i in range(3)]
        assert categories == ["life_safety", "life_safety", "wandering"]
        # The category is not told by colour alone: an icon and words for screen readers.
        await expect(rows.nth(2).locator(".category .visually-hidden")).to_have_text("Wandering")
        await expect(rows.nth(0).locator(".category .icon")).to_have_text("▲")
        # Acknowledging the oldest SOS sends it below the waiting one of its group, not below the door.
        await rows.nth(0).locator("button[data-action=ack]").click()
        await expect(rows.nth(0)).to_contain_text("王秀英")
        await expect(rows.nth(1)).to_contain_text("李建国")
        await expect(rows.nth(2)).to_contain_text("Door opened at night")
        device.close()


async def test_the_keyboard_works_the_queue_and_the_help_overlay_lists_the_shortcuts(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        page = await browser.new_page(locale="en-GB")
        await page.add_init_script("localStorage.clear()")
        await sign_in(page, live.base_url)
        device = Publisher(mosquitto.port)
        device.event("night", "night-door-101", EventKind.DOOR_OPEN, True)
        device.sos("night", "night-pendant-wang")
        rows = page.locator(ROWS)
        await expect(rows).to_have_count(2, timeout=10_000)

        await page.keyboard.press("?")
        help_dialog = page.locator("#help-dialog")
        await expect(help_dialog).to_be_visible()
        await expect(help_dialog).to_contain_text("Next alarm waiting for someone")
        await page.keyboard.press("Escape")
        await expect(help_dialog).to_be_hidden()

        await page.keyboard.press("n")  # the first alarm waiting: the SOS
        await expect(rows.nth(0)).to_have_class(re.compile(r"\bselected\b"))
        await page.keyboard.press("a")
        await expect(rows.nth(0)).to_have_attribute("data-status", "acknowledged")
        # Next waiting alarm is now the door (the acknowledged SOS stays first in its group).
        await page.keyboard.press("n")
        selected = page.locator(f"{ROWS}.selected")
        await expect(selected).to_contain_text("Door opened at night")
        await page.keyboard.press("k")
        await expect(selected).to_contain_text("SOS call")

        await page.keyboard.press("o")
        await expect(page).to_have_url(re.compile(r"#/incident/\d+$"))
        await expect(page.locator("#incident-view")).to_be_visible()
        await expect(page.locator("#queue-view")).to_be_hidden()
        await page.keyboard.press("Escape")
        await expect(page.locator("#queue-view")).to_be_visible()

        await page.keyboard.press("m")
        await expect(page.locator("#mute")).to_have_attribute("aria-pressed", "true")
        await page.keyboard.press("m")
        await expect(page.locator("#mute")).to_have_attribute("aria-pressed", "false")

        await page.keyboard.press("w")
        assert await page.evaluate("document.body.classList.contains('wall')")
        await page.keyboard.press("r")  # resolve the selected one (the SOS)
        await expect(page.locator("#resolve-dialog")).to_be_visible()
        await expect(page.locator("#resolve-summary")).to_contain_text("SOS call")
        # Every outcome the gateway accepts is offered, and nothing else.
        offered = await page.eval_on_selector_all(
            "#resolve-outcome option:not([value=''])", "(options) => options.map((o) => o.value)"
        )
        assert sorted(offered) == sorted(outcome.value for outcome in Outcome)
        await page.select_option("#resolve-outcome", "false_alarm")
        await page.click("#resolve-submit")
        await expect(rows).to_have_count(1)
        device.close()


async def test_a_session_that_ends_brings_a_sign_in_dialog_over_the_queue_and_resyncs_after(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        context = await browser.new_context(locale="en-GB")
        page = await context.new_page()
        await sign_in(page, live.base_url)
        device = Publisher(mosquitto.port)
        device.sos("night", "night-pendant-wang")
        rows = page.locator(ROWS)
        await expect(rows).to_have_count(1, timeout=10_000)
        await page.evaluate("window.notReloaded = true")

        await context.clear_cookies()  # the session is gone, as after its hours ran out
        await rows.locator("button[data-action=ack]").click()
        dialog = page.locator("#relogin-dialog")
        await expect(dialog).to_be_visible()
        await expect(rows).to_have_count(1)  # the queue is still there under the dialog
        await expect(page.locator("#relogin-username")).to_have_value("operator")

        # While signed out an alarm arrives: the page learns of it after signing in, without a reload.
        device.zigbee("night/102/pendant", action="emergency")
        await live.wait_for(lambda i: len(i) == 2, "the second SOS")
        await page.fill("#relogin-password", "wrong-password")
        await page.click("#relogin-submit")
        await expect(page.locator("#relogin-error")).to_have_text("Wrong username or password.")
        await page.fill("#relogin-password", PASSWORD)
        await page.click("#relogin-submit")
        await expect(dialog).to_be_hidden()
        await expect(rows).to_have_count(2, timeout=10_000)
        await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        assert await page.evaluate("window.notReloaded") is True
        # The new session's CSRF token is in use: a change goes through.
        await rows.first.locator("button[data-action=ack]").click()
        await expect(page.locator(f"{ROWS}[data-status=acknowledged]")).to_have_count(1)
        await context.close()
        device.close()


async def test_signing_in_honours_next_on_this_site_only(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        base = live.base_url.rstrip("/")
        page = await browser.new_page(locale="en-GB")
        await page.goto(f"{base}/handover")
        await expect(page).to_have_url(f"{base}/?next=/handover")
        await page.fill("#username", "operator")
        await page.fill("#password", PASSWORD)
        await page.click("#login-submit")
        await expect(page).to_have_url(f"{base}/handover")
        await page.context.clear_cookies()

        for bad in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"):
            other = await browser.new_page(locale="en-GB")
            await other.goto(f"{base}/?next={bad}")
            await other.fill("#username", "operator")
            await other.fill("#password", PASSWORD)
            await other.click("#login-submit")
            await expect(other.locator("#live-status")).to_have_attribute(
                "data-state", "live", timeout=10_000
            )
            assert other.url.startswith(f"{base}/"), bad
            await other.context.clear_cookies()
            await other.close()


async def test_the_link_state_says_reconnecting_when_the_gateway_drops_the_feed(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    async with live_gateway(new_config(mosquitto.url, tmp_path)) as live:
        page = await browser.new_page(locale="en-GB")
        await page.add_init_script("localStorage.clear()")
        await sign_in(page, live.base_url)
        link = page.locator("#live-status")
        await expect(link).to_contain_text(re.compile(r"Live\s*last update \d+ s ago"))
        # The hub cuts this screen off (as it does a slow one): the page says so and comes back by itself.
        live.gateway.hub.publish_frames([])
        for queue in list(live.gateway.hub._clients):
            live.gateway.hub.disconnect(queue)
            queue.put_nowait(None)
        await expect(link).to_have_attribute("data-state", "reconnecting")
        await expect(link).to_contain_text("Offline – reconnecting…")
        await expect(link).to_have_attribute("data-state", "live", timeout=10_000)
        device = Publisher(mosquitto.port)
        device.sos("night", "night-pendant-wang")
        await expect(page.locator(ROWS)).to_have_count(1, timeout=10_000)
        device.close()
