"""A client that stops reading a stream is charged its full usage (issue 29, item 1; SPEC §4).

The stream is larger than every socket buffer between the gateway and the client (the client's receive
buffer is pinned small), so the relay really waits on the client. Each exit path is tested: the client
reads again after the hold's lifetime has passed (ManualClock), leaves, or stays silent past the write
deadline (`TROLLLLM_CLIENT_WRITE_TIMEOUT_S`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from conftest import make_settings
from proxy_world import World, build_world, serve
from sqlalchemy import func, select

from trollllm.billing.renewal import renew_live_holds
from trollllm.billing.sweeper import release_expired_holds
from trollllm.billing.tables import Hold, LedgerEntry
from trollllm.clock import ManualClock
from trollllm.mockupstream import MockUpstream
from trollllm.mockupstream.controls import count_input_tokens
from trollllm.settings import HOLD_RENEWAL_INTERVAL, HOLD_TTL
from trollllm.usage.tables import RequestLog

LONG_MODEL = "gpt-long"
REPLY_TOKENS = 64_000  # about 11 MB of SSE: far more than the socket buffers below
_CLIENT_RECEIVE_BUFFER = 16 * 1024
# $5 / $25 per MTok (proxy_world.PRICES): nano-dollars per token.
_INPUT_NANOS, _OUTPUT_NANOS = 5_000, 25_000


@contextlib.asynccontextmanager
async def _world(
    tmp_path: Path, clock: ManualClock, database_url: str, **settings: Any
) -> AsyncIterator[World]:
    async with (
        MockUpstream() as mock,
        serve(make_settings(tmp_path, database_url, **settings), clock) as served,
    ):
        world = await build_world(served[0], served[1], mock)
        await world.admin_call(
            "POST",
            "/api/admin/models",
            json={
                "modelId": LONG_MODEL,
                "provider": "openai",
                "upstreamModel": LONG_MODEL,
                "maxOutputTokens": 100_000,
                "inputPricePerMTok": 5,
                "outputPricePerMTok": 25,
            },
        )
        yield world


def _slow_reader(world: World) -> httpx.AsyncClient:
    """A client whose socket takes at most a few KiB before the gateway's writes wait on it."""
    transport = httpx.AsyncHTTPTransport(
        socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, _CLIENT_RECEIVE_BUFFER)]
    )
    return httpx.AsyncClient(
        base_url=world.base_url,
        transport=transport,
        timeout=60,
        headers={"authorization": f"Bearer {world.user.api_key}"},
    )


_BODY = {
    "model": LONG_MODEL,
    "messages": [
        {"role": "user", "content": f"a very long answer please [mock reply_tokens={REPLY_TOKENS}]"}
    ],
    "max_tokens": REPLY_TOKENS,
    "stream": True,
}
_FULL_COST_NANOS = count_input_tokens(_BODY) * _INPUT_NANOS + REPLY_TOKENS * _OUTPUT_NANOS


async def _log_row(world: World, *, wait_s: float = 30.0) -> RequestLog:
    """The request's log row, once it has settled."""
    for _ in range(int(wait_s / 0.05)):
        async with world.state.sessions() as session:
            row = await session.scalar(select(RequestLog).where(RequestLog.error_type.is_(None)))
        if row is not None:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError("the request never settled")


async def _settled_rows(world: World) -> int:
    async with world.state.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(RequestLog)) or 0)


async def _charged_nanos(world: World, request_id: str) -> int:
    async with world.state.sessions() as session:
        total = await session.scalar(
            select(func.sum(LedgerEntry.credits_delta_nanos)).where(LedgerEntry.request_id == request_id)
        )
        open_holds = await session.scalar(select(func.count()).select_from(Hold))
    assert open_holds == 0
    return -int(total or 0)


async def _stall_past_the_hold_lifetime(world: World, clock: ManualClock) -> None:
    """Let the relay fill every buffer, then let more than the hold's lifetime pass (its renewals on
    schedule) and run the sweeper: the request is still in flight, and its hold must still be there."""
    await asyncio.sleep(0.5)
    assert await _settled_rows(world) == 0, "the stream fitted in the buffers: the relay never waited"
    elapsed = timedelta()
    while elapsed <= HOLD_TTL:
        clock.advance(HOLD_RENEWAL_INTERVAL.total_seconds())
        elapsed += HOLD_RENEWAL_INTERVAL
        await renew_live_holds(world.state.sessions, world.state.in_flight, clock.now())
    assert await release_expired_holds(world.state.sessions, clock.now()) == 0
    assert await _settled_rows(world) == 0


