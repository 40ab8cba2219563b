"""One served gateway (its world: the mock provider, an admin, a dev-plan user) and the run's chromium shared
by a module of page tests, pages signed in by cookie, and the layout check the page tests make."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from browser import new_context
from conftest import make_settings
from helpers import Account
from playwright.async_api import Browser, Page
from proxy_world import World, build_world, serve

from trollllm.accounts.sessions import CSRF_COOKIE, SESSION_COOKIE
from trollllm.clock import ManualClock
from trollllm.mockupstream import MockUpstream

# Every table on the page: none may scroll sideways or clip a column (scroll width within its box).
OVERFLOWING_TABLES = """() => [...document.querySelectorAll('.table-wrap, table')]
  .filter((box) => box.offsetParent !== null && box.scrollWidth > box.clientWidth + 1)
  .map((box) => `${box.tagName} ${box.scrollWidth} > ${box.clientWidth}`)"""


@dataclass
class Site:
    """The served world, the browser and the gateway's clock."""

    world: World
    browser: Browser
    clock: ManualClock


@contextlib.asynccontextmanager
async def served_site(
    folder: Path, sqlite_template: Path, browser: Browser, **overrides: Any
) -> AsyncIterator[Site]:
    """A gateway on a copy of the migrated SQLite template in `folder` (settings `overrides`), its world
    built through the admin API, and the run's chromium (`browser`); the profiles opened on it are closed
    after."""
    shutil.copyfile(sqlite_template, folder / "trollllm.db")
    settings = make_settings(folder, f"sqlite+aiosqlite:///{folder / 'trollllm.db'}", **overrides)
    clock = ManualClock()
    async with MockUpstream() as mock, serve(settings, clock) as (gateway, base_url):
        world = await build_world(gateway, base_url, mock)
        try:
            yield Site(world, browser, clock)
        finally:
            for context in browser.contexts:
                await context.close()


async def signed_in_page(site: Site, account: Account, *, phone: bool = False) -> Page:
    """A page in a fresh browser profile signed in as `account` (its session cookie and a CSRF cookie)."""
    context = await new_context(site.browser, site.world.base_url, phone=phone)
    url = site.world.base_url
    await context.add_cookies(
        [
            {"name": SESSION_COOKIE, "value": account.token, "url": url},
            {"name": CSRF_COOKIE, "value": "csrf-of-this-browser", "url": url},
        ]
    )
    return await context.new_page()


async def assert_fits(page: Page) -> None:
    """No table scrolls sideways or clips a column, and the page is no wider than the window."""
    assert await page.evaluate(OVERFLOWING_TABLES) == [], "a table scrolls sideways or clips a column"
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
