"""Issue 28 in a real browser at 1440x900 and 390x844: the layout, the numbers, the history and the admin.

One gateway for the whole module and the run's chromium (the browser suite stays fast); each test uses its own
user, so the tests do not see each other's requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from browser import screenshot
from browser_site import Site, served_site
from browser_site import assert_fits as _no_table_overflows
from browser_site import signed_in_page as _page
from helpers import Account, register_user
from playwright.async_api import Browser, expect
from proxy_world import OPENAI_MODEL

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the loop of the run's chromium
HELLO = [{"role": "user", "content": "Hello, history"}]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, chromium_of_the_run: Browser
) -> AsyncIterator[Site]:
    # One gateway registers every user of the module from one address: no per-address registration limit.
    folder = tmp_path_factory.mktemp("dashboard-layout")
    async with served_site(
        folder, sqlite_template, chromium_of_the_run, register_per_address_per_hour=0
    ) as served:
        yield served


async def _user_with_calls(site: Site, name: str, calls: int = 1) -> Account:
    world = site.world
    account = await register_user(world.gateway, name)
    await world.admin_call("PATCH", f"/api/admin/users/{name}", json={"plan": "dev"})
    async with world.openai(account.api_key) as client:
        for _ in range(calls):
            await client.chat.completions.create(model=OPENAI_MODEL, max_tokens=5, messages=HELLO)
    return account


async def test_request_history_uses_the_width_of_a_desktop_and_clips_no_column(site: Site) -> None:
    account = await _user_with_calls(site, "wide")
    page = await _page(site, account)
    await page.goto("/dashboard/request-history")
    await expect(page.get_by_role("columnheader", name="Latency")).to_be_visible()
    content = await page.locator("main").bounding_box()
    assert content is not None and content["width"] > 1150, "no 1100 px cap beside empty space"
    await _no_table_overflows(page)
    await screenshot(page, "history-desktop")
    await page.context.close()


@pytest.mark.parametrize("path", ["/dashboard/request-history", "/dashboard", "/dashboard/settings/api-keys"])
async def test_user_tables_are_labelled_cards_on_a_phone(site: Site, path: str) -> None:
    account = await _user_with_calls(site, f"phone{len(path)}")
    page = await _page(site, account, phone=True)
    await page.goto(path)
    await _no_table_overflows(page)
    if path.endswith("request-history"):
        cost = page.locator('td[data-label="Credits Cost"]').first
        await expect(cost).to_be_visible()
        await screenshot(page, "history-phone")
    await page.context.close()


@pytest.mark.parametrize("path", ["/dashboard", "/admin?period=24h"])
async def test_the_usage_chart_opens_at_its_start_with_readable_labels_on_a_phone(
    site: Site, path: str
) -> None:
    account = await _user_with_calls(site, f"chartphone{len(path)}")
    page = await _page(site, site.world.admin if path.startswith("/admin") else account, phone=True)
    await page.goto(path)
    chart = page.locator("svg.usage-chart.narrow")
    await expect(chart).to_be_visible()
    await expect(page.locator("svg.usage-chart.wide")).to_be_hidden()
    heights = await chart.locator("text.tick").evaluate_all(
        "(labels) => labels.map((label) => label.getBoundingClientRect().height)"
    )
    assert heights and min(heights) >= 10, f"tick labels of {min(heights):.1f} px"
    assert await page.evaluate("document.querySelector('.chart-wrap').scrollLeft") == 0
    await page.context.close()


async def test_zero_is_dollar_zero_and_tokens_are_in_k_and_m(site: Site) -> None:
    account = await register_user(site.world.gateway, "zero")
    await site.world.admin_call("PATCH", "/api/admin/users/zero", json={"plan": "dev"})
    page = await _page(site, account)
    await page.goto("/dashboard")
    await expect(page.locator("dd", has_text="$225.00")).to_be_visible()
    await expect(page.locator("dd").filter(has_text="$0").last).to_have_text("$0")
    await expect(page.get_by_text("0 / 15.0M tokens used")).to_be_visible()
    await screenshot(page, "dashboard-desktop")
    await page.context.close()


async def test_a_refused_request_is_listed_with_its_reason_and_charged_nothing(site: Site) -> None:
    account = await _user_with_calls(site, "refused")
    async with site.world.openai(account.api_key) as client:
        with pytest.raises(Exception, match="does not exist"):
            await client.chat.completions.create(model="no-such-model", max_tokens=5, messages=HELLO)
    page = await _page(site, account)
    await page.goto("/dashboard/request-history?status=refused")
    row = page.get_by_role("row").filter(has_text="no-such-model")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("404")
    await expect(row).to_contain_text("model_not_found")
    await expect(row.locator('td[data-label="Credits Cost"]')).to_have_text("$0")
    await expect(page.get_by_label("Status")).to_have_value("refused")
    await row.get_by_role("link").click()
    await expect(
        page.get_by_text("Refused by the gateway: not sent upstream, charged nothing.")
    ).to_be_visible()
    await expect(page.locator("#error-text")).to_contain_text("no-such-model")
    await page.context.close()


async def test_history_filters_stay_in_the_url_and_total_the_filtered_rows(site: Site) -> None:
    account = await _user_with_calls(site, "filters", calls=2)
    page = await _page(site, account)
    await page.goto("/dashboard/request-history")
    await page.get_by_label("Key").select_option("api")
    await page.get_by_label("Model").select_option(OPENAI_MODEL)
    await page.get_by_label("Status").select_option("success")
    await page.get_by_role("button", name="Filter").click()
    await expect(page).to_have_url(
        f"{site.world.base_url}/dashboard/request-history?from=&to=&key=api&model={OPENAI_MODEL}&status=success"
    )
    totals = page.get_by_label("Totals of the filtered requests")
    await expect(totals).to_contain_text("Requests2")
    await page.get_by_label("Key").select_option("friend")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("heading", name="No requests match these filters")).to_be_visible()
    await expect(page.get_by_text("Make a first call")).to_have_count(0)
    await page.context.close()


async def test_previous_is_disabled_on_page_one_and_a_page_past_the_end_shows_the_last(site: Site) -> None:
    account = await _user_with_calls(site, "pager", calls=1)
    page = await _page(site, account)
    await page.goto("/dashboard/request-history")
    await expect(page.get_by_text("Previous", exact=True)).to_have_attribute("aria-disabled", "true")
    await page.goto("/dashboard/request-history?page=99")
    await expect(page.get_by_text("There is no page 99: showing the last page, 1.")).to_be_visible()
    await expect(page.get_by_text("Page 1 of 1")).to_be_visible()
    await page.context.close()


async def test_history_times_are_in_the_users_time_zone_and_say_so(site: Site) -> None:
    account = await _user_with_calls(site, "tokyo")
    page = await _page(site, account)
    await page.goto("/dashboard/request-history")
    await page.get_by_label("Times, days and the CSV in").fill("Asia/Tokyo")
    await page.get_by_role("button", name="Save time zone").click()
    await expect(page.get_by_text("times in Asia/Tokyo")).to_be_visible()
    # The test clock is 2026-01-15 12:00 UTC: 21:00 in Tokyo.
    await expect(page.locator("td time").first).to_have_text("2026-01-15 21:00:00")
    await page.context.close()


async def test_factory_key_spend_is_written_at_settlement_and_shown(site: Site) -> None:
    await _user_with_calls(site, "spender")
    await site.world.state.upstream.flush()
    page = await _page(site, site.world.admin)
    await page.goto("/factory-keys")
    row = page.get_by_role("row").filter(has_text="openai-1")
    spend = row.locator('td[data-label="Spend"]')
    await expect(spend).not_to_have_text("$0")
    assert (await spend.text_content() or "").startswith("$0.0")
    await page.context.close()


async def test_an_unknown_address_is_an_html_page_for_a_browser(site: Site) -> None:
    page = await _page(site, site.world.admin)
    response = await page.goto("/no-such-page")
    assert response is not None and response.status == 404
    await expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    api = await site.world.gateway.client.get("/no-such-page", headers={"accept": "application/json"})
    assert api.status_code == 404 and api.json()["error"]["type"] == "not_found"
    await page.context.close()
