"""SPEC §8 in a real browser: register, get upgraded, copy the key, call the SDK, rotate the key."""

from __future__ import annotations

import re

import openai
import pytest
from browser import new_context, screenshot
from helpers import PASSWORD
from page_watch import log_in as _log_in
from playwright.async_api import Browser, Page, expect
from proxy_world import OPENAI_MODEL, World

from trollllm.money import Money
from trollllm.web.render import usd_cost, usd_exact

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the loop of the run's chromium

ROTATE_SENTENCES = (
    "Are you sure you want to rotate your API key?",
    "Your current key will be immediately invalidated.",
    "All applications using the current key will stop working.",
)


async def _register(page: Page, username: str) -> None:
    await page.goto("/register")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Repeat password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


async def _clipboard(page: Page) -> str:
    text: str = await page.evaluate("navigator.clipboard.readText()")
    return text


async def test_a_new_user_is_upgraded_copies_the_key_calls_the_sdk_and_rotates(
    page_world: World, browser: Browser
) -> None:
    context = await new_context(browser, page_world.base_url)
    page = await context.new_page()
    await _register(page, "carol")
    await expect(page.get_by_text("You are on the free plan")).to_be_visible()
    await screenshot(page, "dashboard-free-desktop")

    await page_world.admin_call("PATCH", "/api/admin/users/carol", json={"plan": "dev"})
    await page.reload()
    await expect(page.get_by_text("You are on the free plan")).to_have_count(0)
    await expect(page.get_by_text("Plan expires on: ")).to_be_visible()
    await expect(page.get_by_text("$225.00")).to_be_visible()

    await page.get_by_role("button", name="Copy", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text("API key copied")
    key = await _clipboard(page)
    assert re.fullmatch(r"sk-trollllm-\S+", key)
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator("#api-key")).to_have_text(key)

    client = openai.AsyncOpenAI(base_url=page_world.base_url + "/v1", api_key=key, max_retries=0)
    raw = await client.chat.completions.with_raw_response.create(
        model=OPENAI_MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().choices[0].message.content
    cost = Money.from_usd(raw.headers["x-trollllm-cost-usd"])

    await page.get_by_role("link", name="Request History").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=OPENAI_MODEL))
    await expect(row).to_have_count(1)
    cost_cell = row.get_by_role("cell", name=usd_cost(cost.nanos), exact=True)
    await expect(cost_cell).to_have_attribute("title", usd_exact(cost.nanos))
    await page.get_by_role("link", name="Dashboard").click()

    await page.get_by_role("button", name="Rotate").click()
    dialog = page.get_by_role("dialog")
    for sentence in ROTATE_SENTENCES:
        await expect(dialog.get_by_text(sentence)).to_be_visible()
    await screenshot(page, "dashboard-rotate-dialog-desktop")
    await dialog.get_by_role("button", name="Rotate key").click()
    await expect(page.get_by_text("Your new key (shown once): ")).to_be_visible()
    shown = await page.locator("#new-key").text_content() or ""
    new_key = shown.rsplit(" ", 1)[-1]
    assert new_key != key and new_key.startswith("sk-trollllm-")

    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(
            model=OPENAI_MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    fresh = openai.AsyncOpenAI(base_url=page_world.base_url + "/v1", api_key=new_key, max_retries=0)
    again = await fresh.chat.completions.create(
        model=OPENAI_MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    assert again.choices[0].message.content
    await client.close()
    await fresh.close()
    await context.close()


async def test_login_page_and_dashboard_fit_a_phone(page_world: World, browser: Browser) -> None:
    context = await new_context(browser, page_world.base_url, phone=True)
    page = await context.new_page()
    await page.goto("/")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await screenshot(page, "login-phone")
    await page.get_by_label("Username").fill(page_world.user.username)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_text("Invalid username or password")).to_be_visible()
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390, "no sideways scrolling"
    await expect(page.get_by_role("link", name="Dashboard")).to_have_attribute("aria-current", "page")
    await screenshot(page, "dashboard-phone")
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await context.close()


async def test_friend_key_is_generated_limited_used_rotated_and_deleted(
    page_world: World, browser: Browser
) -> None:
    context = await new_context(browser, page_world.base_url)
    page = await context.new_page()
    await _log_in(page, page_world.user.username)
    await page.get_by_role("link", name="Friend Key").click()
    await page.get_by_role("button", name="Generate Friend Key").click()
    await expect(page.get_by_text("Your new Friend Key (shown once): ")).to_be_visible()
    await page.locator("#new-key-box").get_by_role("button", name="Copy", exact=True).click()
    key = await _clipboard(page)
    assert key.startswith("sk-trollllm-")

    limit = page.get_by_label(f"Limit for {OPENAI_MODEL}")
    await limit.fill("-3")
    await page.get_by_role("button", name="Save Limits").click()
    await expect(page.get_by_text("must be ≥ 0")).to_be_visible()
    await limit.fill("1")
    await page.get_by_role("button", name="Save Limits").click()
    await expect(page.get_by_role("status")).to_have_text("Limits saved")
    await page.wait_for_load_state("load")
    await expect(page.get_by_text("$0 / $1.00")).to_be_visible()

    friend = openai.AsyncOpenAI(base_url=page_world.base_url + "/v1", api_key=key, max_retries=0)
    await friend.chat.completions.create(
        model=OPENAI_MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    await page.reload()
    bar = page.get_by_role("progressbar", name=f"Use of the {OPENAI_MODEL} limit")
    assert float(await bar.get_attribute("aria-valuenow") or 0) > 0
    activity = page.get_by_role("region", name="Recent activity")
    await expect(activity.get_by_role("cell", name=OPENAI_MODEL)).to_be_visible()
    await screenshot(page, "friend-key-desktop")

    await page.get_by_role("button", name="Rotate").click()
    await page.get_by_role("dialog").get_by_role("button", name="Rotate Friend Key").click()
    await expect(page.get_by_text("Your new Friend Key (shown once): ")).to_be_visible()
    with pytest.raises(openai.AuthenticationError):
        await friend.chat.completions.create(
            model=OPENAI_MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    await page.get_by_role("button", name="Delete").click()
    await expect(page.get_by_text("Are you sure you want to delete your Friend Key?")).to_be_visible()
    await page.get_by_role("button", name="Delete Friend Key").click()
    await expect(page.get_by_role("button", name="Generate Friend Key")).to_be_visible()
    await friend.close()
    await context.close()


async def test_api_docs_render_offline(page_world: World, browser: Browser) -> None:
    context = await new_context(browser, page_world.base_url)
    await context.route(
        "**/*", lambda route: route.abort() if "127.0.0.1" not in route.request.url else route.continue_()
    )
    page = await context.new_page()
    await page.goto("/docs")
    await expect(page.get_by_role("heading", name="TrollLLM gateway")).to_be_visible()
    await context.close()
