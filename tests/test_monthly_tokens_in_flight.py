"""SPEC §5: the monthly token limit counts requests in flight — a request is admitted only while the tokens
used plus the maximum of every request in flight stay below the limit (issue 29 item 3)."""

from __future__ import annotations

import orjson
from plan_helpers import burst, edit_plan, set_user, user_row
from proxy_world import OPENAI_MODEL, World

BIG = {
    "model": OPENAI_MODEL,
    "max_tokens": 4000,
    "messages": [{"role": "user", "content": "[mock reply_tokens=4000 delay_ms=200] hello"}],
}


async def test_six_concurrent_requests_with_83_tokens_of_room_admit_only_one(any_world: World) -> None:
    world = any_world
    await edit_plan(world, "dev", monthlyTokenLimit=100_000)
    await set_user(world, monthly_tokens_used=100_000 - 83)
    replies = await burst([world.base_url], world.user.api_key, 6, BIG)
    assert sorted(reply.status for reply in replies) == [200, 429, 429, 429, 429, 429]
    refused = orjson.loads(next(reply for reply in replies if reply.status == 429).body)["error"]
    assert refused["type"] == "monthly_token_limit_exceeded"
    user = await user_row(world)
    assert user.monthly_tokens_held == 0
    assert user.monthly_tokens_used - (100_000 - 83) < 4_100  # one request's tokens, not six


async def test_under_200_concurrent_requests_only_the_last_admitted_request_passes_the_limit(
    any_world: World,
) -> None:
    world = any_world
    await edit_plan(world, "dev", monthlyTokenLimit=20_000)
    replies = await burst([world.base_url], world.user.api_key, 200, BIG)
    admitted = [reply for reply in replies if reply.status == 200]
    assert 1 <= len(admitted) <= 5  # 20,000 tokens of room, each request holds ~4,050
    user = await user_row(world)
    assert user.monthly_tokens_held == 0
    assert user.monthly_tokens_used < 20_000 + 4_100  # at most the last admitted request passes it
