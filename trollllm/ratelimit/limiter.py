"""Rate limits: an exact sliding-window log, in process (`MemoryLimiter`) or shared in Redis (`RedisLimiter`).

A key admits at most `limit` recorded hits within any trailing `window_s` seconds. A refused hit records
nothing, so a client hammering a full key does not push its own recovery further away.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, Protocol

from trollllm.clock import Clock
from trollllm.redis_failures import redis_failures

if TYPE_CHECKING:
    from redis.asyncio import Redis

DEFAULT_MAX_KEYS = 100_000


class LimiterUnavailable(Exception):
    """The limiter's backend could not be reached or failed; the decision is unknown."""


@dataclass(frozen=True, slots=True)
class LimitDecision:
    """The outcome of a `hit` or `peek`.

    `retry_after_s` is 0 when allowed, otherwise the real time until the request would be admitted
    (the window length when it never can be, e.g. `limit` 0). `reset_after_s` is the time until every
    recorded hit of the key has left the window.
    """

    allowed: bool
    limit: int
    remaining: int
    retry_after_s: float
    reset_after_s: float


class Limiter(Protocol):
    """A sliding-window rate limiter shared by every caller of the same key."""

    async def hit(self, key: str, limit: int, window_s: float, cost: int = 1) -> LimitDecision:
        """Atomically record `cost` hits if they fit in the window, else refuse and record nothing."""
        ...

    async def peek(self, key: str, limit: int, window_s: float) -> LimitDecision:
        """Whether one more hit would be admitted now, without recording anything."""
        ...

    async def reset(self, key: str) -> None:
        """Forget every hit recorded for `key`."""
        ...

    async def release(self, key: str) -> None:
        """Forget the newest hit recorded for `key` (an attempt that turned out not to count)."""
        ...

    async def close(self) -> None:
        """Release what the limiter holds."""
        ...


def _check_arguments(limit: int, window_s: float, cost: int) -> None:
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if window_s <= 0:
        raise ValueError(f"window_s must be > 0, got {window_s}")
    if cost < 1:
        raise ValueError(f"cost must be >= 1, got {cost}")


class _KeyLog:
    """The hits of one key: their times, oldest first, and when the newest leaves its window."""

    __slots__ = ("expires_at", "times")

    def __init__(self) -> None:
        self.times: deque[float] = deque()
        self.expires_at = 0.0


class MemoryLimiter:
    """An in-process limiter on `clock.monotonic()`; exact for a single process.

    Keys whose hits have all expired are dropped; past `max_keys` keys, the least recently used are evicted
    (an evicted key starts afresh, so eviction can only make the limiter more lenient).
    """

    def __init__(self, clock: Clock, *, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys}")
        self._clock = clock
        self._max_keys = max_keys
        self._logs: OrderedDict[str, _KeyLog] = OrderedDict()

    def __len__(self) -> int:
        """The number of keys currently tracked."""
        return len(self._logs)

    async def hit(self, key: str, limit: int, window_s: float, cost: int = 1) -> LimitDecision:
        """Record `cost` hits if they fit in the window, else refuse and record nothing."""
        return self._decide(key, limit, window_s, cost, record=True)

    async def peek(self, key: str, limit: int, window_s: float) -> LimitDecision:
        """Whether one more hit would be admitted now, without recording anything."""
        return self._decide(key, limit, window_s, 1, record=False)

    async def reset(self, key: str) -> None:
        """Forget every hit recorded for `key`."""
        self._logs.pop(key, None)

    async def release(self, key: str) -> None:
        """Forget the newest hit recorded for `key`."""
        log = self._logs.get(key)
        if log is not None and log.times:
            log.times.pop()

    async def close(self) -> None:
        """Forget every key."""
        self._logs.clear()

    def _decide(self, key: str, limit: int, window_s: float, cost: int, *, record: bool) -> LimitDecision:
        # No `await` in here: asyncio runs this check-and-record as one step.
        _check_arguments(limit, window_s, cost)
        now = self._clock.monotonic()
        self._sweep(now)
        log = self._logs.get(key)
        times: deque[float] = log.times if log is not None else deque()
        while times and times[0] + window_s <= now:
            times.popleft()
        count = len(times)
        allowed = count + cost <= limit
        if allowed and record:
            if log is None:
                log = self._logs[key] = _KeyLog()
                times = log.times
            times.extend(repeat(now, cost))
            count += cost
        if log is not None:
            if times:
                log.expires_at = times[-1] + window_s
                self._logs.move_to_end(key)
            else:
                del self._logs[key]
        while len(self._logs) > self._max_keys:
            self._logs.popitem(last=False)
        if allowed:
            retry_after = 0.0
        elif cost > limit:
            retry_after = window_s
        else:
            retry_after = times[count + cost - limit - 1] + window_s - now
        reset_after = times[-1] + window_s - now if times else 0.0
        return LimitDecision(allowed, limit, max(limit - count, 0), retry_after, reset_after)

    def _sweep(self, now: float) -> None:
        """Drop least recently used keys whose hits have all expired (amortised O(1) per call)."""
        while self._logs:
            oldest_key, oldest = next(iter(self._logs.items()))
            if oldest.expires_at > now:
                return
            del self._logs[oldest_key]


