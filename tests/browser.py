"""Debian's chromium driven by Playwright for the page tests; screenshots go to the ignored screenshots/, a
folder per test module.

A plugin (see conftest): the page tests share one chromium for the whole run (`browser`), so they and their
async fixtures run on the session's loop (`pytest.mark.asyncio(loop_scope="session")`); each test still has
its own profiles (`new_context`, closed after it) and, with `page_world`, its own world."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from proxy_world import World, served_world

from trollllm.clock import ManualClock

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


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium_of_the_run() -> AsyncIterator[Browser]:
    """One headless chromium of the machine (never a downloaded browser) for all the page tests."""
    require_chromium()
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="session")
async def browser(chromium_of_the_run: Browser) -> AsyncIterator[Browser]:
    """The run's chromium for this test; the profiles it opened (`new_context`) are closed after it."""
    yield chromium_of_the_run
    for context in chromium_of_the_run.contexts:
        await context.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page_world(tmp_path: Path, clock: ManualClock, embedded_database_url: str) -> AsyncIterator[World]:
    """This test's own proxy world (as `world`), served on the loop of the run's chromium."""
    async with served_world(tmp_path, clock, embedded_database_url) as world:
        yield world


async def new_context(browser: Browser, base_url: str, *, phone: bool = False) -> BrowserContext:
    """A fresh browser profile on the gateway with clipboard access, at a phone or desktop size."""
    context = await browser.new_context(
        base_url=base_url,
        viewport=PHONE if phone else DESKTOP,
        permissions=["clipboard-read", "clipboard-write"],
    )
    context.set_default_timeout(10_000)
    return context


def screenshot_path(name: str) -> Path:
    """screenshots/<the running test's module>/`name`.png, its folder made: two modules may picture the same
    page under the same name (and run at once on two workers)."""
    module = Path(os.environ["PYTEST_CURRENT_TEST"].split("::", 1)[0]).stem
    folder = SCREENSHOTS / module
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.png"


async def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Write a PNG of `page` (the whole page, or only the viewport) to `screenshot_path(name)`."""
    path = screenshot_path(name)
    await page.screenshot(path=str(path), full_page=full_page, timeout=30_000)  # a tall page, a busy machine
    return path
