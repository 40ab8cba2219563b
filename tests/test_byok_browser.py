"""The API Keys page in a real browser (issue 15): add a provider key, see its last 4, delete it behind a
confirmation."""

from __future__ import annotations

import pytest
from browser import new_context, screenshot
from byok_helpers import OWN_ANTHROPIC_KEY, OWN_OPENAI_KEY, own_keys, point_provider_at, save_own_key
from page_watch import PageWatch, log_in
from plan_helpers import edit_plan, set_user
from playwright.async_api import Browser, expect
from proxy_world import World

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the loop of the run's chromium


async def test_a_provider_key_is_added_shown_by_its_last_4_and_deleted(
    page_world: World, browser: Browser
) -> None:
    context = await new_context(browser, page_world.base_url)
    page = await context.new_page()
    watch = PageWatch().attach(page)
    await point_provider_at(page_world, "openai", page_world.mock.url)  # the check on save reaches it
    await log_in(page, page_world.user.username)
    await page.get_by_role("link", name="API Keys").click()
    await expect(page.get_by_role("heading", name="API Keys", exact=True)).to_be_visible()

    await page.get_by_label("Provider", exact=True).select_option(label="OpenAI")
    await page.get_by_label("API key", exact=True).fill(OWN_OPENAI_KEY)
    await page.get_by_role("button", name="Save key").click()
    await expect(page.get_by_role("status")).to_have_text("Key saved")
    row = page.get_by_role("row").filter(has_text="OpenAI")
    await expect(row.get_by_text("…k9Q1")).to_be_visible()
    await expect(row.get_by_text("Verified")).to_be_visible()
    assert OWN_OPENAI_KEY not in await page.content()
    assert (await own_keys(page_world, page_world.user))["openai"]["last4"] == "k9Q1"
    await screenshot(page, "api-keys-saved-desktop")

    await row.get_by_role("button", name="Delete OpenAI key").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_text("Are you sure you want to delete your OpenAI key?")).to_be_visible()
    await dialog.get_by_role("button", name="Delete key").click()
    await expect(page.get_by_role("status")).to_have_text("Key deleted")
    await page.wait_for_load_state("load")
    await expect(page.get_by_role("row").filter(has_text="OpenAI").get_by_text("Not set")).to_be_visible()
    assert await own_keys(page_world, page_world.user) == {}
    watch.assert_clean()
    await context.close()


async def test_the_token_widget_warns_at_90_percent_in_the_browser(
    page_world: World, browser: Browser
) -> None:
    await edit_plan(page_world, "dev", monthlyTokenLimit=1000)
    await set_user(page_world, monthly_tokens_used=950)
    await save_own_key(page_world, page_world.user, "anthropic", OWN_ANTHROPIC_KEY)
    context = await new_context(browser, page_world.base_url)
    page = await context.new_page()
    watch = PageWatch().attach(page)
    await log_in(page, page_world.user.username)
    widget = page.get_by_role("region", name="Token usage")
    await expect(widget.get_by_role("progressbar", name="Monthly tokens used")).to_have_attribute(
        "aria-valuenow", "95.0"
    )
    await expect(widget.get_by_role("alert")).to_contain_text("You have used 95.0 % of this month's tokens.")
    await expect(widget.get_by_text("Using own API keys")).to_be_visible()
    await screenshot(page, "dashboard-token-warning-desktop", full_page=False)
    watch.assert_clean()
    await context.close()
