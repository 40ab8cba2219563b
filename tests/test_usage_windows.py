"""SPEC §5 usage windows: held at admission into every window of the owner, settled to the real figure,
never passed under concurrency; a full window is a 429 `usage_window_exceeded` in the endpoint's format."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from plan_helpers import burst, edit_plan, user_row
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World
from sqlalchemy import func, select

from trollllm.billing.tables import Hold, UsageWindowBucket
from trollllm.clock import ManualClock
from trollllm.money import Money
from trollllm.usage.tables import RequestLog

# 4,000 output tokens at $25 / MTok: $0.10 each, so nine fit in a $1.00 window and a tenth does not.
BIG = {
    "model": OPENAI_MODEL,
    "max_tokens": 4000,
    "messages": [{"role": "user", "content": "[mock reply_tokens=4000] hello"}],
}


async def charged_total(world: World) -> Money:
    async with world.state.sessions() as session:
        total = await session.scalar(select(func.coalesce(func.sum(RequestLog.credits_cost_nanos), 0)))
    return Money(int(total or 0))


async def open_window_holds(world: World) -> tuple[int, int, int]:
    async with world.state.sessions() as session:
        holds = await session.scalar(select(func.count()).select_from(Hold))
        held = await session.execute(
            select(
                func.coalesce(func.sum(UsageWindowBucket.held_nanos), 0),
                func.coalesce(func.sum(UsageWindowBucket.held_tokens), 0),
            )
        )
    nanos, tokens = held.one()
    return int(holds or 0), int(nanos), int(tokens)


async def test_a_5h_window_of_one_dollar_is_never_passed_under_200_concurrent_requests(
    any_world: World,
) -> None:
    world = any_world
    await edit_plan(
        world, "dev", windows=[{"window": "5h", "usdLimit": 1.00}, {"window": "7d", "usdLimit": 50}]
    )
    replies = await burst([world.base_url], world.user.api_key, 200, BIG)
    statuses = [reply.status for reply in replies]
    assert set(statuses) == {200, 429}, statuses
    assert 1 <= statuses.count(200) <= 9
    refused = orjson.loads(next(reply for reply in replies if reply.status == 429).body)["error"]
    assert refused["type"] == "usage_window_exceeded" and refused["window"] == "5h"
    total = await charged_total(world)
    assert Money.ZERO < total <= Money.from_usd("1.00")
    assert await open_window_holds(world) == (0, 0, 0)  # every hold settled out of its buckets
    billing = (await world.gateway.client.get("/api/user/billing", headers=world.user.auth)).json()
    five_hours = next(window for window in billing["windows"] if window["window"] == "5h")
    assert Money.from_usd(five_hours["usdUsed"]) == total and five_hours["usdLimit"] == 1.0


async def test_a_full_7d_window_refuses_with_room_in_the_5h_one_and_holds_nothing_in_either(
    any_world: World,
) -> None:
    world = any_world
    await edit_plan(
        world, "dev", windows=[{"window": "5h", "usdLimit": 1.00}, {"window": "7d", "usdLimit": 0.15}]
    )
    headers = {"Authorization": f"Bearer {world.user.api_key}"}
    client = world.gateway.client
    assert (await client.post("/v1/chat/completions", headers=headers, json=BIG)).status_code == 200
    refusal = await client.post("/v1/chat/completions", headers=headers, json=BIG)
    assert refusal.status_code == 429 and refusal.json()["error"]["window"] == "7d"
    assert await open_window_holds(world) == (0, 0, 0)  # the refused hold left no trace in the 5h bucket
    async with world.state.sessions() as session:
        used = select(UsageWindowBucket.span_s, UsageWindowBucket.used_nanos)
        buckets = [tuple(row) for row in (await session.execute(used)).all()]
    total = (await charged_total(world)).nanos
    assert sorted(buckets) == [(3600, total), (86400, total)]  # the admitted request, in each span


async def test_a_full_window_is_a_429_with_the_window_its_reset_and_retry_after_in_each_format(
    world: World, clock: ManualClock
) -> None:
    clock.set(datetime.fromisoformat("2026-01-15T12:30:00+00:00"))
    await edit_plan(world, "dev", windows=[{"window": "5h", "usdLimit": 0.15}])
    client = world.gateway.client
    first = await client.post(
        "/v1/chat/completions", headers={"Authorization": f"Bearer {world.user.api_key}"}, json=BIG
    )
    assert first.status_code == 200, first.text
    clock.set(datetime.fromisoformat("2026-01-15T13:10:00+00:00"))
    openai_refusal = await client.post(
        "/v1/chat/completions", headers={"Authorization": f"Bearer {world.user.api_key}"}, json=BIG
    )
    anthropic_refusal = await client.post(
        "/v1/messages",
        headers={"x-api-key": world.user.api_key, "anthropic-version": "2023-06-01"},
        json={**BIG, "model": ANTHROPIC_MODEL},
    )
    # The 12:00 hour leaves the 5-hour window at 18:00 (counted by whole hours, never less than 5 h).
    resets = "2026-01-15T18:00:00+00:00"
    for response, error in (
        (openai_refusal, openai_refusal.json()["error"]),
        (anthropic_refusal, anthropic_refusal.json()["error"]),
    ):
        assert response.status_code == 429
        assert (error["type"], error["window"], error["resetsAt"]) == ("usage_window_exceeded", "5h", resets)
        assert response.headers["retry-after"] == str(
            int((datetime.fromisoformat(resets) - clock.now()).total_seconds())
        )
    assert anthropic_refusal.json()["type"] == "error"
    assert "code" in openai_refusal.json()["error"]


async def test_the_window_admits_again_once_its_oldest_hour_has_left_it(
    world: World, clock: ManualClock
) -> None:
    await edit_plan(world, "dev", windows=[{"window": "5h", "usdLimit": 0.15}])
    headers = {"Authorization": f"Bearer {world.user.api_key}"}
    client = world.gateway.client
    assert (await client.post("/v1/chat/completions", headers=headers, json=BIG)).status_code == 200
    refusal = await client.post("/v1/chat/completions", headers=headers, json=BIG)
    assert refusal.status_code == 429
    resets = datetime.fromisoformat(refusal.json()["error"]["resetsAt"])
    clock.set(resets)
    assert (await client.post("/v1/chat/completions", headers=headers, json=BIG)).status_code == 200


async def test_a_window_still_refuses_one_second_before_its_reset(world: World, clock: ManualClock) -> None:
    await edit_plan(world, "dev", windows=[{"window": "24h", "tokenLimit": 5000}])
    headers = {"Authorization": f"Bearer {world.user.api_key}"}
    client = world.gateway.client
    assert (await client.post("/v1/chat/completions", headers=headers, json=BIG)).status_code == 200
    refusal = await client.post("/v1/chat/completions", headers=headers, json=BIG)
    assert refusal.status_code == 429 and refusal.json()["error"]["window"] == "24h"
    resets = datetime.fromisoformat(refusal.json()["error"]["resetsAt"])
    clock.set(resets.fromtimestamp(resets.timestamp() - 1, resets.tzinfo))
    assert (await client.post("/v1/chat/completions", headers=headers, json=BIG)).status_code == 429


async def test_billing_shows_each_window_with_its_limits_use_and_reset(
    world: World, clock: ManualClock
) -> None:
    await edit_plan(
        world, "dev", windows=[{"window": "5h", "usdLimit": 2}, {"window": "30d", "tokenLimit": 1_000_000}]
    )
    client = world.gateway.client
    empty = (await client.get("/api/user/billing", headers=world.user.auth)).json()["windows"]
    assert empty == [
        {"window": "5h", "usdLimit": 2.0, "usdUsed": 0.0, "tokenLimit": None, "tokensUsed": 0,
         "resetsAt": None},
        {"window": "30d", "usdLimit": None, "usdUsed": 0.0, "tokenLimit": 1_000_000, "tokensUsed": 0,
         "resetsAt": None},
    ]  # fmt: skip
    reply = await client.post(
        "/v1/chat/completions", headers={"Authorization": f"Bearer {world.user.api_key}"}, json=BIG
    )
    assert reply.status_code == 200
    cost = Money.from_usd(reply.headers["x-trollllm-cost-usd"])
    used = (await user_row(world)).tokens_used
    five, thirty = (await client.get("/api/user/billing", headers=world.user.auth)).json()["windows"]
    assert Money.from_usd(five["usdUsed"]) == cost and thirty["tokensUsed"] == used
    assert five["resetsAt"] == "2026-01-15T18:00:00Z" and thirty["resetsAt"] == "2026-02-15T00:00:00Z"


def _plan_body(**changes: Any) -> dict[str, Any]:
    return {
        "apiAccess": True,
        "rpm": 10,
        "creditGrantUsd": 1,
        "monthlyTokenLimit": None,
        "byokRpm": 0,
        **changes,
    }
