"""Every admin form survives bad input in the browser: missing fields, 100 kB, `<script>` (escaped, never
run), negative prices, invalid URLs; no dialog, no 5xx, no console error, an answer next to the field."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from browser import new_context
from page_watch import PageWatch, log_in
from playwright.async_api import Browser, Page, expect
from proxy_world import OPENAI_MODEL, World

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the loop of the run's chromium

SCRIPT = "<script>alert(1)</script>"
HUGE = "x" * 100_000
INPUTS = {"empty": "", "huge": HUGE, "script": SCRIPT}

Fill = Callable[[Page, str], Awaitable[None]]


async def _fill(page: Page, value: str, *labels: str) -> None:
    for label in labels:
        await page.get_by_label(label, exact=True).fill(value)


async def _add_model(page: Page, value: str) -> None:
    prices = ("Input price (USD / MTok)", "Output price (USD / MTok)")
    await _fill(page, value, "Model ID", "Upstream model", *prices, "Max output tokens")
    await page.get_by_role("button", name="Add model").click()


async def _edit_model(page: Page, value: str) -> None:
    await _fill(page, value, f"Upstream model of {OPENAI_MODEL}", f"Output price of {OPENAI_MODEL}")
    await page.get_by_role("button", name=f"Save {OPENAI_MODEL}", exact=True).click()


async def _credits(page: Page, value: str) -> None:
    await _fill(page, value, "Amount (USD)", "Reason")
    await page.get_by_role("button", name="Apply").click()


async def _factory_key(page: Page, value: str) -> None:
    await _fill(page, value, "Name", "Base URL", "API key")
    await page.get_by_role("button", name="Add factory key").click()


async def _proxy(page: Page, value: str) -> None:
    await _fill(page, value, "Name", "URL")
    await page.get_by_role("button", name="Add proxy").click()


async def _search_users(page: Page, value: str) -> None:
    await _fill(page, value[:1000], "Search by username")  # a GET form: the URL carries it
    await page.get_by_role("button", name="Search").click()


FORMS: dict[str, tuple[str, Fill]] = {
    "add model": ("/admin/pricing", _add_model),
    "edit model": ("/admin/pricing", _edit_model),
    "credits": ("/users/alice", _credits),
    "factory key": ("/factory-keys", _factory_key),
    "proxy": ("/proxies", _proxy),
    "user search": ("/users", _search_users),
}


async def _assert_escaped(page: Page) -> None:
    assert SCRIPT not in await page.content()
    assert await page.locator("script:not([src])").count() == 0


async def test_every_admin_form_survives_empty_huge_and_script_input(
    page_world: World, browser: Browser
) -> None:
    page = await (await new_context(browser, page_world.base_url)).new_page()
    watch = PageWatch().attach(page)
    await log_in(page, page_world.admin.username)
    for form, (path, fill) in FORMS.items():
        for kind, value in INPUTS.items():
            await page.goto(path)
            async with page.expect_navigation() as answer:
                await fill(page, value)
            response = await answer.value
            assert response is not None and response.status < 500, (form, kind)
            if form != "user search":
                # refused next to a field, or (a name may hold any text) accepted with a notice
                said = page.locator(".field-error, .form-error, #notice")
                await expect(said.first).to_be_visible()
            await _assert_escaped(page)
    watch.assert_clean()


async def test_names_with_html_show_as_text_and_bad_prices_and_urls_are_refused_by_their_field(
    page_world: World,
    browser: Browser,
) -> None:
    page = await (await new_context(browser, page_world.base_url)).new_page()
    watch = PageWatch().attach(page)
    await log_in(page, page_world.admin.username)
    await page.goto("/proxies")
    await _fill(page, SCRIPT, "Name")
    await _fill(page, "http://10.0.0.5:3128", "URL")
    await page.get_by_role("button", name="Add proxy").click()
    await expect(page.get_by_role("cell", name=SCRIPT, exact=True)).to_be_visible()
    await page.goto("/admin/audit")
    await expect(page.get_by_text(SCRIPT).first).to_be_visible()
    await _assert_escaped(page)

    await page.goto("/admin/pricing")
    await _fill(page, "-0.5", f"Input price of {OPENAI_MODEL}")
    await page.get_by_role("button", name=f"Save {OPENAI_MODEL}", exact=True).click()
    await expect(page.get_by_label(f"Input price of {OPENAI_MODEL}", exact=True)).to_have_attribute(
        "aria-invalid", "true"
    )
    await expect(page.locator("#model-2-inputPricePerMTok-error")).to_have_text("Price must be ≥ 0")
    await page.goto("/factory-keys")
    await _fill(page, "openai-2", "Name")
    await _fill(page, "not a url", "Base URL")
    await _fill(page, "sk-upstream-key-5678", "API key")
    await page.get_by_role("button", name="Add factory key").click()
    await expect(page.locator("#baseUrl-error")).to_contain_text("baseUrl must not contain spaces")
    await expect(page.get_by_label("API key")).to_have_value("")  # a refused form never echoes the key
    watch.assert_clean()
