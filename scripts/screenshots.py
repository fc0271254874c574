"""Regenerate docs/screenshots/: the main screens in English and Simplified Chinese, from a live demo.

    .venv/bin/python scripts/screenshots.py          (what `make screenshots` runs)

Starts `careline demo` on free ports in a temporary directory (its simulated care home, history and
telemetry fill the screens), signs in as the demo's admin with Chromium (apt's, driven by Playwright),
and photographs each page at 1366×768 in both languages. Installs the Noto CJK fonts first when they are
missing, so the Chinese screens show Chinese and not boxes.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from playwright.async_api import Browser, Page, ViewportSize, async_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT: ViewportSize = {"width": 1366, "height": 768}
LANGUAGES = ("en", "zh-CN")
#: The carer's page is a phone page (iPhone 12-14 CSS pixels), shown as a carer of the demo's district.
PHONE: ViewportSize = {"width": 390, "height": 844}
CARER = "homecarer-fang-li"
CJK_FONT_DIR = Path("/usr/share/fonts/opentype/noto")


@dataclass(frozen=True)
class Screen:
    name: str
    path: str
    #: A selector that is visible once the page has drawn its data.
    ready: str
    #: Scroll height to capture beyond the viewport (long office pages).
    full_page: bool = False


SCREENS = (
    Screen("queue", "/", "#queue-view tbody tr"),
    Screen("handover", "/handover", "main"),
    Screen("history", "/office/history", "main table tbody tr", full_page=True),
    Screen("audit", "/office/audit", "main table tbody tr"),
    Screen("reports", "/office/reports", "main canvas, main svg", full_page=True),
    Screen("quality", "/office/quality", "#quality-table tbody tr"),
    Screen("visits", "/office/visits", "#carers-table tbody tr"),
    Screen("devices", "/office/devices", "main table tbody tr"),
    Screen("sensor-log", "/review?resident=jiang-wenyuan&measurement=heart_rate", "main canvas, main svg"),
    Screen("admin", "/admin", "#entries tbody tr"),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_cjk_fonts() -> None:
    if CJK_FONT_DIR.exists() and any(CJK_FONT_DIR.glob("NotoSansCJK*")):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print("installing fonts-noto-cjk (Chinese screens need it)", flush=True)
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "fonts-noto-cjk"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


class Demo:
    """`careline demo` in a subprocess; the admin password is read from its banner."""

    def __init__(self, data_dir: Path) -> None:
        self.http_port, self.phone_port = _free_port(), _free_port()
        self.log_path = data_dir / "demo.log"
        self._log = self.log_path.open("wb")
        command = [sys.executable, "-m", "careline", "demo", "--data-dir", str(data_dir / "demo")]
        command += ["--http-port", str(self.http_port), "--mqtt-port", str(_free_port())]
        command += ["--phone-port", str(self.phone_port), "--influx-port", "0"]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        self.base_url = f"http://127.0.0.1:{self.http_port}"

    def password(self, limit_s: float = 90.0) -> str:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            found = re.search(r"admin / (\S+)", self.log_path.read_text(errors="replace"))
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"the demo did not start:\n{self.log_path.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


async def _sign_in(page: Page, base_url: str, password: str) -> None:
    await page.goto(base_url)
    await page.fill("#username", "admin")
    await page.fill("#password", password)
    await page.click("#login-submit")
    await page.wait_for_selector("#queue-view tbody tr", timeout=30_000)


async def _photograph(page: Page, base_url: str, screen: Screen, language: str) -> Path:
    await page.goto(base_url + screen.path)
    try:
        await page.wait_for_selector(screen.ready, timeout=15_000)
    except Exception:
        print(f"  {screen.name} ({language}): '{screen.ready}' did not appear; taken as it is", flush=True)
    await page.wait_for_timeout(1200)  # charts animate in, ages tick
    target = OUT / f"{screen.name}-{language}.png"
    await page.screenshot(path=str(target), full_page=screen.full_page)
    return target


async def _extra_screens(page: Page, base_url: str, language: str) -> list[Path]:
    """The incident screen of the newest incident, opened as an operator would (Enter on the queue)."""
    await page.goto(base_url + "/")
    await page.wait_for_selector("#queue-view tbody tr", timeout=15_000)
    first = await page.get_attribute("#queue-view tbody tr", "data-incident-id")
    if first is None:
        return []
    screen = Screen("incident", f"/incident/{first}", "main")
    return [await _photograph(page, base_url, screen, language)]


async def _carer(browser: Browser, base_url: str, password: str, language: str) -> Path:
    """A community carer's visits on a phone (the demo's carers share the admin's password)."""
    context = await browser.new_context(viewport=PHONE, locale=language)
    await context.add_init_script(
        f"localStorage.setItem('careline.lang', '{language}');"
        f"localStorage.setItem('careline.lang:{CARER}', '{language}');"
    )
    page = await context.new_page()
    await page.goto(base_url)
    await page.fill("#username", CARER)
    await page.fill("#password", password)
    await page.click("#login-submit")
    await page.wait_for_url("**/carer", timeout=15_000)
    await page.wait_for_selector("main li", timeout=15_000)
    await page.wait_for_timeout(800)
    target = OUT / f"carer-{language}.png"
    await page.screenshot(path=str(target))
    await context.close()
    return target


async def _phone(browser: Browser, phone_url: str) -> Path:
    """The simulated responders' phones, where the escalation's SMS and calls arrive."""
    page = await browser.new_page(viewport=VIEWPORT)
    await page.goto(phone_url)
    await page.wait_for_timeout(3000)
    target = OUT / "phone.png"
    await page.screenshot(path=str(target))
    await page.close()
    return target


async def photograph_all(browser: Browser, base_url: str, password: str) -> list[Path]:
    taken: list[Path] = []
    for language in LANGUAGES:
        context = await browser.new_context(viewport=VIEWPORT, locale=language)
        await context.add_init_script(
            f"localStorage.setItem('careline.lang', '{language}');"
            f"localStorage.setItem('careline.lang:admin', '{language}');"
        )
        page = await context.new_page()
        await _sign_in(page, base_url, password)
        await page.wait_for_timeout(8000 if language == LANGUAGES[0] else 0)  # the opening alarms arrive
        for screen in SCREENS:
            taken.append(await _photograph(page, base_url, screen, language))
            print(f"  {taken[-1].relative_to(ROOT)}", flush=True)
        taken += await _extra_screens(page, base_url, language)
        await context.close()
        taken.append(await _carer(browser, base_url, password, language))
    return taken


async def _run(demo: Demo, password: str) -> list[Path]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
        )
        try:
            taken = await photograph_all(browser, demo.base_url, password)
            return [*taken, await _phone(browser, f"http://127.0.0.1:{demo.phone_port}/phone")]
        finally:
            await browser.close()


def main() -> None:
    ensure_cjk_fonts()
    OUT.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="careline-screens-"))
    demo = Demo(data_dir)
    try:
        taken = asyncio.run(_run(demo, demo.password()))
    finally:
        demo.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"{len(taken)} screenshots in {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
