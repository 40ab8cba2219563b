"""The rate limiter's own Redis connection (`ScriptChannel`): pipelined script calls on the real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import uvloop
from redis.asyncio import Redis
from services import REDIS_URL

from trollllm.ratelimit.scriptchannel import RedisReplyError, ScriptChannel

ECHO = "return {ARGV[1], KEYS[1]}"
REDIS_HOST, REDIS_PORT = urlsplit(REDIS_URL).hostname or "127.0.0.1", urlsplit(REDIS_URL).port or 6379


@pytest.fixture
async def channel(redis_prefix: str) -> AsyncIterator[ScriptChannel]:
    client = Redis.from_url(REDIS_URL)
    made = ScriptChannel.for_client(client, f"{ECHO} -- {uuid.uuid4().hex}")  # a script Redis never saw
    assert made is not None
    try:
        yield made
    finally:
        await made.close()
        await client.aclose()


async def test_concurrent_calls_each_get_their_own_reply(channel: ScriptChannel) -> None:
    replies = await asyncio.gather(*(channel.call([f"k{n}"], [n]) for n in range(200)))
    assert replies == [[str(n).encode(), f"k{n}".encode()] for n in range(200)]


def test_calls_on_uvloop_get_their_replies(redis_prefix: str) -> None:
    async def calls() -> list[object]:
        on_uvloop = ScriptChannel(ECHO, REDIS_HOST, REDIS_PORT)
        try:
            return await asyncio.gather(*(on_uvloop.call([f"k{n}"], [n]) for n in range(20)))
        finally:
            await on_uvloop.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # the loop `trollllm serve` runs on
        assert runner.run(calls()) == [[str(n).encode(), f"k{n}".encode()] for n in range(20)]


async def test_a_script_redis_does_not_know_yet_is_sent_whole_once(channel: ScriptChannel) -> None:
    assert await channel.call(["k"], [1]) == [b"1", b"k"]  # NOSCRIPT, then EVAL loads it
    assert await channel.call(["k"], [2]) == [b"2", b"k"]


async def test_an_error_reply_is_raised_and_the_channel_goes_on(redis_prefix: str) -> None:
    client = Redis.from_url(REDIS_URL)
    failing = ScriptChannel.for_client(client, "return redis.call('INCR', KEYS[1])")
    assert failing is not None
    try:
        await client.set(redis_prefix + "text", "not a number")
        with pytest.raises(RedisReplyError):
            await failing.call([redis_prefix + "text"], [])
        assert await failing.call([redis_prefix + "count"], []) == 1
    finally:
        await failing.close()
        await client.aclose()


async def test_the_clients_database_is_the_one_used(redis_prefix: str) -> None:
    client = Redis.from_url(REDIS_URL.rsplit("/", 1)[0] + "/5")
    setter = ScriptChannel.for_client(client, "return redis.call('SET', KEYS[1], ARGV[1])")
    assert setter is not None
    try:
        assert await setter.call([redis_prefix + "db"], [7]) == b"OK"
        assert await client.get(redis_prefix + "db") == b"7"
    finally:
        await client.delete(redis_prefix + "db")
        await setter.close()
        await client.aclose()


async def test_tls_and_unix_socket_clients_get_no_channel() -> None:
    for url in ("rediss://127.0.0.1:6379/0", "unix:///tmp/redis.sock"):
        client = Redis.from_url(url)
        assert ScriptChannel.for_client(client, ECHO) is None
        await client.aclose()


class _Relay:
    """A TCP relay in front of Redis that can cut its connections and hand replies over byte by byte."""

    def __init__(self, *, dribble: bool = False) -> None:
        self.dribble = dribble
        self.delay = 0.0  # seconds before each reply chunk is handed over
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(REDIS_HOST, REDIS_PORT)
        self._writers += [writer, up_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, dribble: bool) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    if source is not reader:
                        await asyncio.sleep(self.delay)
                    for piece in [data[i : i + 1] for i in range(len(data))] if dribble else [data]:
                        sink.write(piece)
                        await sink.drain()
            sink.close()

        for task in (pipe(reader, up_writer, False), pipe(up_reader, writer, self.dribble)):
            made = asyncio.create_task(task)
            self._tasks.add(made)
            made.add_done_callback(self._tasks.discard)

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def test_replies_split_into_single_bytes_are_put_back_together(redis_prefix: str) -> None:
    relay = _Relay(dribble=True)
    through = ScriptChannel(ECHO, "127.0.0.1", await relay.start())
    try:
        replies = await asyncio.gather(*(through.call([f"k{n}"], [n]) for n in range(20)))
        assert replies == [[str(n).encode(), f"k{n}".encode()] for n in range(20)]
    finally:
        await through.close()
        await relay.close()


async def test_a_lost_connection_fails_its_calls_and_the_next_call_opens_a_new_one(redis_prefix: str) -> None:
    relay = _Relay()
    through = ScriptChannel(ECHO, "127.0.0.1", await relay.start())
    try:
        assert await through.call(["k"], [1]) == [b"1", b"k"]
        relay.cut()
        await asyncio.sleep(0.1)  # the loss reaches the channel's socket
        assert await through.call(["k"], [2]) == [b"2", b"k"]
    finally:
        await through.close()
        await relay.close()


async def test_a_call_given_up_on_does_not_hold_up_the_next_one(redis_prefix: str) -> None:
    relay = _Relay()
    through = ScriptChannel(ECHO, "127.0.0.1", await relay.start())
    try:
        assert await through.call(["k"], [1]) == [b"1", b"k"]
        relay.delay = 2.0
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await through.call(["k"], [2])
        relay.delay = 0.0
        async with asyncio.timeout(1.0):  # not behind the slow reply still owed on the first connection
            assert await through.call(["k"], [3]) == [b"3", b"k"]
    finally:
        await through.close()
        await relay.close()


async def test_an_unreachable_server_raises_an_os_error() -> None:
    unreachable = ScriptChannel(ECHO, "127.0.0.1", 1)
    with pytest.raises(OSError):
        await unreachable.call(["k"], [1])
    await unreachable.close()
