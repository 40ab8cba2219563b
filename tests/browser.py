"""Debian's chromium driven by Playwright for the page tests; screenshots go to the ignored screenshots/."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}


def require_chromium() -> None:
    """Skip loudly without Debian's chromium (./test installs it); under CI a missing browser fails."""
    if Path(CHROMIUM).exists():
        return
    message = f"{CHROMIUM} is missing: browser tests need Debian's chromium (apt-get install -y chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless chromium of the machine (never a downloaded browser)."""
    require_chromium()
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


async def new_context(browser: Browser, base_url: str, *, phone: bool = False) -> BrowserContext:
    """A fresh browser profile on the gateway with clipboard access, at a phone or desktop size."""
    context = await browser.new_context(
        base_url=base_url,
        viewport=PHONE if phone else DESKTOP,
        permissions=["clipboard-read", "clipboard-write"],
    )
    context.set_default_timeout(10_000)
    return context


async def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Write a PNG of `page` (the whole page, or only the viewport) to screenshots/`name`.png."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page, timeout=30_000)  # a tall page, a busy machine
    return path
