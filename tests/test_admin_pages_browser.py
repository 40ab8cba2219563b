"""Issue 28's admin items in a real browser at 1440x900 and 390x844: Test buttons with their result and
latency, factory-key edit and delete, a confirmation dialog before every destructive action (dismissed:
nothing happens; accepted: done), the 30-day period with the previous period beside it and dated ticks, the
user page, readable audit values; no table scrolls sideways.

One gateway for the module and the run's chromium; each test makes its own keys, proxies and users.
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from browser import screenshot
from browser_site import Site, assert_fits, served_site, signed_in_page
from forwarding_proxy import ForwardingProxy
from helpers import Account, register_user
from page_watch import PageWatch
from playwright.async_api import Browser, Page, expect
from proxy_world import OPENAI_MODEL

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the loop of the run's chromium
SIZES = {"desktop": False, "phone": True}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, chromium_of_the_run: Browser
) -> AsyncIterator[Site]:
    async with served_site(
        tmp_path_factory.mktemp("admin-pages"), sqlite_template, chromium_of_the_run
    ) as served:
        yield served


async def _page(site: Site, *, phone: bool = False, account: Account | None = None) -> tuple[Page, PageWatch]:
    page = await signed_in_page(site, account or site.world.admin, phone=phone)
    return page, PageWatch().attach(page)


def _dead_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


async def _key(site: Site, name: str, base_url: str | None = None, proxy_id: int | None = None) -> int:
    body = {"name": name, "provider": "openai", "baseUrl": base_url or site.world.mock.url,
            "apiKey": f"fk-{name}-secret", "proxyId": proxy_id}  # fmt: skip
    return int((await site.world.admin_call("POST", "/api/admin/factory-keys", json=body)).json()["id"])


async def _status(site: Site, key_id: int) -> str | None:
    keys = (await site.world.admin_call("GET", "/api/admin/factory-keys")).json()
    return next((key["status"] for key in keys if key["id"] == key_id), None)


@pytest.mark.parametrize("size", SIZES)
async def test_factory_key_test_buttons_show_a_pass_and_a_dead_url_with_latency(
    site: Site, size: str
) -> None:
    good, dead = await _key(site, f"good-{size}"), await _key(site, f"dead-{size}", _dead_url())
    page, watch = await _page(site, phone=SIZES[size])
    await page.goto("/factory-keys")
    await page.get_by_role("button", name=f"Test good-{size}").click()
    passed = page.locator(f"#check-{good}")
    await expect(passed).to_have_text(re.compile(r"^Test passed · \d+ ms200 OK: \d+ models listed$"))
    await page.get_by_role("button", name=f"Test dead-{size}").click()
    failed = page.locator(f"#check-{dead}")
    await expect(failed).to_contain_text("Test failed")
    await expect(failed).to_contain_text("cannot connect to 127.0.0.1:")
    await expect(page.get_by_role("status").filter(has_text="Test failed")).to_be_visible()
    await assert_fits(page)
    await screenshot(page, f"admin-factory-keys-test-{size}")
    watch.assert_clean()
    await page.context.close()
    assert await _status(site, dead) == "healthy", "a test leaves the key as it was"


@pytest.mark.parametrize("size", SIZES)
async def test_disabling_a_key_asks_first_cancel_keeps_it_and_accept_disables_it(
    site: Site, size: str
) -> None:
    key_id = await _key(site, f"toggle-{size}")
    page, watch = await _page(site, phone=SIZES[size])
    await page.goto("/factory-keys")
    await page.get_by_role("button", name=f"Disable toggle-{size}").click()
    dialog = page.get_by_role("dialog", name=f"Disable factory key toggle-{size}?")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("It leaves the rotation until it is enabled here")
    await screenshot(page, f"admin-confirm-dialog-{size}", full_page=False)
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    assert await _status(site, key_id) == "healthy", "a dismissed dialog sends nothing"

    await page.get_by_role("button", name=f"Disable toggle-{size}").click()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    assert await _status(site, key_id) == "healthy", "Escape dismisses too"

    await page.get_by_role("button", name=f"Disable toggle-{size}").click()
    await dialog.get_by_role("button", name="Disable key").click()
    await expect(page.locator("#notice")).to_have_text(f"Disabled factory key toggle-{size}")
    assert await _status(site, key_id) == "disabled"
    watch.assert_clean()
    await page.context.close()


@pytest.mark.parametrize("size", SIZES)
async def test_a_factory_key_is_edited_then_deleted_after_its_dialog(site: Site, size: str) -> None:
    key_id = await _key(site, f"edit-{size}")
    page, watch = await _page(site, phone=SIZES[size])
    await page.goto("/factory-keys")
    await page.get_by_role("link", name=f"Edit edit-{size}").click()
    await expect(page.get_by_role("heading", name=f"Edit edit-{size}")).to_be_visible()
    await expect(page.get_by_text("Leave blank to keep the stored key (ending in cret)")).to_be_visible()
    await page.get_by_label("Name", exact=True).fill(f"renamed-{size}")
    await page.get_by_label("Base URL").fill(site.world.mock.url + "/v1")
    await screenshot(page, f"admin-factory-key-edit-{size}")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.locator("#notice")).to_have_text(f"Saved factory key renamed-{size}")
    row = page.locator("tr", has=page.get_by_role("button", name=f"Delete renamed-{size}"))
    await expect(row).to_contain_text(site.world.mock.url + "/v1")

    await page.get_by_role("button", name=f"Delete renamed-{size}").click()
    dialog = page.get_by_role("dialog", name=f"Delete factory key renamed-{size}?")
    await dialog.get_by_role("button", name="Cancel").click()
    assert await _status(site, key_id) == "healthy"
    await page.get_by_role("button", name=f"Delete renamed-{size}").click()
    await dialog.get_by_role("button", name="Delete key").click()
    await expect(page.locator("#notice")).to_have_text(f"Deleted factory key renamed-{size}")
    await expect(page.get_by_role("button", name=f"Delete renamed-{size}")).to_have_count(0)
    assert await _status(site, key_id) is None
    await assert_fits(page)
    watch.assert_clean()
    await page.context.close()


@pytest.mark.parametrize("size", SIZES)
async def test_a_proxy_is_tested_then_deleted_after_its_dialog(site: Site, size: str) -> None:
    async with ForwardingProxy() as proxy:
        made = await site.world.admin_call(
            "POST", "/api/admin/proxies", json={"name": f"proxy-{size}", "url": proxy.url}
        )
        proxy_id = made.json()["id"]
        key_id = await _key(site, f"via-{size}", proxy_id=proxy_id)
        page, watch = await _page(site, phone=SIZES[size])
        await page.goto("/proxies")
        await page.get_by_role("button", name=f"Test proxy-{size}").click()
        await expect(page.locator(f"#check-{proxy_id}")).to_contain_text("Test passed · ")
        await expect(page.locator(f"#check-{proxy_id}")).to_contain_text(
            "the proxy passed the request; 200 OK"
        )
        assert proxy.forwarded == 1
        await assert_fits(page)
        await screenshot(page, f"admin-proxies-test-{size}")
    await site.world.admin_call("DELETE", f"/api/admin/factory-keys/{key_id}")
    await page.goto("/proxies")
    await page.get_by_role("button", name=f"Delete proxy-{size}").click()
    dialog = page.get_by_role("dialog", name=f"Delete proxy proxy-{size}?")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(page.get_by_role("button", name=f"Delete proxy-{size}")).to_be_visible()
    await page.get_by_role("button", name=f"Delete proxy-{size}").click()
    await dialog.get_by_role("button", name="Delete proxy").click()
    await expect(page.locator("#notice")).to_have_text("Deleted the proxy")
    await expect(page.get_by_role("button", name=f"Delete proxy-{size}")).to_have_count(0)
    watch.assert_clean()
    await page.context.close()


@pytest.mark.parametrize("size", SIZES)
async def test_revoking_a_user_key_asks_first(site: Site, size: str) -> None:
    account = await register_user(site.world.gateway, f"revoke{size}")
    page, watch = await _page(site, phone=SIZES[size])
    await page.goto(f"/keys?search=revoke{size}")
    button = page.get_by_role("button", name=f"Revoke revoke{size}'s key")
    await button.click()
    dialog = page.get_by_role("dialog", name=f"Revoke revoke{size}'s API key?")
    await expect(dialog).to_contain_text(f"sk-trollllm-****...****{account.api_key[-4:]}")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(button).to_be_visible()
    await button.click()
    await dialog.get_by_role("button", name="Revoke key").click()
    await expect(page.locator("#notice")).to_contain_text(f"Revoked revoke{size}'s key")
    await assert_fits(page)
    watch.assert_clean()
    await page.context.close()


@pytest.mark.parametrize("size", SIZES)
async def test_the_user_page_lists_keys_usage_ledger_and_requests_and_deactivation_asks(
    site: Site, size: str
) -> None:
    name = f"detail{size}"
    account = await register_user(site.world.gateway, name)
    await site.world.admin_call("PATCH", f"/api/admin/users/{name}", json={"plan": "dev"})
    async with site.world.openai(account.api_key) as client:
        await client.chat.completions.create(
            model=OPENAI_MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    page, watch = await _page(site, phone=SIZES[size])
    await page.goto(f"/users?search={name}")
    await page.get_by_role("link", name=name, exact=True).click()
    await expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
    for heading in ("Keys", "Usage by model · last 30 days", "Ledger", "Recent requests"):
        await expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    await expect(page.get_by_text(f"sk-trollllm-****...****{account.api_key[-4:]}")).to_be_visible()
    await expect(page.get_by_text("The latest 1 of 1 requests", exact=False)).to_be_visible()
    await expect(
        page.locator("section", has=page.get_by_role("heading", name="Ledger"))
        .get_by_text("plan grant")
        .first
    ).to_be_visible()
    await assert_fits(page)
    await screenshot(page, f"admin-user-{size}")

    deactivate = page.get_by_role("button", name="Deactivate")
    await deactivate.click()
    dialog = page.get_by_role("dialog", name=f"Deactivate {name}?")
    await expect(dialog).to_contain_text("is signed out at once")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(page.get_by_text("This account can sign in and call the API.")).to_be_visible()
    await deactivate.click()
    await dialog.get_by_role("button", name="Deactivate").click()
    await expect(page.locator("#notice")).to_have_text(f"{name} is deactivated")

    amount, apply = page.get_by_label("Amount (USD)"), page.get_by_role("button", name="Apply")
    await amount.fill("-5")
    await page.get_by_label("Reason").fill("duplicate grant")
    await apply.click()
    deduct = page.get_by_role("dialog", name=f"Deduct credits from {name}?")
    await deduct.get_by_role("button", name="Cancel").click()
    await expect(page.locator("#notice")).to_have_text(f"{name} is deactivated")  # nothing was posted
    await apply.click()
    await deduct.get_by_role("button", name="Deduct").click()
    await expect(page.locator("#notice")).to_have_text("Deducted $5.00 from credits")
    await page.get_by_label("Amount (USD)").fill("5")
    await page.get_by_label("Reason").fill("back again")
    await page.get_by_role("button", name="Apply").click()  # a grant asks nothing
    await expect(page.locator("#notice")).to_have_text("Granted $5.00 to credits")
    await expect(page.get_by_role("button", name="Activate")).to_be_visible()
    watch.assert_clean()
    await page.context.close()


@pytest.mark.parametrize("size", SIZES)
async def test_the_overview_has_30_days_the_previous_period_and_dated_ticks(site: Site, size: str) -> None:
    page, watch = await _page(site, phone=SIZES[size])
    await page.goto("/admin")
    await page.get_by_role("link", name="30d").click()
    await expect(page.get_by_role("link", name="30d")).to_have_attribute("aria-current", "page")
    requests = page.locator(".stat", has=page.get_by_role("heading", name="Requests", exact=True))
    await expect(requests.locator(".previous")).to_have_text(re.compile(r"^Previous 30 days: \d"))
    chart = page.locator(f"svg.usage-chart.{'narrow' if SIZES[size] else 'wide'}")
    ticks = await chart.locator("text.tick[text-anchor=middle]").all_text_contents()
    assert ticks and all(re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}", tick) for tick in ticks), ticks
    await page.get_by_role("link", name="7d").click()
    ticks = await chart.locator("text.tick[text-anchor=middle]").all_text_contents()
    assert ticks and all(re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}", tick) for tick in ticks), ticks
    await assert_fits(page)
    await screenshot(page, f"admin-overview-7d-{size}")
    watch.assert_clean()
    await page.context.close()


@pytest.mark.parametrize("size", SIZES)
async def test_audit_values_are_words_not_json(site: Site, size: str) -> None:
    await site.world.admin_call(
        "PUT", "/api/admin/anthropic-betas", json={"refused": [f"{size}-beta", "x-*"]}
    )
    page, watch = await _page(site, phone=SIZES[size])
    await page.goto("/admin/audit?action=anthropic_betas.update")
    changes = page.locator("td.changes").first
    await expect(changes).to_contain_text(f"{size}-beta, x-*")
    assert '["' not in (await page.locator("main").inner_text())
    await assert_fits(page)
    await screenshot(page, f"admin-audit-{size}")
    watch.assert_clean()
    await page.context.close()
