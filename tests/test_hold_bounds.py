"""The hold bounds every output the upstream may bill (SPEC §4 Charging): `n` choices, the larger limit."""

from __future__ import annotations

from typing import Any

from helpers import register_user
from proxy_world import OPENAI_MODEL, World

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