async def test_a_client_that_stops_reading_past_the_hold_lifetime_then_reads_gets_and_pays_it_all(
    tmp_path: Path, clock: ManualClock, database_url: str
) -> None:
    async with _world(tmp_path, clock, database_url) as world, _slow_reader(world) as client:
        async with client.stream("POST", "/v1/chat/completions", json=_BODY) as response:
            assert response.status_code == 200
            chunks = response.aiter_raw()
            received = [await anext(chunks)]
            await _stall_past_the_hold_lifetime(world, clock)
            received.extend([chunk async for chunk in chunks])
        row = await _log_row(world)
        charged = await _charged_nanos(world, row.request_id)
    assert b"".join(received).rstrip().endswith(b"data: [DONE]")
    assert (row.status_code, row.output_tokens) == (200, REPLY_TOKENS)
    assert charged == row.credits_cost_nanos == _FULL_COST_NANOS


async def test_a_client_that_stops_reading_past_the_hold_lifetime_then_leaves_is_charged_the_full_usage(
    tmp_path: Path, clock: ManualClock, embedded_database_url: str
) -> None:
    async with _world(tmp_path, clock, embedded_database_url) as world:
        async with (
            _slow_reader(world) as client,
            client.stream("POST", "/v1/chat/completions", json=_BODY) as response,
        ):
            chunks = response.aiter_raw()  # kept: a dropped iterator closes the response when collected
            await anext(chunks)
            await _stall_past_the_hold_lifetime(world, clock)
        row = await _log_row(world)  # the client is gone: the rest was read from upstream for its usage
        charged = await _charged_nanos(world, row.request_id)
    assert row.output_tokens == REPLY_TOKENS
    assert charged == row.credits_cost_nanos == _FULL_COST_NANOS


async def test_a_client_silent_past_the_write_deadline_counts_as_gone_and_is_charged_the_full_usage(
    tmp_path: Path, clock: ManualClock, embedded_database_url: str
) -> None:
    async with _world(tmp_path, clock, embedded_database_url, client_write_timeout_s=0.3) as world:
        async with (
            _slow_reader(world) as client,
            client.stream("POST", "/v1/chat/completions", json=_BODY) as response,
        ):
            chunks = response.aiter_raw()
            received = [await anext(chunks)]
            # Settled while the client still has not read a byte more: the write deadline, not the client,
            # ended its part of the stream.
            row = await _log_row(world)
            with contextlib.suppress(httpx.HTTPError):  # the gateway cut the connection
                received.extend([chunk async for chunk in chunks])
        charged = await _charged_nanos(world, row.request_id)
    assert b"[DONE]" not in b"".join(received)  # what the client got is a cut stream
    assert (row.status_code, row.output_tokens) == (200, REPLY_TOKENS)
    assert charged == row.credits_cost_nanos == _FULL_COST_NANOS


async def test_a_client_reading_slowly_but_steadily_past_the_write_deadline_gets_the_whole_stream(
    tmp_path: Path, clock: ManualClock, embedded_database_url: str
) -> None:
    # The deadline bounds each write, not the stream: the client pauses 0.3 s after every ~1 MB (the
    # relay's writes wait on it meanwhile), about 3 s in all, under a 2 s write deadline.
    async with _world(tmp_path, clock, embedded_database_url, client_write_timeout_s=2.0) as world:
        received = bytearray()
        pauses = 0
        async with (
            _slow_reader(world) as client,
            client.stream("POST", "/v1/chat/completions", json=_BODY) as response,
        ):
            async for chunk in response.aiter_raw():
                received += chunk
                if len(received) > (pauses + 1) * 1_000_000:
                    pauses += 1
                    await asyncio.sleep(0.3)
        row = await _log_row(world)
    assert pauses >= 8  # the stream did outlast the deadline
    assert received.rstrip().endswith(b"data: [DONE]")
    assert (row.status_code, row.output_tokens) == (200, REPLY_TOKENS)
