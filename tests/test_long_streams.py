"""Many long streams open at once through one gateway process all complete and are each billed exactly
(issue 26). Not timed: what is checked is that nothing is dropped, cut or mischarged.

The gateway is a real `trollllm serve` process on SQLite (seeded through a gateway run in process first);
the streams come from the official OpenAI SDK in this process, the tokens from the mock upstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from conftest import make_settings
from instances import Instance, instance_env, start_instance, wait_ready
from proxy_world import OPENAI_MODEL, build_world, serve
from sqlalchemy import func, select

from trollllm.accounts.tables import User
from trollllm.billing.tables import Hold, LedgerEntry
from trollllm.clock import SystemClock
from trollllm.db import create_sessionmaker, create_test_engine
from trollllm.mockupstream import MockUpstream, count_input_tokens
from trollllm.money import Money, Prices, TokenUsage, cost_of, parse_price_per_mtok
from trollllm.usage.tables import RequestLog

STREAMS = 200
TOKENS = 60
PRICES = Prices(parse_price_per_mtok(5), parse_price_per_mtok(25))  # the proxy world's


def content_of(index: int) -> str:
    """Stream `index`'s prompt: 60 tokens, 20-50 ms apart (its own gap), so they overlap for seconds."""
    return f"long stream {index} [mock reply_tokens={TOKENS} chunk_delay_ms={20 + index % 31}]"


@pytest.fixture
def stopped_after() -> Iterator[list[Instance]]:
    started: list[Instance] = []
    yield started
    for instance in started:
        instance.stop()


async def read_stream(client: openai.AsyncOpenAI, index: int) -> tuple[str, str, int]:
    """One stream read to its end: (request id, the text, completion tokens of its usage chunk)."""
    text: list[str] = []
    completion_tokens = -1
    async with client.chat.completions.with_streaming_response.create(
        model=OPENAI_MODEL,
        messages=[{"role": "user", "content": content_of(index)}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=TOKENS + 20,
    ) as response:
        request_id = response.headers["x-request-id"]
        async for chunk in await response.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                completion_tokens = chunk.usage.completion_tokens
    return request_id, "".join(text), completion_tokens


async def test_200_long_streams_through_one_gateway_process_all_complete_and_are_billed_exactly(
    tmp_path: Path, embedded_database_url: str, stopped_after: list[Instance]
) -> None:
    async with MockUpstream() as mock:
        async with serve(make_settings(tmp_path, embedded_database_url), SystemClock()) as (harness, url):
            world = await build_world(harness, url, mock)
        env = instance_env(tmp_path, embedded_database_url, None, "unused")
        gateway = start_instance(tmp_path / "gateway", env)
        stopped_after.append(gateway)
        await asyncio.to_thread(wait_ready, [gateway])
        engine = create_test_engine(embedded_database_url)
        sessions = create_sessionmaker(engine)
        try:
            async with sessions() as session:
                before = await session.scalar(select(User).where(User.username == world.user.username))
                assert before is not None
                balance_before = Money(before.credits_nanos + before.ref_credits_nanos)
            client = openai.AsyncOpenAI(
                base_url=gateway.base_url + "/v1", api_key=world.user.api_key, max_retries=0, timeout=60
            )
            async with client:
                results = await asyncio.gather(*(read_stream(client, i) for i in range(STREAMS)))
            for request_id, text, completion_tokens in results:
                assert len(text.split()) == TOKENS, request_id
                assert completion_tokens == TOKENS, request_id
            async with sessions() as session:
                rows = {row.request_id: row for row in await session.scalars(select(RequestLog))}
                charges = dict(
                    (
                        await session.execute(
                            select(
                                LedgerEntry.request_id, func.sum(LedgerEntry.credits_delta_nanos)
                            ).group_by(LedgerEntry.request_id)
                        )
                    ).all()
                )
                holds = await session.scalar(select(func.count()).select_from(Hold))
                after = await session.scalar(select(User).where(User.username == world.user.username))
                assert after is not None
                balance_after = Money(after.credits_nanos + after.ref_credits_nanos)
        finally:
            await engine.dispose()
    total = Money.ZERO
    for index, (request_id, _, _) in enumerate(results):
        messages = [{"role": "user", "content": content_of(index)}]
        expected = cost_of(TokenUsage(count_input_tokens({"messages": messages}), TOKENS), PRICES)
        row = rows[request_id]
        assert row.is_success and row.output_tokens == TOKENS, request_id
        assert Money(row.credits_cost_nanos) == expected == Money(-charges[request_id]), request_id
        total += expected
    assert len(rows) == STREAMS
    assert holds == 0
    assert balance_before - balance_after == total
