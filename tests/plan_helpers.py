"""Helpers of the plan tests: editing plans, firing bursts at the proxy, and a Redis of the test's own."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from helpers import PASSWORD, Account
from proxy_world import OPENAI_MODEL, World
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select, update

from trollllm.accounts.tables import User
from trollllm.db import transaction

HELLO = [{"role": "user", "content": "hello"}]


async def edit_plan(world: World, name: str, **changes: Any) -> dict[str, Any]:
    """PUT a plan with some fields changed (the admin API replaces every field)."""
    plans = (await world.admin_call("GET", "/api/admin/plans")).json()["plans"]
    plan = next(p for p in plans if p["name"] == name)
    body = {key: value for key, value in plan.items() if key != "name"} | changes
    response = await world.admin_call("PUT", f"/api/admin/plans/{name}", json=body)
    result: dict[str, Any] = response.json()
    return result


def chat_body(model: str = OPENAI_MODEL, **extra: Any) -> dict[str, Any]:
    """A small OpenAI-format request."""
    return {"model": model, "max_tokens": 20, "messages": HELLO, **extra}


@dataclass(frozen=True)
class Reply:
    """What a burst keeps of one response."""

    status: int
    headers: dict[str, str]
    body: bytes


async def burst(
    base_urls: list[str], key: str, count: int, body: dict[str, Any] | None = None
) -> list[Reply]:
    """`count` concurrent chat completions spread over `base_urls` (aiohttp: httpx's pool is quadratic)."""
    timeout = aiohttp.ClientTimeout(total=60)
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(timeout=timeout) as client:

        async def one(index: int) -> Reply:
            url = base_urls[index % len(base_urls)] + "/v1/chat/completions"
            async with client.post(url, headers=headers, json=body or chat_body()) as response:
                return Reply(response.status, dict(response.headers), await response.read())

        return list(await asyncio.gather(*(one(i) for i in range(count))))


async def relogin(world: World) -> None:
    """Fresh tokens for the admin and the user after the clock moved past the JWT lifetime."""
    for role in ("admin", "user"):
        account: Account = getattr(world, role)
        response = await world.gateway.client.post(
            "/api/auth/login", json={"username": account.username, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        setattr(world, role, Account(account.username, response.json()["token"], account.api_key))


async def user_row(world: World, username: str = "alice") -> User:
    """The user as stored now."""
    async with world.state.sessions() as session:
        user = await session.scalar(select(User).where(User.username == username))
    assert user is not None
    return user


async def set_user(world: World, username: str = "alice", **values: Any) -> None:
    """Write user columns directly (test setup only)."""
    async with transaction(world.state.sessions) as session:
        await session.execute(update(User).where(User.username == username).values(**values))


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """A `redis-server` of the test's own on a port of its own, which the test can stop and start again."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start it and wait until it answers PING."""
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            for _ in range(200):
                with contextlib.suppress(RedisError, OSError):
                    if await client.ping():
                        return
                await asyncio.sleep(0.02)
        finally:
            await client.aclose()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """Kill it (as a crash would) and reap it."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@contextlib.contextmanager
def redis_process(directory: Path) -> Iterator[RedisProcess]:
    """A `RedisProcess`, always killed at the end."""
    server = RedisProcess(directory)
    try:
        yield server
    finally:
        server.stop()


class SlowProxy:
    """A TCP proxy in front of a Redis that holds every answer back by `delay` seconds."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.delay = 0.0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """The proxy's Redis URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def __aenter__(self) -> SlowProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        self._writers.add(writer)
        try:
            target_reader, target_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.add(target_writer)
        try:
            await asyncio.gather(
                self._pipe(reader, target_writer, slow=False), self._pipe(target_reader, writer, slow=True)
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for each in (writer, target_writer):
                each.close()
                self._writers.discard(each)
            self._tasks.discard(task)  # type: ignore[arg-type]

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, slow: bool) -> None:
        while data := await source.read(65536):
            if slow and self.delay:
                await asyncio.sleep(self.delay)
            sink.write(data)
            await sink.drain()
        sink.close()


@contextlib.asynccontextmanager
async def slow_proxy(target_port: int) -> AsyncIterator[SlowProxy]:
    """A running `SlowProxy`."""
    async with SlowProxy(target_port) as proxy:
        yield proxy
