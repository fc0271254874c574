"""The administration page's broker logins in a real Chromium: an administrator issues a hub's login and
sees it once, with its QR code, in Chinese too; the login works on the real secured broker."""

from __future__ import annotations

from pathlib import Path

import pytest
from broker_identity_fixtures import ACCEPTED, NOT_AUTHORIZED, V5Client, certs
from harness import live_gateway
from playwright.async_api import Browser, expect
from services import MosquittoDynsec
from test_admin_browser import open_admin, page_faults, sign_in
from test_broker_identity_live import secured_config, tls_broker

from dashboard.auth import Role
from gateway.catalogue import CATALOGUE

__all__ = ["certs", "tls_broker"]
pytestmark = [pytest.mark.asyncio, pytest.mark.browser]


async def test_an_admin_issues_a_hub_login_and_sees_it_once_with_its_qr_code(
    tls_broker: MosquittoDynsec, tmp_path: Path, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = secured_config(tls_broker, tmp_path, monkeypatch)
    for device in config["devices"]:
        if device.get("profile") == "zigbee2mqtt":
            device["hub"] = f"hub-{device['site']}"
    async with live_gateway(config) as live:
        live.gateway.users.create("admin", "correct-horse-battery", Role.ADMIN, language="zh-CN")
        page = await browser.new_page(locale="zh-CN", viewport={"width": 1366, "height": 768})
        faults = page_faults(page)
        await sign_in(page, live.base_url, "admin")
        await open_admin(page, live.base_url, "logins")
        rows = page.locator("#login-hubs tbody tr")
        await expect(rows).to_have_count(2)
        await expect(page.locator('[data-tab="logins"]')).to_have_text(
            CATALOGUE.text("broker_identity.page.tab", "zh-CN")
        )
        page.once("dialog", lambda dialog: dialog.accept())
        await page.locator('tr[data-hub="hub-night"] button').click()
        shown = page.locator("#login-issued")
        await expect(shown).to_be_visible()
        await expect(shown.locator(".login-once")).to_have_text(
            CATALOGUE.text("broker_identity.page.once", "zh-CN")
        )
        values = await shown.locator(".login-value").all_text_contents()
        username, password = values[0], values[1]
        assert username == "careline.hub.hub-night"
        qr = shown.locator("img.login-qr")
        await expect(qr).to_be_visible()
        assert await qr.evaluate("img => img.complete && img.naturalWidth > 100")
        await page.screenshot(path=str(tmp_path / "logins.png"))
        hub = V5Client(
            tls_broker, username, password, ca_file=tls_broker.certs.ca_cert if tls_broker.certs else None
        )
        try:
            assert hub.publish("zigbee2mqtt/night/102/pendant", b"{}") in ACCEPTED
            assert hub.publish("zigbee2mqtt/day/102/pendant", b"{}") == NOT_AUTHORIZED
        finally:
            hub.close()
        await shown.get_by_role("button").click()
        await expect(shown).to_be_hidden()
        assert password not in await page.content()
        assert faults == []
