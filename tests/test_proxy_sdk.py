"""The proxy with the official SDKs (SPEC §6): answers pass through, every request is charged exactly."""

from __future__ import annotations

from typing import Any

import httpx
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World

from trollllm.mockupstream import DEFAULT_REPLY_TOKENS, count_input_tokens
from trollllm.money import Money, Prices, TokenUsage, cost_of, parse_price_per_mtok

PRICES = Prices(
    parse_price_per_mtok(5),
    parse_price_per_mtok(25),
    parse_price_per_mtok("6.25"),
    parse_price_per_mtok("0.5"),
)
DEV_GRANT = Money.from_usd(225)
HELLO = [{"role": "user", "content": "Say hello to the test suite please"}]


def expected_cost(
    body: dict[str, Any], output: int = DEFAULT_REPLY_TOKENS, hit: int = 0, write: int = 0
) -> Money:
    usage = TokenUsage(count_input_tokens(body), output, cache_write_tokens=write, cache_hit_tokens=hit)
    return cost_of(usage, PRICES)


async def me(world: World) -> dict[str, Any]:
    response = await world.gateway.client.get("/api/user/me", headers=world.user.auth)
    body: dict[str, Any] = response.json()
    return body


async def test_openai_sdk_non_streaming_answer_is_charged_exactly(world: World) -> None:
    async with world.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=HELLO)
    completion = raw.parse()
    cost = expected_cost({"messages": HELLO})
    assert completion.model == OPENAI_MODEL
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.completion_tokens == DEFAULT_REPLY_TOKENS
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == cost
    assert Money.from_usd(raw.headers["x-trollllm-balance-usd"]) == DEV_GRANT - cost
    assert Money.from_usd((await me(world))["credits"]) == DEV_GRANT - cost


async def test_upstream_receives_the_upstream_model_and_a_bounded_max_tokens(world: World) -> None:
    async with world.openai() as client:
        await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
    sent = world.mock.requests[-1].body
    assert sent is not None
    assert sent["model"] == f"{OPENAI_MODEL}-upstream"
    assert sent["max_tokens"] == 4096


async def test_unknown_body_fields_are_forwarded(world: World) -> None:
    async with world.openai() as client:
        await client.chat.completions.create(
            model=OPENAI_MODEL, messages=HELLO, temperature=0.3, extra_body={"vendor_flag": {"x": 1}}
        )
    sent = world.mock.requests[-1].body
    assert sent is not None
    assert sent["vendor_flag"] == {"x": 1}
    assert sent["temperature"] == 0.3


async def test_openai_stream_arrives_chunk_by_chunk_and_is_charged(world: World) -> None:
    async with world.openai() as client:
        stream = await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO, stream=True)
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert all(chunk.model == OPENAI_MODEL for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)  # the client did not ask for usage
    sent = world.mock.requests[-1].body
    assert sent is not None and sent["stream_options"] == {"include_usage": True}
    assert Money.from_usd((await me(world))["credits"]) == DEV_GRANT - expected_cost({"messages": HELLO})


async def test_openai_stream_keeps_the_usage_chunk_when_the_client_asks(world: World) -> None:
    async with world.openai() as client:
        stream = await client.chat.completions.create(
            model=OPENAI_MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == DEFAULT_REPLY_TOKENS


async def test_openai_cached_tokens_are_billed_as_hits_not_input(world: World) -> None:
    messages = [{"role": "user", "content": "cached question [mock cached=1000]"}]
    async with world.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=messages)
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == expected_cost(
        {"messages": messages}, hit=1000
    )


async def test_anthropic_sdk_non_streaming_answer_is_charged_exactly(world: World) -> None:
    async with world.anthropic() as client:
        raw = await client.messages.with_raw_response.create(
            model=ANTHROPIC_MODEL, max_tokens=100, messages=HELLO
        )
    message = await raw.parse()
    assert message.model == ANTHROPIC_MODEL
    assert message.content[0].type == "text"
    cost = expected_cost({"messages": HELLO})
    assert Money.from_usd(raw.headers["x-trollllm-cost-usd"]) == cost
    assert Money.from_usd((await me(world))["credits"]) == DEV_GRANT - cost


async def test_anthropic_stream_with_cache_tokens_is_charged_exactly(world: World) -> None:
    messages = [{"role": "user", "content": "stream it [mock cached=300 cache_write=200]"}]
    client = world.anthropic()
    async with (
        client,
        client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=100, messages=messages) as stream,
    ):
        final = await stream.get_final_message()
    assert final.model == ANTHROPIC_MODEL
    assert final.usage.cache_read_input_tokens == 300
    cost = expected_cost({"messages": messages}, hit=300, write=200)
    assert Money.from_usd((await me(world))["credits"]) == DEV_GRANT - cost


async def test_anthropic_endpoint_accepts_the_key_as_bearer(world: World) -> None:
    response = await world.gateway.client.post(
        "/v1/messages",
        headers={"Authorization": f"Bearer {world.user.api_key}"},
        json={"model": ANTHROPIC_MODEL, "max_tokens": 10, "messages": HELLO},
    )
    assert response.status_code == 200


async def test_models_list_shows_enabled_models(world: World) -> None:
    async with world.openai() as client:
        models = [model.id async for model in client.models.list()]
    assert models == [ANTHROPIC_MODEL, OPENAI_MODEL]


async def test_request_log_row_is_visible_by_its_request_id(world: World) -> None:
    async with world.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=HELLO)
    request_id = raw.headers["x-request-id"]
    row = await world.gateway.client.get(f"/api/user/requests/{request_id}", headers=world.user.auth)
    assert row.status_code == 200
    assert row.json()["inputTokens"] == count_input_tokens({"messages": HELLO})
    assert Money.from_usd(row.json()["creditsCost"]) == Money.from_usd(raw.headers["x-trollllm-cost-usd"])


async def test_stream_cost_is_known_from_the_request_log(world: World) -> None:
    async with (
        httpx.AsyncClient(base_url=world.base_url) as client,
        client.stream(
            "POST",
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {world.user.api_key}"},
            json={"model": OPENAI_MODEL, "messages": HELLO, "stream": True},
        ) as response,
    ):
        request_id = response.headers["x-request-id"]
        _ = [line async for line in response.aiter_lines()]
    row = await world.gateway.client.get(f"/api/user/requests/{request_id}", headers=world.user.auth)
    assert Money.from_usd(row.json()["creditsCost"]) == expected_cost({"messages": HELLO})
