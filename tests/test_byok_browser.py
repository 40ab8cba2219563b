"""The API Keys page in a real browser (issue 15): add a provider key, see its last 4, delete it behind a
confirmation."""

from __future__ import annotations

from browser import chromium, new_context, screenshot
from byok_helpers import OWN_ANTHROPIC_KEY, OWN_OPENAI_KEY, own_keys, point_provider_at, save_own_key
from page_watch import PageWatch, log_in
from plan_helpers import edit_plan, set_user
from playwright.async_api import expect
from proxy_world import World


async def test_a_provider_key_is_added_shown_by_its_last_4_and_deleted(world: World) -> None:
    async with chromium() as browser:
        context = await new_context(browser, world.base_url)
        page = await context.new_page()
        watch = PageWatch().attach(page)
        await point_provider_at(world, "openai", world.mock.url)  # the check on save reaches it
        await log_in(page, world.user.username)
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
        assert (await own_keys(world, world.user))["openai"]["last4"] == "k9Q1"
        await screenshot(page, "api-keys-saved-desktop")

        await row.get_by_role("button", name="Delete OpenAI key").click()
        dialog = page.get_by_role("dialog")
        await expect(dialog.get_by_text("Are you sure you want to delete your OpenAI key?")).to_be_visible()
        await dialog.get_by_role("button", name="Delete key").click()
        await expect(page.get_by_role("status")).to_have_text("Key deleted")
        await page.wait_for_load_state("load")
        await expect(page.get_by_role("row").filter(has_text="OpenAI").get_by_text("Not set")).to_be_visible()
        assert await own_keys(world, world.user) == {}
        watch.assert_clean()
        await context.close()


async def test_the_token_widget_warns_at_90_percent_in_the_browser(world: World) -> None:
    await edit_plan(world, "dev", monthlyTokenLimit=1000)
    await set_user(world, monthly_tokens_used=950)
    await save_own_key(world, world.user, "anthropic", OWN_ANTHROPIC_KEY)
    async with chromium() as browser:
        context = await new_context(browser, world.base_url)
        page = await context.new_page()
        watch = PageWatch().attach(page)
        await log_in(page, world.user.username)
        widget = page.get_by_role("region", name="Token usage")
        await expect(widget.get_by_role("progressbar", name="Monthly tokens used")).to_have_attribute(
            "aria-valuenow", "95.0"
        )
        await expect(widget.get_by_role("alert")).to_contain_text(
            "You have used 95.0 % of this month's tokens."
        )
        await expect(widget.get_by_text("Using own API keys")).to_be_visible()
        await screenshot(page, "dashboard-token-warning-desktop", full_page=False)
        watch.assert_clean()
        await context.close()
