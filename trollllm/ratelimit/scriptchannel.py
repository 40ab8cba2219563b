"""One Lua script called on Redis over a pipelined connection of its own: the rate limiter's hot call.

Through redis-py, one `EVALSHA` cost the gateway about as much CPU as the rest of a proxied request's work
on the scaled shape (pool checkout, command packing, RESP parsing, observability hooks). Here a call is one
frame written into a buffer that is flushed once per event-loop turn, so the calls of concurrent requests
share one write, and the replies are read in order from one stream. Each call is still its own `EVALSHA`,
run atomically by Redis, so nothing about the script's decisions changes.

Only plain TCP (`redis://`, with its password and database) takes this path; `rediss://` and Unix sockets
keep redis-py (`ScriptChannel.for_client` answers None).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import deque
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import RedisError

CONNECT_TIMEOUT_S = 1.0
STUCK_AFTER_S = 2.0
"""A connection whose oldest call has waited this long is dropped and opened again at the next call."""


class RedisReplyError(RedisError):
    """Redis answered a call with an error reply."""


def encode_command(*parts: bytes | str | int) -> bytes:
    """A command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else b"%d" % part if isinstance(part, int) else part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Incomplete(Exception):
    pass


def parse_reply(buffer: bytes | bytearray, start: int) -> tuple[Any, int]:
    """One RESP2 reply from `buffer` at `start`: (the value, where the next reply starts).

    An error reply is returned as a `RedisReplyError` (not raised); `_Incomplete` when more bytes are needed.
    """
    end = buffer.find(b"\r\n", start)
    if end < 0:
        raise _Incomplete()
    kind, line = buffer[start : start + 1], buffer[start + 1 : end]
    after = end + 2
    if kind == b":":
        return int(line), after
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, after
        items = []
        for _ in range(count):
            item, after = parse_reply(buffer, after)
            items.append(item)
        return items, after
    if kind == b"$":
        length = int(line)
        if length < 0:
            return None, after
        if len(buffer) < after + length + 2:
            raise _Incomplete()
        return bytes(buffer[after : after + length]), after + length + 2
    if kind == b"+":
        return bytes(line), after
    if kind == b"-":
        return RedisReplyError(bytes(line).decode(errors="replace")), after
    raise RedisReplyError(f"unexpected reply type {kind!r}")


