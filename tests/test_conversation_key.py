"""Conversations stay on one factory key while it is healthy (SPEC §6): prompt caches belong to one
upstream account, so a conversation spread over keys would pay cache writes instead of cache hits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_settings
from proxy_world import OPENAI_MODEL, World, build_world, serve
from responses_world import PRICES, input_tokens

from trollllm.clock import ManualClock
from trollllm.mockupstream import DEFAULT_REPLY_TOKENS, MockUpstream
from trollllm.money import Money, TokenUsage, cost_of

KEYS = ("fk-openai-one", "fk-openai-two", "fk-openai-three")  # three upstream accounts


@pytest.fixture
async def cached_world(
    tmp_path: Path, clock: ManualClock, embedded_database_url: str
) -> AsyncIterator[World]:
    """The world with a mock that keeps one prompt cache per API key, and three factory keys."""
    settings = make_settings(tmp_path, embedded_database_url)
    async with MockUpstream(prompt_cache=True) as mock, serve(settings, clock) as served:
        world = await build_world(served[0], served[1], mock)
        for name, key in (("openai-2", KEYS[1]), ("openai-3", KEYS[2])):
            await world.admin_call(
                "POST",
                "/api/admin/factory-keys",
                json={"name": name, "provider": "openai", "baseUrl": mock.url, "apiKey": key},
            )
        yield world


def _key_of(world: World) -> str:
    return str(world.mock.requests[-1].headers["Authorization"]).removeprefix("Bearer ")


async def test_twenty_turns_by_previous_response_id_hit_the_cache_after_the_first(
    cached_world: World,
) -> None:
    world = cached_world
    previous: str | None = None
    keys = []
    async with world.openai() as client:
        for turn in range(20):
            raw = await client.responses.with_raw_response.create(
                model=OPENAI_MODEL, input=f"Turn {turn}: go on please", previous_response_id=previous
            )
            response = raw.parse()
            previous = response.id
            keys.append(_key_of(world))
            assert response.usage is not None
            cached = response.usage.input_tokens_details.cached_tokens
            assert (cached > 0) == (turn > 0), f"turn {turn}: {cached} cached tokens"
            sent = world.mock.requests[-1].body
            uncached = input_tokens(sent) - cached
            cost = cost_of(TokenUsage(uncached, DEFAULT_REPLY_TOKENS, cache_hit_tokens=cached), PRICES)
            assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == cost
    assert len(set(keys)) == 1


@pytest.mark.parametrize(
    ("hint", "extra"),
    [
        ("prompt_cache_key", {"prompt_cache_key": "my-session"}),
        ("session-id header", {"extra_headers": {"session-id": "codex-session-1"}}),
    ],
)
async def test_a_conversation_named_by_a_hint_stays_on_its_key(
    cached_world: World, hint: str, extra: dict[str, Any]
) -> None:
    world = cached_world
    items: list[Any] = []
    keys = []
    async with world.openai() as client:
        for turn in range(6):
            items.append({"role": "user", "content": f"Turn {turn}: and then?"})
            response = await client.responses.create(model=OPENAI_MODEL, input=items, store=False, **extra)
            items.extend(item.model_dump(exclude_none=True) for item in response.output)
            keys.append(_key_of(world))
            assert response.usage is not None
            assert (response.usage.input_tokens_details.cached_tokens > 0) == (turn > 0), hint
    assert len(set(keys)) == 1, hint


async def test_a_conversation_moves_on_when_its_key_fails(cached_world: World) -> None:
    world = cached_world
    async with world.openai() as client:
        first = await client.responses.create(model=OPENAI_MODEL, input="Start here")
        used = _key_of(world)
        world.mock.set_key_status(used, 503)
        second = await client.responses.create(
            model=OPENAI_MODEL, input="Go on", previous_response_id=first.id
        )
    assert second.output_text
    assert _key_of(world) != used
