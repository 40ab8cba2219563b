"""How many gateway instances share this Redis: a heartbeat set every instance keeps itself in.

Each instance adds its own id to one sorted set (`<prefix>instances`, scored by the Redis server's clock)
every `HEARTBEAT_INTERVAL_S`, drops the members not refreshed for `HEARTBEAT_TTL_S`, and reads how many are
left. That count, as last seen while Redis answered, is N in the local fallback ⌈RPM / N⌉ once Redis stops
answering; `TROLLLLM_INSTANCES` stays a lower bound for the case where Redis was never reached. An instance
shutting down removes itself, so N follows a rolling restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from typing import TYPE_CHECKING

from trollllm.redis_failures import redis_failures

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger("trollllm.ratelimit")

HEARTBEAT_INTERVAL_S = 1.0
HEARTBEAT_TTL_S = 5.0

# KEYS[1]: the set. ARGV: this instance's id, the TTL (µs). Returns how many instances are live.
_BEAT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) / 1000))
return redis.call('ZCARD', KEYS[1])
"""


def new_instance_id() -> str:
    """A unique id for this process: host, pid and a random suffix (readable in `ZRANGE`)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class LiveInstances:
    """This instance's heartbeat, and the number of live instances last seen (at least `minimum`)."""

    def __init__(
        self,
        redis: Redis | None,
        prefix: str,
        *,
        minimum: int = 1,
        interval_s: float = HEARTBEAT_INTERVAL_S,
        ttl_s: float = HEARTBEAT_TTL_S,
    ) -> None:
        self._redis = redis
        self._key = f"{prefix}instances"
        self._id = new_instance_id()
        self._minimum = minimum
        self._interval_s = interval_s
        self._ttl_us = round(ttl_s * 1_000_000)
        self._seen = 1  # this instance, until Redis says more
        self._task: asyncio.Task[None] | None = None
        self._script = redis.register_script(_BEAT_LUA) if redis is not None else None
        self._failures = redis_failures(redis, OSError, TimeoutError)

    @property
    def count(self) -> int:
        """N: the live instances last counted while Redis answered, never below `minimum` (nor 1)."""
        return max(self._seen, self._minimum, 1)

    async def beat(self) -> int:
        """Refresh this instance's entry and count the live ones; raises on a Redis failure."""
        if self._script is None:
            return self.count
        self._seen = int(await self._script(keys=[self._key], args=[self._id, self._ttl_us]))
        return self.count

    async def start(self) -> None:
        """Beat once (if Redis answers) and keep beating in the background; nothing without Redis."""
        if self._redis is None:
            return
        with contextlib.suppress(*self._failures):
            await self.beat()
        self._task = asyncio.create_task(self._loop(), name="trollllm-heartbeat")

    async def close(self) -> None:
        """Stop beating and leave the set, so the others count one less at once."""
        if self._task is None or self._redis is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(*self._failures):
            async with asyncio.timeout(1):
                await self._redis.zrem(self._key, self._id)

    async def _loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                async with asyncio.timeout(self._interval_s):
                    await self.beat()
            except self._failures:
                if not failing:  # the limiter logs the outage itself; this says which N it falls back on
                    logger.warning(
                        "instance heartbeat failed; keeping the last count", extra={"n": self.count}
                    )
                failing = True
                continue
            failing = False
