"""The admin pages in a real browser (SPEC §8): an admin sets the gateway up and upgrades a user from the
pages, the user's official-SDK requests show on /admin as the period changes; users and visitors stay out."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
import pytest_asyncio
from admin_page_helpers import ADMIN_PAGES
from browser import new_context
from conftest import AppHarness, make_settings
from helpers import Account, make_admin, register_user
from page_watch import PageWatch, log_in
from playwright.async_api import Browser, Page, expect
from proxy_world import World, serve

from trollllm.clock import ManualClock
from trollllm.mockupstream import MockUpstream

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the loop of the run's chromium


@dataclass
class Bare:
    """A served gateway with no model and no factory key yet, an admin, and bob on the free plan."""

    gateway: AppHarness
    base_url: str
    mock: MockUpstream
    bob: Account


@pytest_asyncio.fixture(loop_scope="session")
async def bare(tmp_path: Path, clock: ManualClock, embedded_database_url: str) -> AsyncIterator[Bare]:
    async with MockUpstream() as mock, serve(make_settings(tmp_path, embedded_database_url), clock) as served:
        gateway, base_url = served
        await make_admin(gateway)
        yield Bare(gateway, base_url, mock, await register_user(gateway, "bob"))


async def _card(page: Page, title: str) -> str:
    text = (
        await page.locator(".stat", has=page.get_by_role("heading", name=title, exact=True))
        .locator(".value")
        .text_content()
    )
    return (text or "").strip()


async def test_an_admin_sets_up_upgrades_a_user_and_sees_the_sdk_requests_by_period(
    bare: Bare, clock: ManualClock, browser: Browser
) -> None:
    page = await (await new_context(browser, bare.base_url)).new_page()
    watch = PageWatch().attach(page)
    await log_in(page, "root")

    await page.get_by_role("link", name="Factory Keys").click()
    await page.get_by_label("Name", exact=True).fill("mock-openai")
    await page.get_by_label("Base URL").fill(bare.mock.url)
    await page.get_by_label("API key").fill("fk-browser-key-1234")
    await page.get_by_role("button", name="Add factory key").click()
    await expect(page.locator("#notice")).to_have_text("Added factory key mock-openai")
    await expect(page.get_by_role("button", name="Disable mock-openai")).to_be_visible()

    await page.get_by_role("link", name="Pricing").click()
    await page.get_by_label("Model ID", exact=True).fill("gpt-browser")
    await page.get_by_label("Upstream model", exact=True).fill("gpt-4o-mini")
    await page.get_by_label("Input price (USD / MTok)", exact=True).fill("5")
    await page.get_by_label("Output price (USD / MTok)", exact=True).fill("25")
    await page.get_by_label("Max output tokens", exact=True).fill("4096")
    await page.get_by_role("button", name="Add model").click()
    await expect(page.locator("#notice")).to_have_text("Added model gpt-browser")

    await page.get_by_role("link", name="Users", exact=True).click()
    await page.get_by_role("link", name="bob").click()
    await page.get_by_label("New plan").select_option("dev")
    await expect(page.get_by_label("New plan")).to_contain_text("dev — grants $225.00")
    await page.get_by_role("button", name="Review change").click()
    await expect(page.locator("#plan-review")).to_contain_text("This grants $225.00 in credits")
    await page.get_by_role("button", name="Confirm plan change").click()
    await expect(page.locator("#notice")).to_have_text("bob is now on dev: granted $225.00 in credits")

    sdk = openai.AsyncOpenAI(base_url=bare.base_url + "/v1", api_key=bare.bob.api_key, max_retries=0)
    async with sdk as client:
        for _ in range(3):
            await client.chat.completions.create(
                model="gpt-browser", messages=[{"role": "user", "content": "hi"}]
            )

    await page.get_by_role("link", name="Overview").click()
    await page.get_by_role("link", name="1h").click()
    await expect(page.get_by_role("link", name="1h")).to_have_attribute("aria-current", "page")
    assert await _card(page, "Requests") == "3"
    assert re.fullmatch(r"\$0\.\d+", await _card(page, "Spend"))
    await expect(page.get_by_role("link", name="bob")).to_be_visible()
    clock.advance(2 * 3600)
    await page.get_by_role("link", name="1h").click()
    assert await _card(page, "Requests") == "0"
    await page.get_by_role("link", name="24h").click()
    await expect(page.get_by_role("link", name="24h")).to_have_attribute("aria-current", "page")
    assert await _card(page, "Requests") == "3"
    await page.get_by_text("View as table").click()
    await expect(page.locator(".chart-table tbody tr").first).to_be_visible()
    watch.assert_clean()


async def test_a_user_is_bounced_from_every_admin_page_with_access_denied(
    page_world: World, browser: Browser
) -> None:
    page = await (await new_context(browser, page_world.base_url)).new_page()
    watch = PageWatch().attach(page)
    await log_in(page, page_world.user.username)
    await expect(page.get_by_role("link", name="Factory Keys")).to_have_count(0)
    for path in ADMIN_PAGES:
        await page.goto(path)
        await expect(page.get_by_role("heading", name="Access Denied")).to_be_visible()
    await page.wait_for_url("**/dashboard", timeout=6000)  # the meta refresh after 3 s
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    watch.assert_clean()


async def test_a_visitor_opening_an_admin_page_lands_on_login(page_world: World, browser: Browser) -> None:
    page = await (await new_context(browser, page_world.base_url)).new_page()
    for path in ADMIN_PAGES:
        await page.goto(path)
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        assert page.url.endswith("/login")
