"""PostgreSQL cut and back (issue 29, item 10): while the database is unreachable a new request gets 503
`database_unavailable` with `Retry-After` in its endpoint's format, before anything is held or sent
upstream; once a write succeeds again the settlement outbox is replayed at once, not at the next
maintenance pass.

The outage is real: the gateway reaches PostgreSQL through a TCP relay that the test cuts (every open
connection closed, new ones refused) and restores.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_settings
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World, build_world, serve
from services import POSTGRES_HOST, POSTGRES_PORT
from sqlalchemy import select

from trollllm.accounts.tables import User
from trollllm.clock import ManualClock
from trollllm.mockupstream import MockUpstream
from trollllm.money import Money

SLOW = [{"role": "user", "content": "take your time [mock delay_ms=700 reply_tokens=12]"}]
HELLO = [{"role": "user", "content": "hello"}]


class CuttableRelay:
    """A TCP relay to PostgreSQL on a port of its own; `cut()` drops every connection and refuses new ones."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        server, self._server = self._server, None
        assert server is not None
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await server.wait_closed()

    async def stop(self) -> None:
        if self._server is not None:
            await self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            target_reader, target_writer = await asyncio.open_connection(POSTGRES_HOST, POSTGRES_PORT)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, target_writer}
        pipes = [
            asyncio.create_task(self._pipe(reader, target_writer)),
            asyncio.create_task(self._pipe(target_reader, writer)),
        ]
        self._tasks.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)
        self._tasks.difference_update(pipes)
        for each in (writer, target_writer):
            each.transport.abort()
            self._writers.discard(each)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


@pytest.fixture
async def relay() -> AsyncIterator[CuttableRelay]:
    relay = CuttableRelay()
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()


@pytest.fixture
async def cut_world(
    tmp_path: Path, clock: ManualClock, postgres_database_url: str, relay: CuttableRelay
) -> AsyncIterator[World]:
    through_relay = postgres_database_url.replace(f":{POSTGRES_PORT}/", f":{relay.port}/")
    assert through_relay != postgres_database_url
    async with MockUpstream() as mock, serve(make_settings(tmp_path, through_relay), clock) as served:
        yield await build_world(served[0], served[1], mock)


async def test_a_new_request_while_the_database_is_unreachable_gets_503_with_retry_after_and_goes_nowhere(
    cut_world: World, relay: CuttableRelay
) -> None:
    world = cut_world
    client = world.gateway.client
    key = world.user.api_key
    await relay.cut()

    chat = await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": OPENAI_MODEL, "messages": HELLO},
    )
    messages = await client.post(
        "/v1/messages",
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        json={"model": ANTHROPIC_MODEL, "max_tokens": 20, "messages": HELLO},
    )
    me = await client.get("/api/user/me", headers=world.user.auth)

    for response in (chat, messages, me):
        assert response.status_code == 503, response.text
        assert int(response.headers["retry-after"]) >= 1
    assert chat.json()["error"]["type"] == "database_unavailable"
    assert chat.json()["error"]["code"] == "database_unavailable"
    assert messages.json()["type"] == "error"
    assert messages.json()["error"]["type"] == "database_unavailable"
    assert me.json()["error"]["type"] == "database_unavailable"
    assert world.mock.request_count == 0


async def _credits(world: World) -> int:
    async with world.state.sessions() as session:
        user = await session.scalar(select(User).where(User.username == world.user.username))
        assert user is not None
        return user.credits_nanos + user.ref_credits_nanos


async def test_the_outbox_is_replayed_as_soon_as_a_write_succeeds_again(
    cut_world: World, relay: CuttableRelay
) -> None:
    world = cut_world
    before = await _credits(world)
    async with world.openai() as client:
        call = asyncio.create_task(
            client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=SLOW, max_tokens=50)
        )
        while world.mock.request_count == 0:  # admitted and held; the upstream now waits 700 ms
            await asyncio.sleep(0.01)
        await relay.cut()
        answered = await call
        assert answered.http_response.status_code == 200
        assert world.state.outbox.depth() == 1  # the settlement the database could not take

        await relay.start()
        followed = await client.chat.completions.with_raw_response.create(
            model=OPENAI_MODEL, messages=HELLO, max_tokens=20
        )
        assert followed.http_response.status_code == 200
    for _ in range(300):  # the maintenance pass is minutes away: only the write that succeeded replays it
        if world.state.outbox.depth() == 0:
            break
        await asyncio.sleep(0.01)
    assert world.state.outbox.depth() == 0
    charged = before - await _credits(world)
    first = Money.from_usd(answered.headers["x-trollllm-cost-usd"])
    second = Money.from_usd(followed.headers["x-trollllm-cost-usd"])
    assert Money(charged) == first + second
