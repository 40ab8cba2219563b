"""`/admin`: the period's totals equal the requests made, the period links mark the selected one, the chart
has a table fallback, top models and users, the errors by type; periods move with the clock."""

from __future__ import annotations

import re

import openai
import pytest
from admin_page_helpers import signed_in
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World

from trollllm.clock import ManualClock
from trollllm.web.render import breakable


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
    assert (
        f'<td class="name">{breakable(OPENAI_MODEL)}</td>' in html
        and '<a href="/users/alice">alice</a>' in html
    )
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


def _previous(html: str, title: str) -> str:
    match = re.search(rf"<h2>{title}</h2>.*?<p class=\"muted small previous\"[^>]*>(.*?)</p>", html, re.S)
    assert match, title
    return match.group(1)


async def test_the_30_day_period_counts_a_week_old_request_and_shows_dated_ticks(
    world: World, clock: ManualClock
) -> None:
    await _requests(world)
    clock.advance(8 * 86_400)
    async with signed_in(world.gateway, world.admin.username) as client:
        week = await client.get("/admin", params={"period": "7d"})
        month = await client.get("/admin", params={"period": "30d"})
    assert _card(week.text, "Requests") == "0"
    assert _card(month.text, "Requests") == "4"
    assert 'href="/admin?period=30d" aria-current="page"' in month.text and "Last 30 days" in month.text
    ticks = re.findall(
        r'<text class="tick" x="[^"]+" y="[^"]+" text-anchor="middle">([^<]+)</text>', month.text
    )
    assert ticks and all(re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}", tick) for tick in ticks), ticks


async def test_the_7_day_chart_ticks_are_dates(world: World) -> None:
    async with signed_in(world.gateway, world.admin.username) as client:
        week = await client.get("/admin", params={"period": "7d"})
    ticks = re.findall(
        r'<text class="tick" x="[^"]+" y="[^"]+" text-anchor="middle">([^<]+)</text>', week.text
    )
    assert ticks and all(re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}", tick) for tick in ticks), ticks


async def test_each_figure_has_the_previous_period_beside_it(world: World, clock: ManualClock) -> None:
    await _requests(world)
    clock.advance(86_400)
    async with world.openai() as client:
        await client.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "hi"}])
    async with signed_in(world.gateway, world.admin.username) as client:
        day = await client.get("/admin", params={"period": "24h"})
        ever = await client.get("/admin", params={"period": "all"})
    assert _card(day.text, "Requests") == "1"
    assert _previous(day.text, "Requests") == "Previous 24 hours: 4"
    assert _previous(day.text, "Error rate") == "Previous 24 hours: 0.0 % · 0 failed"
    assert re.fullmatch(r"Previous 24 hours: \$0\.\d+", _previous(day.text, "Spend"))
    assert "previous" not in ever.text.split("<main")[1].split("series-title")[0], "all time has no previous"


async def test_the_error_rate_counts_refused_requests_by_type(world: World) -> None:
    await _requests(world)
    async with world.openai() as client:
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(
                model="no-such-model", messages=[{"role": "user", "content": "hi"}]
            )
    async with signed_in(world.gateway, world.admin.username) as client:
        page = await client.get("/admin", params={"period": "1h"})
    html = page.text
    assert _card(html, "Error rate") == "20.0 %"
    assert "1 failed or refused" in html
    errors = html.split('id="errors-title"')[1].split("</section>")[0]
    cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", errors)]
    assert cells == ["model_not_found", "404", "Refused", "1", "20.0 %"]
