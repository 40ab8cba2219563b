"""SPEC §8 dashboard: the 30-day chart of requests and spend per UTC day, and its script-free table."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import AppHarness
from helpers import register_user
from playwright.async_api import Browser, expect
from proxy_world import OPENAI_MODEL, World
from sqlalchemy import select

from trollllm.accounts.sessions import SESSION_COOKIE
from trollllm.accounts.tables import User
from trollllm.db import transaction
from trollllm.money import Money
from trollllm.usage.tables import RequestLog

HELLO = [{"role": "user", "content": "Say hello to the chart please"}]
TODAY = "2026-01-15"  # the test clock's day (ManualClock starts at 2026-01-15 12:00 UTC)


async def _signed_in_user_id(gateway: AppHarness, name: str) -> int:
    account = await register_user(gateway, name)
    gateway.client.cookies.set(SESSION_COOKIE, account.token)
    async with gateway.state.sessions() as session:
        user_id = await session.scalar(select(User.id).where(User.username == name))
    assert user_id is not None
    return user_id


async def _log(gateway: AppHarness, user_id: int, when: datetime, cost_nanos: int) -> None:
    values: dict[str, Any] = {"model": "gpt-test", "status_code": 200, "is_success": True}
    async with transaction(gateway.state.sessions) as session:
        row = RequestLog(request_id=f"req_{uuid.uuid4().hex}", user_id=user_id, created_at=when, **values)
        row.credits_cost_nanos = cost_nanos
        session.add(row)


def _table_rows(html: str) -> dict[str, tuple[str, str]]:
    """The "View as table" rows: day → (requests, spend)."""
    table = html.split("<summary>View as table</summary>", 1)[1].split("</table>", 1)[0]
    cells = re.findall(r"<tr><td>([0-9-]+)</td><td class=\"num\">([^<]*)</td>\s*<td[^>]*>([^<]*)</td>", table)
    return {day: (requests, spend) for day, requests, spend in cells}


@pytest.mark.asyncio(loop_scope="session")  # the loop of the run's chromium
async def test_chart_table_shows_todays_request_count_and_exact_spend_without_javascript(
    page_world: World, browser: Browser
) -> None:
    spent = Money(0)
    async with page_world.openai() as client:
        for _ in range(3):
            raw = await client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=HELLO)
            spent += Money.from_usd(raw.headers["x-trollllm-cost-usd"])

    context = await browser.new_context(base_url=page_world.base_url, java_script_enabled=False)
    await context.add_cookies(
        [{"name": SESSION_COOKIE, "value": page_world.user.token, "url": page_world.base_url}]
    )
    page = await context.new_page()
    await page.goto("/dashboard")
    await page.get_by_text("View as table").click()
    today = page.get_by_role("row").filter(has=page.get_by_role("cell", name=TODAY, exact=True))
    await expect(today.get_by_role("cell")).to_have_text([TODAY, "3", spent.format_spend()])
    await expect(today.get_by_role("cell").nth(2)).to_have_attribute("title", spent.format_exact())
    await context.close()


async def test_chart_svg_has_one_bar_per_day_for_30_days(gateway: AppHarness) -> None:
    await _signed_in_user_id(gateway, "alice")

    html = (await gateway.client.get("/dashboard")).text

    for variant in ("wide", "narrow"):  # one drawing for desktops, one for phones
        svg = html.split(f'<svg class="usage-chart {variant}"', 1)[1].split("</svg>", 1)[0]
        assert svg.count('<rect class="bar"') == 30
        assert "<title>2025-12-17: " in svg and f"<title>{TODAY}: " in svg, "the 30 days end today"
        assert f'aria-labelledby="usage-chart-title-{variant} usage-chart-desc-{variant}"' in html
    assert "Requests and spend per day, last 30 days</title>" in svg


async def test_empty_account_chart_shows_zeros_not_an_error(gateway: AppHarness) -> None:
    await _signed_in_user_id(gateway, "alice")

    response = await gateway.client.get("/dashboard")

    assert response.status_code == 200
    rows = _table_rows(response.text)
    assert len(rows) == 30
    assert set(rows.values()) == {("0", "$0")}
    assert "No requests in the last 30 days" in response.text


async def test_chart_counts_utc_days_of_the_last_30_days_of_this_user_only(any_gateway: AppHarness) -> None:
    bob = await _signed_in_user_id(any_gateway, "bob")
    await _log(any_gateway, bob, datetime(2026, 1, 15, 1, 0, tzinfo=UTC), 1_000_000)
    alice = await _signed_in_user_id(any_gateway, "alice")
    await _log(any_gateway, alice, datetime(2025, 12, 16, 23, 59, 59, tzinfo=UTC), 1_000)  # day 31: out
    await _log(any_gateway, alice, datetime(2025, 12, 17, 0, 0, tzinfo=UTC), 17_500)
    await _log(any_gateway, alice, datetime(2026, 1, 14, 23, 59, 59, tzinfo=UTC), 1)
    await _log(any_gateway, alice, datetime(2026, 1, 15, 0, 0, tzinfo=UTC), 2_000)
    await _log(any_gateway, alice, datetime(2026, 1, 15, 11, 0, tzinfo=UTC), 3_000)

    rows = _table_rows((await any_gateway.client.get("/dashboard")).text)

    assert "2025-12-16" not in rows
    assert rows["2025-12-17"] == ("1", "$0.000018")
    assert rows["2026-01-14"] == ("1", "$0.000001")
    assert rows[TODAY] == ("2", "$0.000005"), "bob's request is not alice's"


def _bearer(gateway: AppHarness) -> dict[str, str]:
    token = next(cookie.value for cookie in gateway.client.cookies.jar if cookie.name == SESSION_COOKIE)
    return {"authorization": f"Bearer {token}"}


async def test_chart_days_are_the_users_time_zone_days(gateway: AppHarness) -> None:
    alice = await _signed_in_user_id(gateway, "alice")
    # 23:30 UTC on the 14th is already the 15th in Tokyo (UTC+9); 14:59 UTC on the 15th is still the 15th.
    await _log(gateway, alice, datetime(2026, 1, 14, 23, 30, tzinfo=UTC), 1_000)
    await _log(gateway, alice, datetime(2026, 1, 14, 14, 30, tzinfo=UTC), 2_000)
    response = await gateway.client.put(
        "/api/user/settings", json={"timeZone": "Asia/Tokyo"}, headers=_bearer(gateway)
    )
    assert response.json() == {"timeZone": "Asia/Tokyo"}

    html = (await gateway.client.get("/dashboard")).text
    rows = _table_rows(html)

    assert rows[TODAY] == ("1", "$0.000001")
    assert rows["2026-01-14"] == ("1", "$0.000002")
    assert "Day (Asia/Tokyo)" in html


async def test_settings_refuse_a_name_that_is_not_a_time_zone(gateway: AppHarness) -> None:
    await _signed_in_user_id(gateway, "alice")
    assert (await gateway.client.get("/api/user/settings")).json() == {"timeZone": "UTC"}

    response = await gateway.client.put(
        "/api/user/settings", json={"timeZone": "Mars/Olympus"}, headers=_bearer(gateway)
    )

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "timeZone"
