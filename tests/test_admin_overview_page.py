"""`/admin`: the period's totals equal the requests made, the period links mark the selected one, the chart
has a table fallback, top models and users; periods move with the clock."""

from __future__ import annotations

import re

from admin_page_helpers import signed_in
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World

from trollllm.clock import ManualClock


def _card(html: str, title: str) -> str:
    match = re.search(rf"<h2>{title}</h2><p class=\"value\"[^>]*>(.*?)</p>", html)
    assert match, title
    return re.sub(r"<[^>]+>", "", match.group(1))


async def _requests(world: World) -> None:
    async with world.openai() as client:
        for _ in range(3):
            await client.chat.completions.create(
                model=OPENAI_MODEL, messages=[{"role": "user", "content": "hi"}]
            )
    async with world.anthropic() as anthropic:
        await anthropic.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )


async def test_the_overview_counts_the_requests_of_the_period(world: World) -> None:
    await _requests(world)
    async with signed_in(world.gateway, world.admin.username) as client:
        page = await client.get("/admin", params={"period": "1h"})
    html = page.text
    assert page.status_code == 200
    assert _card(html, "Requests") == "4"
    assert _card(html, "Error rate") == "0.0 %"
    assert html.count("Last hour") >= 5  # every card names the period
    assert '<a class="btn current" href="/admin?period=1h" aria-current="page"' in html
    assert f"<td>{OPENAI_MODEL}</td>" in html and '<a href="/users/alice">alice</a>' in html
    assert "View as table" in html and "<svg" in html


async def test_an_hour_later_the_last_hour_is_empty_and_the_last_24_hours_are_not(
    any_world: World, clock: ManualClock
) -> None:
    await _requests(any_world)
    clock.advance(2 * 3600)
    async with signed_in(any_world.gateway, any_world.admin.username) as client:
        hour = await client.get("/admin", params={"period": "1h"})
        day = await client.get("/admin", params={"period": "24h"})
        week = await client.get("/admin", params={"period": "7d"})
        ever = await client.get("/admin", params={"period": "all"})
    assert _card(hour.text, "Requests") == "0" and "No requests in this period" in hour.text
    for page in (day, week, ever):
        assert _card(page.text, "Requests") == "4"


async def test_an_unknown_period_shows_the_last_24_hours(world: World) -> None:
    async with signed_in(world.gateway, world.admin.username) as client:
        page = await client.get("/admin", params={"period": "<script>"})
    assert page.status_code == 200
    assert 'href="/admin?period=24h" aria-current="page"' in page.text
    assert "<script>" not in page.text.split("</head>")[1]
