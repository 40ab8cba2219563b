"""Translated requests and money (SPEC §4), on SQLite and PostgreSQL: billed exactly at the model's own
prices through the same hold and settlement, logged with net input and cache tokens apart, and a cut
translated stream charged the usage the upstream reported, else the tokens delivered."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World
from sqlalchemy import func, select

from trollllm.accounts.tables import User
from trollllm.billing.tables import Hold, LedgerEntry
from trollllm.mockupstream import DEFAULT_REPLY_TOKENS, TOOL_CALL_TOKENS, count_input_tokens
from trollllm.mockupstream.hidden_billing import anthropic_hidden_tokens, openai_hidden_tokens
from trollllm.money import Money, Prices, TokenUsage, cost_of, parse_price_per_mtok
from trollllm.usage.tables import RequestLog

PRICES = Prices(
    parse_price_per_mtok(5),
    parse_price_per_mtok(25),
    parse_price_per_mtok("6.25"),
    parse_price_per_mtok("0.5"),
)
DEV_GRANT = Money.from_usd(225)
TOOL = {"name": "weather", "input_schema": {"type": "object", "properties": {}}}


def _expected(world: World, output: int, hit: int = 0, write: int = 0) -> TokenUsage:
    request = world.mock.requests[-1]
    sent = request.body
    assert sent is not None
    # What the mock bills beyond the words: Anthropic's tool-use system prompt, as Anthropic does.
    hidden = (
        anthropic_hidden_tokens(sent) if request.path.endswith("/messages") else openai_hidden_tokens(sent)
    )
    return TokenUsage(
        count_input_tokens(sent) + hidden, output, cache_write_tokens=write, cache_hit_tokens=hit
    )


async def _log_of(world: World, request_id: str) -> RequestLog:
    for _ in range(200):  # the settlement of a stream whose client left finishes in the background
        async with world.state.sessions() as session:
            row = await session.scalar(select(RequestLog).where(RequestLog.request_id == request_id))
        if row is not None:
            return row
        await asyncio.sleep(0.02)
    raise AssertionError("the request was never settled")


async def _charges(world: World, request_id: str) -> int:
    async with world.state.sessions() as session:
        count = await session.scalar(
            select(func.count()).where(LedgerEntry.request_id == request_id, LedgerEntry.kind == "charge")
        )
        assert await session.scalar(select(Hold).where(Hold.request_id == request_id)) is None
    return int(count or 0)


async def test_translated_requests_are_billed_exactly_and_the_ledger_reconciles(any_world: World) -> None:
    world = any_world
    expected: list[TokenUsage] = []
    async with world.openai() as client:
        await client.chat.completions.create(
            model=ANTHROPIC_MODEL,
            messages=[{"role": "user", "content": "cache [mock cached=300 cache_write=200]"}],
        )
        expected.append(_expected(world, DEFAULT_REPLY_TOKENS, hit=300, write=200))
        stream = await client.chat.completions.create(
            model=ANTHROPIC_MODEL,
            messages=[{"role": "user", "content": "tools [mock tool_calls=3]"}],
            tools=[{"type": "function", "function": {"name": "weather"}}],
            stream=True,
        )
        [chunk async for chunk in stream]
        expected.append(_expected(world, DEFAULT_REPLY_TOKENS + 3 * TOOL_CALL_TOKENS))
    async with world.anthropic() as anthropic_client:
        await anthropic_client.messages.create(
            model=OPENAI_MODEL,
            max_tokens=100,
            messages=[{"role": "user", "content": "cache [mock cached=100]"}],
        )
        expected.append(_expected(world, DEFAULT_REPLY_TOKENS, hit=100))
        async with anthropic_client.messages.stream(
            model=OPENAI_MODEL,
            max_tokens=100,
            messages=[{"role": "user", "content": "tools [mock tool_calls=1]"}],
            tools=[TOOL],
        ) as anthropic_stream:
            await anthropic_stream.get_final_message()
        expected.append(_expected(world, DEFAULT_REPLY_TOKENS + TOOL_CALL_TOKENS))

    async with world.state.sessions() as session:
        logs = (await session.scalars(select(RequestLog).order_by(RequestLog.id))).all()
        user = await session.scalar(select(User).where(User.username == world.user.username))
        assert user is not None
        ledger = await session.scalar(
            select(func.sum(LedgerEntry.credits_delta_nanos)).where(LedgerEntry.user_id == user.id)
        )
        assert await session.scalar(select(func.count()).select_from(Hold)) == 0
    logged = [
        TokenUsage(row.input_tokens, row.output_tokens, row.cache_write_tokens, row.cache_hit_tokens)
        for row in logs
    ]
    assert logged == expected
    assert [row.model for row in logs] == [ANTHROPIC_MODEL, ANTHROPIC_MODEL, OPENAI_MODEL, OPENAI_MODEL]
    costs = [cost_of(usage, PRICES) for usage in expected]
    assert [Money(row.credits_cost_nanos) for row in logs] == costs
    total = sum((cost for cost in costs), Money.ZERO)
    assert Money(user.credits_nanos) == DEV_GRANT - total
    assert Money(int(ledger or 0)) == Money(user.credits_nanos)


async def test_client_gone_mid_translated_stream_is_charged_the_usage_the_upstream_reported(
    any_world: World,
) -> None:
    world = any_world
    messages = [{"role": "user", "content": "slow reply [mock reply_tokens=30 chunk_delay_ms=20]"}]
    body = {"model": ANTHROPIC_MODEL, "messages": messages, "stream": True, "max_tokens": 100}
    headers = {"Authorization": f"Bearer {world.user.api_key}"}
    async with aiohttp.ClientSession(world.base_url) as client:
        response = await client.post("/v1/chat/completions", json=body, headers=headers)
        request_id = response.headers["x-request-id"]
        await response.content.readany()  # the first chunk arrived; now the client goes away
        response.close()
    row = await _log_of(world, request_id)
    usage = _expected(world, 30)
    assert (row.input_tokens, row.output_tokens) == (usage.input_tokens, 30)
    assert Money(row.credits_cost_nanos) == cost_of(usage, PRICES)
    assert await _charges(world, request_id) == 1


async def test_upstream_broken_mid_translated_stream_is_charged_the_tokens_delivered(
    any_world: World,
) -> None:
    world = any_world
    messages = [{"role": "user", "content": "cut me off [mock drop_after=6 no_usage=1]"}]
    body = {"model": OPENAI_MODEL, "messages": messages, "stream": True, "max_tokens": 100}
    async with (
        aiohttp.ClientSession(world.base_url) as client,
        client.post("/v1/messages", json=body, headers={"x-api-key": world.user.api_key}) as reply,
    ):
        request_id = reply.headers["x-request-id"]
        text = (await reply.read()).decode()
    assert text.startswith("event: message_start\n")
    assert text.count("event: content_block_delta") == 5  # the role chunk, then 5 tokens, then the cut
    assert text.endswith("\n\n") and "event: error" in text and "message_stop" not in text
    row = await _log_of(world, request_id)
    assert row.status_code == 502 and not row.is_success
    assert (row.input_tokens, row.output_tokens) == (0, 5)
    assert Money(row.credits_cost_nanos) == cost_of(TokenUsage(output_tokens=5), PRICES)
    assert await _charges(world, request_id) == 1


async def test_a_cut_anthropic_upstream_bills_the_input_it_announced_and_the_tokens_delivered(
    any_world: World,
) -> None:
    world = any_world
    messages = [{"role": "user", "content": "cut me off [mock drop_after=6]"}]
    body = {"model": ANTHROPIC_MODEL, "messages": messages, "stream": True, "max_tokens": 100}
    headers = {"Authorization": f"Bearer {world.user.api_key}"}
    async with (
        aiohttp.ClientSession(world.base_url) as client,
        client.post("/v1/chat/completions", json=body, headers=headers) as reply,
    ):
        request_id = reply.headers["x-request-id"]
        text = (await reply.read()).decode()
    events = [json.loads(line[6:]) for line in text.split("\n") if line.startswith("data: ")]
    assert [e["choices"][0]["delta"].get("content") for e in events[1:-1]] == ["This", " is", " a"]
    assert events[-1]["error"]["type"] == "upstream_error"  # in the OpenAI shape, inside the stream
    row = await _log_of(world, request_id)
    usage = _expected(world, 3)
    assert (row.input_tokens, row.output_tokens) == (usage.input_tokens, 3)
    assert Money(row.credits_cost_nanos) == cost_of(usage, PRICES)
