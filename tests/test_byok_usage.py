"""Token tracking (issue 15, part 3; SPEC §7): `GET /api/user/usage` splits each model's requests between
the platform's keys and the user's own, counts only platform tokens against the limit; the dashboard's
token widget shows the month with a coloured bar and warns at 90 %."""

from __future__ import annotations

import re
from typing import Any

from byok_helpers import HELLO, OWN_OPENAI_KEY, point_provider_at, save_own_key
from plan_helpers import edit_plan, set_user
from proxy_world import OPENAI_MODEL, World

from trollllm.money import Money


async def _usage(world: World) -> dict[str, Any]:
    response = await world.gateway.client.get("/api/user/usage", headers=world.user.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_usage_splits_a_model_between_platform_and_own_key_requests(any_world: World) -> None:
    await point_provider_at(any_world, "openai", any_world.mock.url)
    async with any_world.openai() as client:
        platform = await client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=HELLO)
        await save_own_key(any_world, any_world.user, "openai", OWN_OPENAI_KEY)
        own = await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
        await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
    platform_usage = platform.parse().usage
    assert platform_usage is not None and own.usage is not None
    usage = await _usage(any_world)
    (row,) = usage["byModel"]
    assert (row["modelId"], row["requests"], row["platformRequests"], row["byokRequests"]) == (
        OPENAI_MODEL,
        3,
        1,
        2,
    )
    assert row["byokTokens"] == 2 * own.usage.total_tokens
    assert row["platformTokens"] == platform_usage.total_tokens
    assert row["totalTokens"] == row["byokTokens"] + row["platformTokens"]
    assert Money.from_usd(row["spendUsd"]) == Money.from_usd(platform.headers["x-trollllm-cost-usd"])
    assert usage["tokensUsed"] == platform_usage.total_tokens  # own-key tokens are not counted
    assert usage["usingOwnKeys"] is True and usage["ownKeyProviders"] == ["openai"]


async def test_usage_shows_the_limit_remaining_and_percentage(world: World) -> None:
    await edit_plan(world, "dev", monthlyTokenLimit=1000)
    await set_user(world, monthly_tokens_used=250)
    usage = await _usage(world)
    assert (usage["tokensUsed"], usage["tokenLimit"], usage["remaining"], usage["percentage"]) == (
        250,
        1000,
        750,
        25.0,
    )
    assert usage["plan"] == "dev" and usage["usingOwnKeys"] is False and usage["ownKeyProviders"] == []


async def _dashboard(world: World) -> str:
    response = await world.gateway.client.get("/dashboard", headers=world.user.auth)
    assert response.status_code == 200, response.text
    return response.text


async def test_the_dashboard_widget_shows_used_limit_and_remaining_on_a_green_bar(world: World) -> None:
    await edit_plan(world, "dev", monthlyTokenLimit=1000)
    await set_user(world, monthly_tokens_used=250)
    html = await _dashboard(world)
    text = re.sub(r"<[^>]+>", "", html)  # the visible text (counts sit in spans with their exact title)
    assert "250 / 1.0K tokens used (25.0 %)" in text and "750 remaining" in text
    assert 'title="1,000 tokens"' in html
    assert 'class="progress green" role="progressbar"' in html
    assert "of this month's tokens" not in html


async def test_the_dashboard_widget_warns_at_90_percent_on_a_red_bar(world: World) -> None:
    await edit_plan(world, "dev", monthlyTokenLimit=1000)
    await set_user(world, monthly_tokens_used=900)
    html = await _dashboard(world)
    assert 'class="progress red" role="progressbar"' in html
    assert "You have used 90.0 % of this month's tokens." in html


async def test_the_dashboard_widget_is_yellow_below_90_percent(world: World) -> None:
    await edit_plan(world, "dev", monthlyTokenLimit=1000)
    await set_user(world, monthly_tokens_used=899)
    html = await _dashboard(world)
    assert 'class="progress yellow" role="progressbar"' in html
    assert "of this month's tokens." not in html


async def test_the_dashboard_widget_says_when_own_keys_are_used(world: World) -> None:
    assert "Using own API keys" not in await _dashboard(world)
    await save_own_key(world, world.user, "openai", OWN_OPENAI_KEY)
    assert "Using own API keys" in await _dashboard(world)