class _Protocol(asyncio.Protocol):
    """The connection: writes buffered until the end of the loop's turn, replies matched to calls in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._out: list[bytes] = []
        self._buffer = bytearray()
        self.pending: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.lost: BaseException | None = None
        self.retired = False  # takes no new call; closed once the calls on it are answered

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of asyncio's

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = exc or ConnectionError("the Redis connection was closed")
        self._transport = None
        while self.pending:
            future, _ = self.pending.popleft()
            if not future.done():
                future.set_exception(ConnectionError(f"the Redis connection was lost: {self.lost}"))

    def send(self, frame: bytes) -> asyncio.Future[Any]:
        if self._transport is None:
            raise ConnectionError(f"the Redis connection was lost: {self.lost}")
        future: asyncio.Future[Any] = self._loop.create_future()
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.append(frame)
        self.pending.append((future, time.monotonic()))
        return future

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self._transport is not None and out:
            self._transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        try:
            while start < len(buffer):
                reply, start = parse_reply(buffer, start)
                if not self.pending:
                    raise RedisReplyError("a reply without a call")
                future, _ = self.pending.popleft()
                if not future.done():  # its caller may have been cancelled
                    future.set_result(reply)
            if self.retired and not self.pending:
                self.close()
                return
        except _Incomplete:
            pass
        except (RedisReplyError, ValueError) as exc:  # the stream is out of step: start afresh
            self.close(exc)
            return
        del buffer[:start]

    def stuck(self) -> bool:
        """Whether the oldest call has waited past `STUCK_AFTER_S`."""
        return bool(self.pending) and time.monotonic() - self.pending[0][1] >= STUCK_AFTER_S

    def retire(self) -> None:
        """Send no new call here (a call given up on may be waiting for a slow reply: the next ones must not
        queue behind it), and close once the calls on it are answered."""
        self.retired = True
        if not self.pending:
            self.close()

    def close(self, reason: BaseException | None = None) -> None:
        if self._transport is not None:
            self._transport.abort()
            self.connection_lost(reason)


class ScriptChannel:
    """`EVALSHA` of one script on one pipelined connection, opened at the first call and after a loss."""

    def __init__(
        self,
        script: str,
        host: str,
        port: int,
        *,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self._script = script.encode()
        self._sha = hashlib.sha1(self._script, usedforsecurity=False).hexdigest().encode()
        self._host, self._port, self._db = host, port, db
        self._username, self._password = username, password
        self._protocol: _Protocol | None = None
        self._retired: list[_Protocol] = []  # given up on, still waiting for replies owed
        self._connecting: asyncio.Task[_Protocol] | None = None

    @classmethod
    def for_client(cls, redis: Redis, script: str) -> ScriptChannel | None:
        """A channel to the server of `redis`'s pool; None when that is not plain TCP (TLS, Unix socket)."""
        pool = redis.connection_pool
        if pool.connection_class is not Connection:
            return None
        kwargs = pool.connection_kwargs
        return cls(
            script,
            str(kwargs.get("host", "localhost")),
            int(kwargs.get("port", 6379)),
            db=int(kwargs.get("db") or 0),
            username=kwargs.get("username"),
            password=kwargs.get("password"),
        )

    async def call(self, keys: list[str], args: list[int]) -> Any:
        """The script's reply for `keys` and `args`; `RedisReplyError` for an error reply, `OSError` (or
        `ConnectionError`, `TimeoutError`) when Redis cannot be reached."""
        protocol = await self._connected()
        try:
            reply = await protocol.send(encode_command(b"EVALSHA", self._sha, len(keys), *keys, *args))
            if isinstance(reply, RedisReplyError) and str(reply).startswith("NOSCRIPT"):
                reply = await protocol.send(encode_command(b"EVAL", self._script, len(keys), *keys, *args))
        except asyncio.CancelledError:  # e.g. the caller's timeout: Redis may be slow on this connection
            protocol.retire()
            raise
        if isinstance(reply, RedisReplyError):
            raise reply
        return reply

    async def _connected(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and protocol.lost is None and not protocol.retired and not protocol.stuck():
            return protocol
        if protocol is not None:
            self._protocol = None
            protocol.retire()
            self._retired.append(protocol)
        for old in self._retired:
            if old.stuck():  # Redis never answered there: fail what waits and let the socket go
                old.close(TimeoutError("Redis did not answer"))
        self._retired = [old for old in self._retired if old.lost is None]
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            protocol = await asyncio.shield(connecting)
        finally:
            if self._connecting is connecting and connecting.done():
                self._connecting = None
        return protocol

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            _, protocol = await loop.create_connection(lambda: _Protocol(loop), self._host, self._port)
            try:
                setup = []
                if self._password is not None:
                    auth = (self._username, self._password) if self._username else (self._password,)
                    setup.append(protocol.send(encode_command(b"AUTH", *auth)))
                if self._db:
                    setup.append(protocol.send(encode_command(b"SELECT", self._db)))
                for reply in await asyncio.gather(*setup):
                    if isinstance(reply, RedisReplyError):
                        raise reply
            except BaseException as exc:
                protocol.close(exc)
                raise
        self._protocol = protocol
        return protocol

    async def close(self) -> None:
        """Close the connection (calls in flight fail with `ConnectionError`)."""
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(BaseException):
                await self._connecting
            self._connecting = None
        for protocol in [self._protocol, *self._retired]:
            if protocol is not None:
                protocol.close()
        self._protocol, self._retired = None, []