# KEYS[1]: the key's sorted set (score = hit time in µs). ARGV: limit, window (µs), cost, record (1 or 0).
# Time is the server's (TIME), held monotonic per key; members are "<time>:<n>", unique because each call
# that records uses a time strictly after the key's newest hit. Returns allowed, remaining, retry, reset (µs).
_SLIDING_WINDOW_LUA = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local record = ARGV[4] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
if newest[2] and tonumber(newest[2]) >= now then
  now = tonumber(newest[2]) + 1
end
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local allowed = count + cost <= limit
if allowed and record then
  for i = 1, cost do
    redis.call('ZADD', key, now, string.format('%d:%d', now, i))
  end
  count = count + cost
  redis.call('PEXPIRE', key, math.ceil(window / 1000) + 1)
end
local retry = 0
if not allowed then
  if cost > limit then
    retry = window
  else
    local nth = redis.call('ZRANGE', key, count + cost - limit - 1, count + cost - limit - 1, 'WITHSCORES')
    retry = tonumber(nth[2]) + window - now
  end
end
local reset = 0
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
if last[2] then
  reset = tonumber(last[2]) + window - now
end
return {allowed and 1 or 0, math.max(limit - count, 0), retry, reset}
"""


class RedisLimiter:
    """A limiter shared by every instance through Redis: one sorted set per key, updated by one Lua script.

    The Redis client belongs to the caller (it is shared with other components), so `close` leaves it open.
    The script itself goes over a pipelined connection of the limiter's own (`ScriptChannel`) when the
    client's is plain TCP: a decision per proxied request through redis-py cost more CPU than the request.
    """

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(_SLIDING_WINDOW_LUA)
        from trollllm.ratelimit.scriptchannel import ScriptChannel  # redis-py's code: only with a client

        self._failures = redis_failures(redis, ConnectionError, TimeoutError)
        self._channel = ScriptChannel.for_client(redis, _SLIDING_WINDOW_LUA)

    async def hit(self, key: str, limit: int, window_s: float, cost: int = 1) -> LimitDecision:
        """Atomically record `cost` hits if they fit in the window, else refuse and record nothing."""
        return await self._decide(key, limit, window_s, cost, record=True)

    async def peek(self, key: str, limit: int, window_s: float) -> LimitDecision:
        """Whether one more hit would be admitted now, without recording anything."""
        return await self._decide(key, limit, window_s, 1, record=False)

    async def reset(self, key: str) -> None:
        """Forget every hit recorded for `key`."""
        try:
            await self._redis.delete(self._prefix + key)
        except self._failures as exc:
            raise LimiterUnavailable(f"rate limiter backend failed: {exc}") from exc

    async def release(self, key: str) -> None:
        """Forget the newest hit recorded for `key`."""
        try:
            await self._redis.zpopmax(self._prefix + key)
        except self._failures as exc:
            raise LimiterUnavailable(f"rate limiter backend failed: {exc}") from exc

    async def close(self) -> None:
        """Close the script's own connection (the Redis client is closed by its owner)."""
        if self._channel is not None:
            await self._channel.close()

    async def _decide(
        self, key: str, limit: int, window_s: float, cost: int, *, record: bool
    ) -> LimitDecision:
        _check_arguments(limit, window_s, cost)
        window_us = max(round(window_s * 1_000_000), 1)
        args = [limit, window_us, cost, 1 if record else 0]
        try:
            if self._channel is not None:
                result = await self._channel.call([self._prefix + key], args)
            else:
                result = await self._script(keys=[self._prefix + key], args=args)
        except self._failures as exc:
            raise LimiterUnavailable(f"rate limiter backend failed: {exc}") from exc
        allowed, remaining, retry_us, reset_us = (int(value) for value in result)
        return LimitDecision(bool(allowed), limit, remaining, retry_us / 1_000_000, reset_us / 1_000_000)


def build_limiter(redis: Redis | None, prefix: str, clock: Clock) -> Limiter:
    """The Redis limiter when a client is configured (shared by every instance), else the in-process one."""
    if redis is not None:
        return RedisLimiter(redis, prefix)
    return MemoryLimiter(clock)
