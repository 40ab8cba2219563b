"""Issue 28, the user's pages in a real browser (1440x900 and 390x844): the Friend Key page, the dashboard,
the usage view and `/docs`.

One gateway for the whole module and the run's chromium; each test has its own user, so none sees another's
requests. The gateway's clock is fixed at 2026-01-15 12:00 UTC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import openai
import pytest
import pytest_asyncio
from browser import screenshot
from browser_site import Site, served_site
from browser_site import assert_fits as _no_table_overflows
from browser_site import signed_in_page as _page
from helpers import Account, register_user
from playwright.async_api import Browser, Page, expect
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the loop of the run's chromium
HELLO = [{"role": "user", "content": "Hello, usage"}]
# The world's models: $5 / $25 per MTok with cache writes at $6.25, 4,096 output tokens at most. The smallest
# request at full output holds 64 input tokens x $6.25 + 4,096 x $25 per MTok = $0.1028.
SMALLEST_HOLD = "$0.1028"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, chromium_of_the_run: Browser
) -> AsyncIterator[Site]:
    # Many users from one address: each test has its own.
    folder = tmp_path_factory.mktemp("user-pages")
    async with served_site(
        folder, sqlite_template, chromium_of_the_run, register_per_address_per_hour=0
    ) as served:
        yield served


async def _user(site: Site, name: str, *, plan: str | None = "dev") -> Account:
    account = await register_user(site.world.gateway, name)
    if plan is not None:
        await site.world.admin_call("PATCH", f"/api/admin/users/{name}", json={"plan": plan})
    return account


async def _call(site: Site, key: str, model: str = OPENAI_MODEL, **extra: Any) -> None:
    async with site.world.openai(key) as client:
        await client.chat.completions.create(model=model, max_tokens=5, messages=HELLO, **extra)


async def _friend_key(site: Site, account: Account, limits: dict[str, float]) -> str:
    client = site.world.gateway.client
    created = await client.post("/api/user/friend-key", headers=account.auth)
    assert created.status_code == 201, created.text
    rows = [{"modelId": model, "limitUsd": usd, "enabled": True} for model, usd in limits.items()]
    saved = await client.put("/api/user/friend-key/limits", headers=account.auth, json={"modelLimits": rows})
    assert saved.status_code == 200, saved.text
    key: str = created.json()["friendKey"]
    return key


async def _clipboard(page: Page) -> str:
    text: str = await page.evaluate("navigator.clipboard.readText()")
    return text


# The Friend Key page


async def test_rotating_the_friend_key_asks_first_and_cancel_keeps_it(site: Site) -> None:
    account = await _user(site, "fkrotate")
    key = await _friend_key(site, account, {OPENAI_MODEL: 1})
    page = await _page(site, account)
    await page.goto("/dashboard/friend-key")
    await page.get_by_role("button", name="Rotate").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_text("Are you sure you want to rotate your Friend Key?")).to_be_visible()
    await screenshot(page, "friend-key-rotate-dialog-desktop")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    await _call(site, key)  # one click did not break the friend's key

    await page.get_by_role("button", name="Rotate").click()
    await dialog.get_by_role("button", name="Rotate Friend Key").click()
    await expect(page.get_by_text("Your new Friend Key (shown once): ")).to_be_visible()
    with pytest.raises(openai.AuthenticationError):
        await _call(site, key)
    await page.context.close()


async def test_the_friend_key_has_its_own_mask_and_shows_hides_and_copies(site: Site) -> None:
    account = await _user(site, "fkshow")
    key = await _friend_key(site, account, {OPENAI_MODEL: 1})
    page = await _page(site, account)
    await page.goto("/dashboard/friend-key")
    shown = page.locator("#friend-key")
    await expect(shown).to_have_text(f"sk-trollllm-friend-****...****{key[-4:]}")
    await page.get_by_role("button", name="Show").click()
    await expect(shown).to_have_text(key)
    await page.get_by_role("button", name="Hide").click()
    await expect(shown).to_have_text(f"sk-trollllm-friend-****...****{key[-4:]}")
    await expect(page.get_by_role("button", name="Show")).to_be_visible()
    await page.get_by_role("button", name="Copy", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text("Friend Key copied")
    assert await _clipboard(page) == key
    await page.context.close()


async def test_each_limit_bar_says_its_percentage(site: Site) -> None:
    account = await _user(site, "fkpercent")
    key = await _friend_key(site, account, {OPENAI_MODEL: 1, ANTHROPIC_MODEL: 2})
    await _call(site, key)
    page = await _page(site, account)
    await page.goto("/dashboard/friend-key")
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=OPENAI_MODEL, exact=True))
    bar = row.get_by_role("progressbar")
    share = await bar.get_attribute("aria-valuetext") or ""
    assert share.endswith(" %") and float(share[:-2]) > 0
    await expect(row.locator(".bar-percent")).to_have_text(share)
    idle = page.get_by_role("row").filter(has=page.get_by_role("cell", name=ANTHROPIC_MODEL, exact=True))
    await expect(idle.locator(".bar-percent")).to_have_text("0 %")
    await page.context.close()


async def test_a_limit_below_one_requests_hold_is_flagged_with_the_minimum_useful_limit(site: Site) -> None:
    account = await _user(site, "fkminimum")
    key = await _friend_key(site, account, {OPENAI_MODEL: 0.05, ANTHROPIC_MODEL: 1})
    page = await _page(site, account)
    await page.goto("/dashboard/friend-key")
    low = page.get_by_role("row").filter(has=page.get_by_role("cell", name=OPENAI_MODEL, exact=True))
    await expect(low.get_by_text(f"Minimum useful: {SMALLEST_HOLD}")).to_be_visible()
    await expect(low.get_by_role("note")).to_contain_text("Below one request's hold")
    enough = page.get_by_role("row").filter(has=page.get_by_role("cell", name=ANTHROPIC_MODEL, exact=True))
    await expect(enough.get_by_text(f"Minimum useful: {SMALLEST_HOLD}")).to_be_visible()
    await expect(enough.get_by_role("note")).to_have_count(0)
    # What the page says is what the gate does: a request leaving the output to the model never fits.
    async with site.world.openai(key) as client:
        with pytest.raises(openai.APIStatusError) as refused:
            await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
    assert refused.value.status_code == 402
    assert "friend_key_model_limit_exceeded" in refused.value.response.text
    await screenshot(page, "friend-key-desktop")
    await page.context.close()


async def test_a_free_plan_owner_is_told_the_friend_key_will_be_refused(site: Site) -> None:
    account = await _user(site, "fkfree", plan=None)
    key = await _friend_key(site, account, {OPENAI_MODEL: 1})
    page = await _page(site, account)
    await page.goto("/dashboard/friend-key")
    notice = page.get_by_role("note").filter(has_text="free plan")
    await expect(notice).to_contain_text("every request with your Friend Key is refused")
    await expect(notice.get_by_role("link", name="See the plans and upgrade")).to_be_visible()
    async with site.world.openai(key) as client:
        with pytest.raises(openai.PermissionDeniedError, match="Friend Key owner must upgrade plan"):
            await client.chat.completions.create(model=OPENAI_MODEL, max_tokens=5, messages=HELLO)
    paid = await _user(site, "fkpaid")
    await _friend_key(site, paid, {OPENAI_MODEL: 1})
    other = await _page(site, paid)
    await other.goto("/dashboard/friend-key")
    await expect(other.get_by_text("every request with your Friend Key is refused")).to_have_count(0)
    await page.context.close()
    await other.context.close()


async def test_refused_friend_key_attempts_are_in_its_activity_with_their_reason(site: Site) -> None:
    account = await _user(site, "fkrefused")
    key = await _friend_key(site, account, {OPENAI_MODEL: 1})
    await _call(site, key)
    with pytest.raises(openai.APIStatusError, match="not enabled for your Friend Key"):
        await _call(site, key, model=ANTHROPIC_MODEL)
    for phone in (False, True):
        page = await _page(site, account, phone=phone)
        await page.goto("/dashboard/friend-key")
        activity = page.get_by_role("region", name="Recent activity")
        refused = activity.get_by_role("row").filter(has_text=ANTHROPIC_MODEL)
        await expect(refused).to_contain_text("402")
        await expect(refused).to_contain_text("Refused: friend_key_model_not_allowed")
        served = activity.get_by_role("row").filter(has_text=OPENAI_MODEL)
        await expect(served).to_contain_text("200")
        await _no_table_overflows(page)
        if phone:
            await screenshot(page, "friend-key-phone")
        await page.context.close()


# The dashboard


async def test_a_free_user_sees_the_upgrade_path_instead_of_examples_that_would_403(site: Site) -> None:
    account = await _user(site, "dashfree", plan=None)
    page = await _page(site, account)
    await page.goto("/dashboard")
    start = page.get_by_role("region", name="Your first call")
    await expect(start.get_by_text("Your plan has no API access yet")).to_be_visible()
    await expect(start.get_by_role("link", name="See the plans and upgrade")).to_be_visible()
    await expect(start.locator("pre")).to_have_count(0)
    await expect(page.get_by_text("curl ")).to_have_count(0)
    await screenshot(page, "dashboard-free-desktop")
    await page.context.close()


async def test_an_admin_gets_a_link_to_the_admin_pages_not_the_free_plan_notice(site: Site) -> None:
    page = await _page(site, site.world.admin)
    await page.goto("/dashboard")
    await expect(page.get_by_text("You are on the free plan")).to_have_count(0)
    notice = page.get_by_role("note").filter(has_text="administrator")
    await notice.get_by_role("link", name="Open the admin overview").click()
    await expect(page).to_have_url(f"{site.world.base_url}/admin")
    await page.context.close()


async def test_the_spend_line_is_a_step_per_day_not_a_ramp(site: Site) -> None:
    account = await _user(site, "dashsteps")
    await _call(site, account.api_key)
    page = await _page(site, account)
    await page.goto("/dashboard")
    points = await page.locator("svg.usage-chart.wide polyline.spend-line").get_attribute("points") or ""
    pairs = [tuple(map(float, point.split(","))) for point in points.split()]
    assert len(pairs) == 60, "two points a day: the day's start and end at the day's spend"
    for start, end in zip(pairs[::2], pairs[1::2], strict=True):
        assert start[1] == end[1], "flat across the day"
    assert pairs[-1][1] < pairs[-3][1], "today, the day with spend, is higher than yesterday"
    await page.context.close()


async def test_show_becomes_hide_while_the_key_is_revealed(site: Site) -> None:
    account = await _user(site, "dashhide")
    page = await _page(site, account)
    await page.goto("/dashboard")
    shown = page.locator("#api-key")
    masked = await shown.text_content()
    await page.get_by_role("button", name="Show").click()
    await expect(shown).to_have_text(account.api_key)
    await page.get_by_role("button", name="Hide").click()
    await expect(shown).to_have_text(masked or "")
    await expect(page.get_by_role("button", name="Show")).to_be_enabled()
    await page.context.close()


async def test_each_first_call_example_has_a_copy_button_and_the_docs_are_linked(site: Site) -> None:
    account = await _user(site, "dashcopy")
    page = await _page(site, account)
    await page.goto("/dashboard")
    start = page.get_by_role("region", name="Your first call")
    await start.get_by_role("button", name="Copy the curl example").click()
    await expect(page.get_by_role("status")).to_have_text("Example copied")
    copied = await _clipboard(page)
    assert copied.startswith(f"curl {site.world.base_url}/v1/chat/completions")
    assert f'"model": "{ANTHROPIC_MODEL}"' in copied, "the first enabled model, by id"
    await start.get_by_role("button", name="Copy the Python, Anthropic SDK example").click()
    assert "from anthropic import Anthropic" in await _clipboard(page)
    await start.get_by_role("link", name="API documentation").click()
    await expect(page).to_have_url(f"{site.world.base_url}/docs")
    await page.context.close()


# The usage view


async def _usage_user(site: Site, name: str) -> Account:
    """Two OpenAI calls and one Anthropic call on the API key, one OpenAI call on a Friend Key."""
    account = await _user(site, name)
    await _call(site, account.api_key)
    await _call(site, account.api_key)
    await _call(site, account.api_key, model=ANTHROPIC_MODEL)
    friend = await _friend_key(site, account, {OPENAI_MODEL: 1})
    await _call(site, friend)
    return account


async def test_usage_stacks_spend_by_model_with_totals_and_each_bar_links_to_its_history(site: Site) -> None:
    account = await _usage_user(site, "usagemodel")
    page = await _page(site, account)
    await page.goto("/dashboard/usage")
    await expect(page.get_by_role("link", name="Last 7 days")).to_have_attribute("aria-current", "page")
    totals = page.get_by_label("Totals of the range")
    await expect(totals).to_contain_text("Requests4")
    spend = page.get_by_role("group", name="Spend per day, stacked by model").first
    segments = spend.get_by_role("link")
    await expect(segments).to_have_count(2)  # today's bar: one segment per model
    table = page.get_by_role("table")
    await expect(table.get_by_role("row").filter(has_text=OPENAI_MODEL)).to_contain_text("3")
    await screenshot(page, "usage-desktop")

    segment = spend.get_by_role("link", name=f"{OPENAI_MODEL}, 2026-01-15: ")
    await segment.click()
    await expect(page.get_by_role("heading", name="Request History")).to_be_visible()
    query = parse_qs(urlsplit(page.url).query)
    assert query == {"from": ["2026-01-15"], "to": ["2026-01-15"], "model": [OPENAI_MODEL]}
    await expect(page.get_by_label("Totals of the filtered requests")).to_contain_text("Requests3")
    await page.context.close()


async def test_usage_by_key_separates_the_api_key_from_the_friend_key(site: Site) -> None:
    account = await _usage_user(site, "usagekey")
    page = await _page(site, account)
    await page.goto("/dashboard/usage?range=24h")
    await page.get_by_role("link", name="By key").click()
    await expect(page.get_by_role("link", name="Last 24 hours")).to_have_attribute("aria-current", "page")
    table = page.get_by_role("table")
    await expect(table.get_by_role("row").filter(has_text="API key")).to_contain_text("3")
    friend_row = table.get_by_role("row").filter(has_text="Friend Key")
    await expect(friend_row).to_contain_text("1")
    await friend_row.get_by_role("link", name="Friend Key").click()
    query = parse_qs(urlsplit(page.url).query)
    assert query["key"] == ["friend"] and query["from"][0].startswith("2026-01-14T13:00:00")
    rows = page.get_by_role("table").get_by_role("row")
    await expect(rows).to_have_count(2)  # the header and the Friend Key request
    await page.context.close()


async def test_a_custom_range_longer_than_92_days_is_refused_naming_it(site: Site) -> None:
    account = await _user(site, "usagecustom")
    page = await _page(site, account)
    await page.goto("/dashboard/usage")
    await page.get_by_label("From", exact=True).fill("2025-01-01")
    await page.get_by_label("To", exact=True).fill("2026-01-15")
    await page.get_by_role("button", name="Show these days").click()
    await expect(page.get_by_role("alert")).to_have_text("A custom range is at most 92 days")
    await page.get_by_label("From", exact=True).fill("2026-01-10")
    await page.get_by_role("button", name="Show these days").click()
    await expect(page.get_by_text("2026-01-10 – 2026-01-15")).to_be_visible()
    await expect(page.get_by_role("heading", name="No requests in this range")).to_be_visible()
    await page.context.close()


async def test_the_usage_view_fits_a_phone_with_readable_labels(site: Site) -> None:
    account = await _usage_user(site, "usagephone")
    page = await _page(site, account, phone=True)
    await page.goto("/dashboard/usage?range=30d")
    chart = page.locator("svg.usage-chart.stacked.narrow").first
    await expect(chart).to_be_visible()
    await expect(page.locator("svg.usage-chart.stacked.wide").first).to_be_hidden()
    heights = await chart.locator("text.tick").evaluate_all(
        "(labels) => labels.map((label) => label.getBoundingClientRect().height)"
    )
    assert heights and min(heights) >= 10, f"tick labels of {min(heights):.1f} px"
    await _no_table_overflows(page)
    await screenshot(page, "usage-phone")
    await page.context.close()


# /docs


async def test_the_docs_start_with_a_quick_start_and_document_the_v1_endpoints(site: Site) -> None:
    account = await _user(site, "docsreader")
    page = await _page(site, account)
    await page.goto("/dashboard")
    await page.get_by_role("link", name="API docs").click()
    # Swagger UI builds the page from its bundle and the OpenAPI document: seconds on a loaded machine.
    await expect(page.get_by_role("heading", name="Quick start")).to_be_visible(timeout=30_000)
    for path in ("/v1/chat/completions", "/v1/messages", "/v1/responses/{response_id}", "/v1/embeddings"):
        await expect(page.get_by_text(path, exact=True).first).to_be_visible()
    await screenshot(page, "docs-desktop", full_page=False)
    await page.context.close()
