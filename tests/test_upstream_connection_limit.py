"""The upstream connection limit is per factory key (issue 26): a request whose key has every connection in
use goes to another key with a free one, or queues for a bounded time and then gets 503
`upstream_unavailable`, never an unbounded silent wait; the queue is the `trollllm_upstream_connection_queue`
gauge.

A "slow stream" here is an open streaming reply of the mock (its chunks 5 s apart) that the test has not
released yet: it holds one of its key's connections, deterministically, whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import openai
import orjson
import pytest
from conftest import AppFactory, AppHarness, make_settings
from helpers import Account, make_admin
from proxy_world import OPENAI_MODEL, build_world, serve

from trollllm.clock import ManualClock
from trollllm.errors import UpstreamUnavailable
from trollllm.mockupstream import MockUpstream
from trollllm.telemetry import Telemetry
from trollllm.upstream.pool import UpstreamPool, UpstreamReply

CHAT = "/v1/chat/completions"
KEY_A = "sk-upstream-alpha-0000aaaa"
KEY_B = "sk-upstream-bravo-1111bbbb"
SLOW_STREAM = orjson.dumps(
    {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "[mock chunk_delay_ms=5000 reply_tokens=4] slow"}],
    }
)
QUICK = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "quick"}]})
BOUND_S = 0.2


@asynccontextmanager
async def limited_pool(
    app_factory: AppFactory, database_url: str, *, per_key: int, wait_s: float
) -> AsyncIterator[tuple[AppHarness, UpstreamPool, Telemetry]]:
    harness: AppHarness = await app_factory(
        database_url, upstream_connections_per_key=per_key, upstream_connection_wait_s=wait_s
    )
    state = harness.state
    telemetry = Telemetry()
    pool = UpstreamPool(
        sessions=state.sessions,
        keybox=state.keybox,
        clock=state.clock,
        settings=state.settings,
        telemetry=telemetry,
    )
    await pool.start()
    try:
        yield harness, pool, telemetry
    finally:
        await pool.close()


async def add_key(harness: AppHarness, admin: Account, secret: str, base_url: str) -> int:
    body = {"name": f"key-{secret[-4:]}", "provider": "openai", "baseUrl": base_url, "apiKey": secret}
    response = await harness.client.post("/api/admin/factory-keys", json=body, headers=admin.auth)
    assert response.status_code == 201, response.text
    key_id: int = response.json()["id"]
    return key_id


def queue_depth(telemetry: Telemetry, key_id: int) -> float:
    value = telemetry.registry.get_sample_value(
        "trollllm_upstream_connection_queue", {"factory_key": str(key_id)}
    )
    return value or 0.0


async def open_streams(
    pool: UpstreamPool, count: int, stack: AsyncExitStack, prefer: int | None = None
) -> list[int]:
    """`count` slow streams left open (released when `stack` closes); the key each went to."""
    keys = []
    for _ in range(count):
        reply: UpstreamReply = await pool.send("openai", CHAT, SLOW_STREAM, {}, stream=True, prefer=prefer)
        stack.callback(reply.release)
        assert reply.status == 200
        keys.append(reply.factory_key_id)
    return keys


async def test_a_stream_finding_its_key_full_goes_to_another_key(
    app_factory: AppFactory, embedded_database_url: str, mock: MockUpstream
) -> None:
    async with limited_pool(app_factory, embedded_database_url, per_key=2, wait_s=30) as (harness, pool, _):
        admin = await make_admin(harness)
        a = await add_key(harness, admin, KEY_A, mock.url)
        b = await add_key(harness, admin, KEY_B, mock.url)
        async with AsyncExitStack() as stack:
            started = time.monotonic()
            # The conversation's key is A for all three (sticky): the third finds A's 2 connections busy.
            assert await open_streams(pool, 3, stack, prefer=a) == [a, a, b]
            assert time.monotonic() - started < 5, "the third waited instead of going to B"


async def test_a_full_key_is_passed_over_in_the_turns_too(
    app_factory: AppFactory, embedded_database_url: str, mock: MockUpstream
) -> None:
    async with limited_pool(app_factory, embedded_database_url, per_key=2, wait_s=30) as (harness, pool, _):
        admin = await make_admin(harness)
        a = await add_key(harness, admin, KEY_A, mock.url)
        async with AsyncExitStack() as stack:
            assert await open_streams(pool, 2, stack) == [a, a]
            b = await add_key(harness, admin, KEY_B, mock.url)
            pool.invalidate()
            # Round robin alone would send one of these two to A; A is full, so both go to B.
            assert await open_streams(pool, 2, stack) == [b, b]


async def test_with_every_connection_busy_the_request_gets_503_after_the_bound(
    app_factory: AppFactory, embedded_database_url: str, mock: MockUpstream
) -> None:
    async with limited_pool(app_factory, embedded_database_url, per_key=2, wait_s=BOUND_S) as running:
        harness, pool, telemetry = running
        admin = await make_admin(harness)
        a = await add_key(harness, admin, KEY_A, mock.url)
        async with AsyncExitStack() as stack:
            await open_streams(pool, 2, stack)
            third = asyncio.create_task(pool.send("openai", CHAT, SLOW_STREAM, {}, stream=True))
            while queue_depth(telemetry, a) == 0:
                assert not third.done(), third
                await asyncio.sleep(0.005)
            started = time.monotonic()
            with pytest.raises(UpstreamUnavailable) as raised:
                await third
            assert time.monotonic() - started < BOUND_S + 2
            assert raised.value.headers == {"Retry-After": "1"}
            assert "busy" in raised.value.message
            assert queue_depth(telemetry, a) == 0
            assert len(mock.requests) == 2, "the third request must not reach the upstream"


async def test_a_queued_request_gets_the_first_connection_given_back(
    app_factory: AppFactory, embedded_database_url: str, mock: MockUpstream
) -> None:
    async with limited_pool(app_factory, embedded_database_url, per_key=1, wait_s=30) as running:
        harness, pool, telemetry = running
        admin = await make_admin(harness)
        a = await add_key(harness, admin, KEY_A, mock.url)
        first = await pool.send("openai", CHAT, SLOW_STREAM, {}, stream=True)
        waiting = asyncio.create_task(pool.send("openai", CHAT, QUICK, {}))
        while queue_depth(telemetry, a) != 1:
            await asyncio.sleep(0.005)
        first.release()  # the stream ends early: its connection is closed and its slot given back
        reply = await waiting
        assert reply.status == 200 and orjson.loads(await reply.read())["object"] == "chat.completion"
        assert queue_depth(telemetry, a) == 0
        # Both slots are free again: two quick requests in a row need no wait.
        for _ in range(2):
            again = await asyncio.wait_for(pool.send("openai", CHAT, QUICK, {}), 5)
            await again.read()


async def test_a_request_cancelled_while_queued_leaves_the_queue(
    app_factory: AppFactory, embedded_database_url: str, mock: MockUpstream
) -> None:
    async with limited_pool(app_factory, embedded_database_url, per_key=1, wait_s=30) as running:
        harness, pool, telemetry = running
        admin = await make_admin(harness)
        a = await add_key(harness, admin, KEY_A, mock.url)
        first = await pool.send("openai", CHAT, SLOW_STREAM, {}, stream=True)
        waiting = asyncio.create_task(pool.send("openai", CHAT, QUICK, {}))
        while queue_depth(telemetry, a) != 1:
            await asyncio.sleep(0.005)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert queue_depth(telemetry, a) == 0
        first.release()
        reply = await asyncio.wait_for(pool.send("openai", CHAT, QUICK, {}), 5)
        assert reply.status == 200
        await reply.read()


async def test_the_client_gets_503_upstream_unavailable_in_its_format(
    tmp_path: Path, clock: ManualClock, embedded_database_url: str, mock: MockUpstream
) -> None:
    settings = make_settings(
        tmp_path, embedded_database_url, upstream_connections_per_key=1, upstream_connection_wait_s=BOUND_S
    )
    async with serve(settings, clock) as (harness, base_url):
        world = await build_world(harness, base_url, mock)
        async with world.openai() as client:
            stream = await client.chat.completions.create(
                model=OPENAI_MODEL,
                messages=[{"role": "user", "content": "[mock chunk_delay_ms=400 reply_tokens=1] slow"}],
                stream=True,
            )
            async with stream:
                await anext(aiter(stream))  # the first stream holds the key's one connection
                with pytest.raises(openai.APIStatusError) as raised:
                    await client.chat.completions.create(
                        model=OPENAI_MODEL, messages=[{"role": "user", "content": "hi"}]
                    )
        assert raised.value.status_code == 503
        assert raised.value.response.json()["error"]["type"] == "upstream_unavailable"
        assert raised.value.response.headers["retry-after"] == "1"
