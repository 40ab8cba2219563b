"""The hold bounds every output the upstream may bill (SPEC §4 Charging): `n` choices, the larger limit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from helpers import register_user
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World

BALANCE_USD = 0.01  # 400 output tokens at $25 / MTok


async def _small_account_call(world: World, name: str, body: dict[str, Any]) -> int:
    account = await register_user(world.gateway, name)
    await world.admin_call("PATCH", f"/api/admin/users/{name}", json={"plan": "pro-troll"})
    await world.admin_call(
        "POST",
        f"/api/admin/users/{name}/credits",
        json={"amountUsd": BALANCE_USD, "balance": "credits", "reason": "test"},
    )
    messages = [{"role": "user", "content": "hi"}]
    response = await world.gateway.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {account.api_key}"},
        json={"model": OPENAI_MODEL, "messages": messages, **body},
    )
    return response.status_code


async def test_n_choices_are_each_held(any_world: World) -> None:
    assert await _small_account_call(any_world, "one", {"max_tokens": 100}) == 200
    assert await _small_account_call(any_world, "eight", {"max_tokens": 100, "n": 8}) == 402


async def test_both_limits_are_held_by_the_larger(any_world: World) -> None:
    body = {"max_completion_tokens": 10, "max_tokens": 1000}
    assert await _small_account_call(any_world, "both", body) == 402


async def test_bad_n_is_refused_naming_it(any_world: World) -> None:
    response = await any_world.gateway.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {any_world.user.api_key}"},
        json={"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "hi"}], "n": 0},
    )
    assert response.status_code == 400 and "`n`" in response.text


async def _overage_call(world: World, name: str, balance_usd: float) -> tuple[int, int]:
    """A request whose cache writes cost far more than its hold: (charged nano-USD, credits left)."""
    from sqlalchemy import select

    from trollllm.accounts.tables import User

    account = await register_user(world.gateway, name)
    await world.admin_call("PATCH", f"/api/admin/users/{name}", json={"plan": "pro-troll"})
    await world.admin_call(
        "POST",
        f"/api/admin/users/{name}/credits",
        json={"amountUsd": balance_usd, "balance": "credits", "reason": "test"},
    )
    messages = [{"role": "user", "content": "hi [mock cache_write=100000 reply_tokens=1]"}]
    response = await world.gateway.client.post(
        "/v1/messages",
        headers={"x-api-key": account.api_key},
        json={"model": ANTHROPIC_MODEL, "messages": messages, "max_tokens": 1},
    )
    assert response.status_code == 200, response.text
    async with world.state.sessions() as session:
        user = await session.scalar(select(User).where(User.username == name))
        assert user is not None and user.held_nanos == 0
        return int(Decimal(response.headers["x-trollllm-cost-usd"]) * 10**9), user.credits_nanos


async def test_overage_is_charged_up_to_the_free_balance(any_world: World) -> None:
    # 100,000 cache-write tokens at $6.25 / MTok = $0.625, far past the hold of a 1-token request.
    charged, left = await _overage_call(any_world, "rich", 1.0)
    assert charged >= 625_000_000 and left == 1_000_000_000 - charged
    charged, left = await _overage_call(any_world, "poor", 0.01)
    assert (charged, left) == (10_000_000, 0)
