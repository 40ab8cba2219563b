"""Streams cut off mid-way (SPEC §4): charged for the usage the upstream reported, else the tokens
delivered; never more than the hold, and exactly once."""

from __future__ import annotations

import asyncio

import aiohttp
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World
from sqlalchemy import select

from trollllm.billing.tables import Hold, LedgerEntry
from trollllm.mockupstream import count_input_tokens
from trollllm.money import Money, Prices, TokenUsage, cost_of, parse_price_per_mtok
from trollllm.usage.tables import RequestLog

PRICES = Prices(parse_price_per_mtok(5), parse_price_per_mtok(25))


async def _log_of(world: World, request_id: str) -> RequestLog:
    for _ in range(200):  # the settlement of a stream whose client left finishes in the background
        async with world.state.sessions() as session:
            row = await session.scalar(select(RequestLog).where(RequestLog.request_id == request_id))
        if row is not None:
            return row
        await asyncio.sleep(0.02)
    raise AssertionError("the request was never settled")


async def test_client_gone_mid_stream_is_charged_the_usage_the_upstream_reported(world: World) -> None:
    messages = [{"role": "user", "content": "slow reply [mock reply_tokens=30 chunk_delay_ms=20]"}]
    body = {"model": OPENAI_MODEL, "messages": messages, "stream": True, "max_tokens": 100}
    headers = {"Authorization": f"Bearer {world.user.api_key}"}
    async with aiohttp.ClientSession(world.base_url) as client:
        response = await client.post("/v1/chat/completions", json=body, headers=headers)
        request_id = response.headers["x-request-id"]
        await response.content.readany()  # the first chunk arrived; now the client goes away
        response.close()
    row = await _log_of(world, request_id)
    expected = cost_of(TokenUsage(count_input_tokens({"messages": messages}), 30), PRICES)
    assert row.output_tokens == 30
    assert Money(row.credits_cost_nanos) == expected
    async with world.state.sessions() as session:
        charges = (
            await session.scalars(select(LedgerEntry).where(LedgerEntry.request_id == request_id))
        ).all()
        assert len(charges) == 1
        assert await session.scalar(select(Hold).where(Hold.request_id == request_id)) is None


async def test_upstream_broken_mid_stream_is_charged_the_tokens_delivered(world: World) -> None:
    messages = [{"role": "user", "content": "cut me off [mock drop_after=6 no_usage=1]"}]
    body = {"model": ANTHROPIC_MODEL, "messages": messages, "stream": True, "max_tokens": 100}
    headers = {"x-api-key": world.user.api_key}
    async with (
        aiohttp.ClientSession(world.base_url) as client,
        client.post("/v1/messages", json=body, headers=headers) as reply,
    ):
        request_id = reply.headers["x-request-id"]
        text = (await reply.read()).decode()
    assert "event: error" in text  # the status line was already 200: the error travels in the stream
    row = await _log_of(world, request_id)
    assert row.status_code == 502 and not row.is_success
    assert 0 < row.output_tokens < 16
    assert row.credits_cost_nanos > 0
    assert row.credits_cost_nanos <= cost_of(TokenUsage(100_000, 100), PRICES).nanos
