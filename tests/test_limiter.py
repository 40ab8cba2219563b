"""One contract for every limiter backend: each test runs on the in-process limiter and on real Redis.

The memory backend moves a `ManualClock`; Redis keeps the server's clock, so time-based tests use short
windows and real sleeps, and compare times with a tolerance that is near zero for the memory backend.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from trollllm.clock import ManualClock
from trollllm.ratelimit.limiter import (
    Limiter,
    LimiterUnavailable,
    MemoryLimiter,
    RedisLimiter,
    build_limiter,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
WINDOW = 0.4  # short, so the Redis backend waits for real without slowing the suite much
LONG_WINDOW = 60.0  # for tests in which nothing should expire


@pytest.fixture
async def limiter_redis() -> AsyncIterator[Redis]:
    """A client of the local Redis; skips when it is down, fails when CI requires it.

    Its pool is bounded and blocking, as the app's should be: redis-py's default pool raises "Too many
    connections" past 100 concurrent commands, which the limiter would report as `LimiterUnavailable`.
    """
    pool = BlockingConnectionPool.from_url(
        REDIS_URL, max_connections=20, timeout=5, socket_connect_timeout=0.5, socket_timeout=2
    )
    client = Redis.from_pool(pool)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        message = f"Redis is not reachable at {REDIS_URL} ({type(exc).__name__}: {exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI=true requires the Redis service")
        pytest.skip(f"{message}; start Redis to run the Redis limiter tests")
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def redis_prefix(limiter_redis: Redis) -> AsyncIterator[str]:
    """A key prefix of this test alone; its keys are deleted afterwards."""
    prefix = f"trollllm-test:{uuid.uuid4()}:"
    yield prefix
    keys = [key async for key in limiter_redis.scan_iter(match=prefix + "*")]
    if keys:
        await limiter_redis.delete(*keys)


@dataclass
class Backend:
    """A limiter under test, with a way to let time pass and the time precision to expect."""

    limiter: Limiter
    advance: Callable[[float], Awaitable[None]]
    tolerance: float


@pytest.fixture
async def redis_limiter(limiter_redis: Redis, redis_prefix: str) -> AsyncIterator[RedisLimiter]:
    """A Redis limiter on the test's prefix, closed after the test (it has a connection of its own)."""
    limiter = RedisLimiter(limiter_redis, redis_prefix)
    yield limiter
    await limiter.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each contract test runs once per backend."""
    if request.param == "memory":
        clock = ManualClock()

        async def advance(seconds: float) -> None:
            clock.advance(seconds)

        return Backend(MemoryLimiter(clock), advance, tolerance=1e-6)
    return Backend(request.getfixturevalue("redis_limiter"), asyncio.sleep, tolerance=0.05)


async def test_burst_admits_exactly_limit(backend: Backend) -> None:
    decisions = [await backend.limiter.hit("k", 60, LONG_WINDOW) for _ in range(100)]
    assert [d.allowed for d in decisions] == [True] * 60 + [False] * 40


async def test_refused_hits_are_not_recorded(backend: Backend) -> None:
    limiter = backend.limiter
    assert all([(await limiter.hit("k", 3, WINDOW)).allowed for _ in range(3)])
    await backend.advance(WINDOW / 2)
    assert not any([(await limiter.hit("k", 3, WINDOW)).allowed for _ in range(2)])
    await backend.advance(WINDOW / 2)
    # The first three have left the window; had the refused ones been recorded, only one would fit now.
    assert [(await limiter.hit("k", 3, WINDOW)).allowed for _ in range(4)] == [True, True, True, False]


async def test_remaining_counts_down(backend: Backend) -> None:
    decisions = [await backend.limiter.hit("k", 3, LONG_WINDOW) for _ in range(4)]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert [d.limit for d in decisions] == [3, 3, 3, 3]
    assert [d.retry_after_s for d in decisions[:3]] == [0.0, 0.0, 0.0]


async def test_retry_after_is_the_real_wait(backend: Backend) -> None:
    limiter, tolerance = backend.limiter, backend.tolerance
    await limiter.hit("k", 2, WINDOW)
    await backend.advance(WINDOW / 4)
    await limiter.hit("k", 2, WINDOW)
    refused = await limiter.hit("k", 2, WINDOW)
    assert not refused.allowed
    # The oldest hit is at least WINDOW / 4 old (exactly, on the manual clock).
    assert WINDOW * 0.75 - tolerance <= refused.retry_after_s <= WINDOW * 0.75 + 1e-6
    await backend.advance(refused.retry_after_s - tolerance)
    assert not (await limiter.peek("k", 2, WINDOW)).allowed
    await backend.advance(2 * tolerance)
    assert (await limiter.hit("k", 2, WINDOW)).allowed


async def test_reset_after_is_the_time_until_the_window_is_clear(backend: Backend) -> None:
    limiter, tolerance = backend.limiter, backend.tolerance
    assert (await limiter.peek("k", 2, WINDOW)).reset_after_s == 0.0
    assert (await limiter.hit("k", 2, WINDOW)).reset_after_s == pytest.approx(WINDOW, abs=tolerance)
    await backend.advance(WINDOW / 4)
    peeked = await limiter.peek("k", 2, WINDOW)
    assert WINDOW * 0.75 - tolerance <= peeked.reset_after_s <= WINDOW * 0.75 + 1e-6
    assert (await limiter.hit("k", 2, WINDOW)).reset_after_s == pytest.approx(WINDOW, abs=tolerance)


async def test_window_slides_so_hits_expire_one_by_one(backend: Backend) -> None:
    limiter = backend.limiter
    assert (await limiter.hit("k", 2, WINDOW)).allowed
    await backend.advance(WINDOW / 2)
    assert (await limiter.hit("k", 2, WINDOW)).allowed
    assert not (await limiter.hit("k", 2, WINDOW)).allowed
    await backend.advance(WINDOW / 2 + WINDOW / 10)
    # Only the first hit has left the window; a fixed window would have freed both slots.
    assert [(await limiter.hit("k", 2, WINDOW)).allowed for _ in range(2)] == [True, False]


async def test_limit_zero_refuses_everything(backend: Backend) -> None:
    for decision in (await backend.limiter.hit("k", 0, WINDOW), await backend.limiter.peek("k", 0, WINDOW)):
        assert not decision.allowed
        assert decision.remaining == 0
        assert decision.retry_after_s == pytest.approx(WINDOW)


async def test_peek_does_not_consume(backend: Backend) -> None:
    limiter = backend.limiter
    for _ in range(5):
        peeked = await limiter.peek("k", 2, LONG_WINDOW)
        assert peeked.allowed
        assert peeked.remaining == 2
    assert [(await limiter.hit("k", 2, LONG_WINDOW)).allowed for _ in range(2)] == [True, True]
    peeked = await limiter.peek("k", 2, LONG_WINDOW)
    assert not peeked.allowed
    assert peeked.retry_after_s > 0


async def test_reset_clears_the_key(backend: Backend) -> None:
    limiter = backend.limiter
    await limiter.reset("never-used")
    for _ in range(3):
        await limiter.hit("k", 2, LONG_WINDOW)
    await limiter.reset("k")
    decision = await limiter.hit("k", 2, LONG_WINDOW)
    assert decision.allowed
    assert decision.remaining == 1


async def test_keys_are_independent(backend: Backend) -> None:
    limiter = backend.limiter
    assert (await limiter.hit("a", 1, LONG_WINDOW)).allowed
    assert (await limiter.hit("b", 1, LONG_WINDOW)).allowed
    assert not (await limiter.hit("a", 1, LONG_WINDOW)).allowed
    assert not (await limiter.hit("b", 1, LONG_WINDOW)).allowed


async def test_cost_counts_as_that_many_hits(backend: Backend) -> None:
    limiter = backend.limiter
    assert (await limiter.hit("k", 5, LONG_WINDOW, cost=3)).remaining == 2
    refused = await limiter.hit("k", 5, LONG_WINDOW, cost=3)
    assert not refused.allowed
    assert refused.remaining == 2
    last = await limiter.hit("k", 5, LONG_WINDOW, cost=2)
    assert last.allowed
    assert last.remaining == 0


async def test_cost_above_limit_is_refused_for_a_whole_window(backend: Backend) -> None:
    decision = await backend.limiter.hit("k", 5, WINDOW, cost=6)
    assert not decision.allowed
    assert decision.remaining == 5
    assert decision.retry_after_s == pytest.approx(WINDOW)


async def test_concurrent_hits_admit_exactly_limit(backend: Backend) -> None:
    decisions = await asyncio.gather(*(backend.limiter.hit("k", 50, LONG_WINDOW) for _ in range(200)))
    assert sum(d.allowed for d in decisions) == 50


@pytest.mark.parametrize(("limit", "window_s", "cost"), [(-1, 1.0, 1), (1, 0.0, 1), (1, 1.0, 0)])
async def test_invalid_arguments_raise_value_error(
    backend: Backend, limit: int, window_s: float, cost: int
) -> None:
    with pytest.raises(ValueError):
        await backend.limiter.hit("k", limit, window_s, cost)


@pytest.mark.redis
async def test_redis_keys_expire_on_their_own(limiter_redis: Redis, redis_prefix: str) -> None:
    limiter = RedisLimiter(limiter_redis, redis_prefix)
    try:
        await limiter.peek("k", 5, LONG_WINDOW)
        assert await limiter_redis.exists(redis_prefix + "k") == 0
        await limiter.hit("k", 5, LONG_WINDOW)
        assert 0 < await limiter_redis.pttl(redis_prefix + "k") <= LONG_WINDOW * 1000 + 1
    finally:
        await limiter.close()


@pytest.mark.parametrize("operation", ["hit", "peek", "reset"])
async def test_redis_unreachable_raises_limiter_unavailable(operation: str) -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    limiter = RedisLimiter(client, "trollllm-test:unreachable:")
    calls = {
        "hit": lambda: limiter.hit("k", 5, LONG_WINDOW),
        "peek": lambda: limiter.peek("k", 5, LONG_WINDOW),
        "reset": lambda: limiter.reset("k"),
    }
    try:
        with pytest.raises(LimiterUnavailable) as raised:
            await calls[operation]()
        assert isinstance(raised.value.__cause__, RedisError | OSError)
    finally:
        await client.aclose()


async def test_memory_limiter_drops_keys_whose_hits_expired() -> None:
    clock = ManualClock()
    limiter = MemoryLimiter(clock)
    await limiter.hit("a", 5, WINDOW)
    await limiter.hit("b", 5, WINDOW)
    await limiter.peek("never-hit", 5, WINDOW)
    assert len(limiter) == 2
    clock.advance(WINDOW)
    await limiter.peek("c", 5, WINDOW)
    assert len(limiter) == 0


async def test_memory_limiter_evicts_least_recently_used_keys_over_max_keys() -> None:
    limiter = MemoryLimiter(ManualClock(), max_keys=2)
    await limiter.hit("a", 1, LONG_WINDOW)
    await limiter.hit("b", 1, LONG_WINDOW)
    assert not (await limiter.hit("a", 1, LONG_WINDOW)).allowed  # "a" is now the most recently used
    await limiter.hit("c", 1, LONG_WINDOW)
    assert len(limiter) == 2
    assert not (await limiter.hit("a", 1, LONG_WINDOW)).allowed
    assert (await limiter.hit("b", 1, LONG_WINDOW)).allowed  # evicted, so it starts afresh


async def test_build_limiter_picks_redis_when_a_client_is_given() -> None:
    client = Redis.from_url(REDIS_URL)
    try:
        assert isinstance(build_limiter(client, "p:", ManualClock()), RedisLimiter)
        assert isinstance(build_limiter(None, "p:", ManualClock()), MemoryLimiter)
    finally:
        await client.aclose()
