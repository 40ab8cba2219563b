"""The providers section and the model `kind` of /admin/pricing in a real browser, at a desktop (1440×900)
and a phone (390×844) size: an admin adds a provider that serves the Responses API and an embedding model on
it, and both show as saved; the page runs no inline script (the CSP refuses them) and logs no error."""

from __future__ import annotations

import pytest
from browser import new_context, screenshot, screenshot_path
from page_watch import PageWatch, log_in
from playwright.async_api import Browser, expect
from proxy_world import World

from trollllm.pricing.service import load_model
from trollllm.providers.tables import Provider

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the loop of the run's chromium


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
async def test_an_admin_adds_a_responses_provider_and_an_embedding_model_on_it(
    page_world: World, phone: bool, browser: Browser
) -> None:
    size = "phone" if phone else "desktop"
    page = await (await new_context(browser, page_world.base_url, phone=phone)).new_page()
    watch = PageWatch().attach(page)
    await log_in(page, "root")
    await page.goto("/admin/pricing")

    await page.get_by_label("Provider name", exact=True).fill("deepseek")
    await page.get_by_label("Provider display name", exact=True).fill("DeepSeek")
    await page.get_by_label("Wire format", exact=True).select_option("openai")
    await page.get_by_label("API root", exact=True).fill("https://api.deepseek.com/v1")
    await page.get_by_label("New provider serves the Responses API").check()
    await page.get_by_role("button", name="Add provider").click()
    await expect(page.locator("#notice")).to_have_text("Added provider deepseek")
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="deepseek"))
    await expect(row.get_by_label("deepseek serves the Responses API")).to_be_checked()
    await expect(row.get_by_label("Wire format of deepseek")).to_have_value("openai")

    await page.get_by_label("Model ID", exact=True).fill("embed-small")
    await page.locator("#new-provider").select_option("deepseek")
    await page.get_by_label("Upstream model", exact=True).fill("deepseek-embed")
    await page.get_by_label("Input price (USD / MTok)", exact=True).fill("0.02")
    await page.get_by_label("Output price (USD / MTok)", exact=True).fill("0")
    await page.get_by_label("Max output tokens", exact=True).fill("1")
    await page.get_by_label("Kind", exact=True).select_option("embedding")
    await page.get_by_role("button", name="Add model").click()
    await expect(page.locator("#notice")).to_have_text("Added model embed-small")
    await expect(page.get_by_label("Kind of embed-small")).to_have_value("embedding")
    await expect(page.get_by_label("Provider of embed-small")).to_have_value("deepseek")
    await screenshot(page, f"admin-pricing-providers-{size}")
    section = page.locator("section", has=page.get_by_role("heading", name="Providers", exact=True))
    await section.screenshot(path=str(screenshot_path(f"admin-pricing-providers-section-{size}")))

    # edited in place: the box unchecked, the row saved, the page shows it so
    await row.get_by_label("deepseek serves the Responses API").uncheck()
    await row.get_by_role("button", name="Save provider deepseek").click()
    await expect(page.locator("#notice")).to_have_text("Saved provider deepseek")
    await expect(row.get_by_label("deepseek serves the Responses API")).not_to_be_checked()
    if phone:
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"/admin/pricing scrolls sideways on a phone ({width}px)"
    watch.assert_clean()
    async with page_world.state.sessions() as session:
        provider = await session.get(Provider, "deepseek")
        model = await load_model(session, "embed-small")
    assert provider is not None and provider.responses_api is False and provider.display_name == "DeepSeek"
    assert model is not None and model.kind == "embedding" and model.provider == "deepseek"
