"""SPEC §10 in a real browser: redeem a code, buy $20 through the fake Checkout, an admin's code batch
(voided only after the confirmation dialog)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from browser import new_context, screenshot
from helpers import PASSWORD, Account
from page_watch import log_in as _sign_in
from playwright.async_api import Browser, expect
from test_payments_checkout import Shop, open_shop

from trollllm.clock import ManualClock

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the loop of the run's chromium


@pytest_asyncio.fixture(loop_scope="session")
async def shop(tmp_path: Path, clock: ManualClock, embedded_database_url: str) -> AsyncIterator[Shop]:
    async for opened in open_shop(tmp_path, clock, embedded_database_url):
        yield opened


async def _register(shop: Shop, username: str) -> Account:
    response = await shop.gateway.client.post(
        "/api/auth/register", json={"username": username, "password": PASSWORD}
    )
    return Account(username, response.json()["token"], "")


async def test_a_user_redeems_a_code_and_sees_the_balance_move(shop: Shop, browser: Browser) -> None:
    await _register(shop, "alice")
    created = await shop.gateway.client.post(
        "/api/admin/redemption-codes", json={"count": 1, "amountUsd": 12.5}, headers=shop.admin.auth
    )
    code = created.json()["codes"][0]
    for phone in (False, True):
        context = await new_context(browser, shop.base_url, phone=phone)
        page = await context.new_page()
        await _sign_in(page, "alice")
        await page.get_by_role("link", name="Billing").first.click()
        await expect(page.locator("#credits")).to_have_text("$12.50" if phone else "$0")
        if not phone:
            await page.get_by_role("textbox", name="Code").fill("TRL-0000000-0000000-0000000-0000000")
            await page.get_by_role("button", name="Redeem").click()
            await expect(page.locator("#redeem-error")).to_have_text("This code is not valid")
            await page.get_by_role("textbox", name="Code").fill(code)
            await page.get_by_role("button", name="Redeem").click()
            await expect(page.locator("#credits")).to_have_text("$12.50")
            await expect(page.get_by_role("cell", name="Code", exact=True)).to_be_visible()
        await screenshot(page, f"billing-{'phone' if phone else 'desktop'}")
        await context.close()


async def test_a_user_buys_twenty_dollars_through_checkout_and_sees_them_credited(
    shop: Shop, browser: Browser
) -> None:
    await _register(shop, "alice")
    context = await new_context(browser, shop.base_url)
    page = await context.new_page()
    await _sign_in(page, "alice")
    await page.goto("/dashboard/billing")
    await page.get_by_role("button", name="$20", exact=True).click()
    await expect(page.get_by_role("heading", name="Pay $20.00")).to_be_visible()
    await page.get_by_role("button", name="Pay $20.00").click()  # the fake delivers the signed webhook
    await expect(page.get_by_role("heading", name="Billing", exact=True)).to_be_visible()
    await expect(page.locator("#notice")).to_contain_text("Payment received")
    await expect(page.locator("#credits")).to_have_text("$20.00")
    await expect(page.get_by_role("cell", name="Top-up", exact=True)).to_be_visible()
    await screenshot(page, "billing-after-checkout-desktop")
    await context.close()
    assert await shop.books_balance()


async def test_an_admin_creates_a_batch_downloads_it_and_voids_a_code(shop: Shop, browser: Browser) -> None:
    for phone in (False, True):
        context = await new_context(browser, shop.base_url, phone=phone)
        page = await context.new_page()
        await _sign_in(page, "root")
        await page.goto("/admin/redemption-codes")
        await page.get_by_label("Count").fill("3")
        await page.get_by_label("Amount (USD each)").fill("5")
        await page.get_by_label("Note").fill("launch party")
        await page.get_by_role("button", name="Create codes").click()
        await expect(page.locator("#batch-created-title")).to_contain_text("3 code(s), shown once")
        async with page.expect_download() as download_info:
            await page.get_by_role("link", name="Download CSV").click()
        download = await download_info.value
        lines = Path(await download.path()).read_text().splitlines()
        assert lines[0] == "code,batchId" and len(lines) == 4
        one_code = lines[1].split(",")[0]
        await screenshot(page, f"admin-codes-created-{'phone' if phone else 'desktop'}")
        await page.reload()
        batch_id = lines[1].split(",")[1]
        void = page.get_by_role("button", name=f"Void codes of batch {batch_id}")
        dialog = page.get_by_role("dialog", name=f"Void codes of batch {batch_id}?")
        await void.click()
        await expect(dialog).to_contain_text("This cannot be undone.")
        await dialog.get_by_role("button", name="Cancel").click()
        await expect(dialog).to_be_hidden()
        await page.reload()
        row = page.get_by_role("row").filter(has_text="launch party").first
        await expect(row.get_by_role("cell").nth(4)).to_have_text("0")  # cancelled: nothing voided
        await page.locator(f"#void-code-{batch_id}").fill(one_code)
        await void.click()
        await dialog.get_by_role("button", name="Void codes").click()
        await expect(page.get_by_role("status")).to_have_text("1 code(s) voided")
        await page.reload()
        await expect(row.get_by_role("cell").nth(4)).to_have_text("1")
        await screenshot(page, f"admin-codes-{'phone' if phone else 'desktop'}")
        await context.close()
