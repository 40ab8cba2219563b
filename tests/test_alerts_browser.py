"""Issue 27 in a real browser, at a phone's and a desktop's size: the dashboard's usage window bars with
their reset times, the Friend Key page's next resets and pause switch, and the Alerts page."""

from __future__ import annotations

import openai
import pytest
from alert_helpers import run_alerts
from browser import new_context, screenshot
from page_watch import log_in as _log_in
from plan_helpers import edit_plan
from playwright.async_api import Browser, Page, expect
from proxy_world import OPENAI_MODEL, World

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the loop of the run's chromium

SIZES = pytest.mark.parametrize("phone", [True, False], ids=["phone", "desktop"])


async def _fits(page: Page, phone: bool) -> None:
    if phone:
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390, "no sideways scrolling"


@SIZES
async def test_the_dashboard_shows_each_usage_window_as_a_bar_with_its_reset_time(
    page_world: World, phone: bool, browser: Browser
) -> None:
    await edit_plan(
        page_world,
        "dev",
        windows=[{"window": "5h", "usdLimit": 1.0}, {"window": "7d", "usdLimit": 20, "tokenLimit": 50000}],
    )
    async with page_world.openai() as client:
        await client.chat.completions.create(
            model=OPENAI_MODEL,
            max_tokens=2000,
            messages=[{"role": "user", "content": "[mock reply_tokens=2000] hi"}],
        )
    context = await new_context(browser, page_world.base_url, phone=phone)
    page = await context.new_page()
    await _log_in(page, page_world.user.username)

    card = page.get_by_role("region", name="Usage windows")
    five = card.get_by_role("progressbar", name="5h window used")
    week = card.get_by_role("progressbar", name="7d window used")
    assert 5 <= float(await five.get_attribute("aria-valuenow") or 0) < 6  # $0.05… of $1.00
    assert 0 < float(await week.get_attribute("aria-valuenow") or 0) < 5
    await expect(card.get_by_text("/ $1.00")).to_be_visible()
    await expect(card.get_by_text("/ 50,000 tokens")).to_be_visible()
    await expect(card.get_by_text("Frees up from")).to_have_count(2)
    await card.scroll_into_view_if_needed()
    await _fits(page, phone)
    await screenshot(page, f"dashboard-windows-{'phone' if phone else 'desktop'}")
    await context.close()


@SIZES
async def test_the_friend_key_page_shows_each_models_next_reset_and_pauses_the_key(
    page_world: World, phone: bool, browser: Browser
) -> None:
    client = page_world.gateway.client
    created = await client.post("/api/user/friend-key", headers=page_world.user.auth)
    friend_key = created.json()["friendKey"]
    limits = {"modelLimits": [{"modelId": OPENAI_MODEL, "limitUsd": 2, "resetPeriod": "daily"}]}
    assert (
        await client.put("/api/user/friend-key/limits", headers=page_world.user.auth, json=limits)
    ).status_code == 200
    context = await new_context(browser, page_world.base_url, phone=phone)
    page = await context.new_page()
    await _log_in(page, page_world.user.username)
    await page.goto("/dashboard/friend-key")

    period = page.get_by_label(f"Reset period for {OPENAI_MODEL}")
    await expect(period).to_have_value("daily")
    await expect(page.get_by_text("next 2026-01-16 00:00:00")).to_be_visible()  # the browser runs in UTC
    await page.get_by_label(f"Limit for {OPENAI_MODEL}").fill("3")
    await page.get_by_role("button", name="Save Limits").click()
    await expect(page.get_by_role("status")).to_have_text("Limits saved")
    await page.wait_for_load_state("load")
    shown = (await client.get("/api/user/friend-key", headers=page_world.user.auth)).json()["modelLimits"]
    assert shown[0]["resetPeriod"] == "daily" and shown[0]["limitUsd"] == 3  # the period is kept on save

    await expect(page.locator("#friend-key-state")).to_have_text("Active")
    await page.get_by_role("button", name="Pause").click()
    await expect(page.locator("#friend-key-state")).to_have_text("Paused")
    friend = openai.AsyncOpenAI(base_url=page_world.base_url + "/v1", api_key=friend_key, max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="paused"):
        await friend.chat.completions.create(
            model=OPENAI_MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    await _fits(page, phone)
    await screenshot(page, f"friend-key-paused-{'phone' if phone else 'desktop'}")
    await page.get_by_role("button", name="Resume").click()
    await expect(page.locator("#friend-key-state")).to_have_text("Active")
    await friend.chat.completions.create(
        model=OPENAI_MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    await friend.close()
    await context.close()


@SIZES
async def test_the_alerts_page_lists_notifications_and_saves_the_settings(
    page_world: World, phone: bool, browser: Browser
) -> None:
    context = await new_context(browser, page_world.base_url, phone=phone)
    page = await context.new_page()
    await _log_in(page, page_world.user.username)
    await page.get_by_role("link", name="Alerts").click()
    await expect(page.get_by_text("No alerts yet.")).to_be_visible()

    await page.get_by_label("Low balance (USD)").fill("abc")
    await page.get_by_role("button", name="Save alerts").click()
    await expect(page.get_by_text("lowBalanceUsd must be a number of USD or null")).to_be_visible()
    await page.get_by_label("Low balance (USD)").fill("300")
    await page.get_by_label("Usage thresholds (%)").fill("50, 90")
    await page.get_by_role("button", name="Save alerts").click()
    await expect(page.get_by_role("status")).to_have_text("Alerts saved")
    saved = (await page_world.gateway.client.get("/api/user/alerts", headers=page_world.user.auth)).json()
    assert saved["lowBalanceUsd"] == 300 and saved["usagePercents"] == [50, 90]

    await run_alerts(page_world.state)  # $225 is below $300
    await page.reload()
    notifications = page.get_by_role("region", name="Notifications")
    await expect(notifications.get_by_text("Your balance $225.00 is below $300.00")).to_be_visible()
    await expect(page.get_by_role("link", name="Alerts")).to_have_attribute("aria-current", "page")
    await _fits(page, phone)
    await screenshot(page, f"alerts-{'phone' if phone else 'desktop'}")
    await context.close()
