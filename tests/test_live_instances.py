"""N, the number of live gateway instances, from a Redis heartbeat set (issue 17): the local fallback share
⌈RPM / N⌉ while Redis is down uses the count last seen, not a setting that defaults to 1."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from plan_helpers import redis_process
from redis.asyncio import Redis
from redis.exceptions import RedisError
from services import REDIS_URL

from trollllm.ratelimit.instances import LiveInstances


async def test_every_instance_counts_the_live_ones_and_a_leaving_one_is_dropped_at_once(
    redis_prefix: str,
) -> None:
    redis = Redis.from_url(REDIS_URL)
    instances = [LiveInstances(redis, redis_prefix, interval_s=0.05) for _ in range(3)]
    try:
        for instance in instances:
            await instance.start()
        await asyncio.sleep(0.2)
        assert [instance.count for instance in instances] == [3, 3, 3]
        await instances[2].close()
        assert await instances[0].beat() == 2
    finally:
        for instance in instances:
            await instance.close()
        await redis.aclose()


async def test_an_instance_that_stops_beating_drops_out_after_the_ttl(redis_prefix: str) -> None:
    redis = Redis.from_url(REDIS_URL)
    crashed = LiveInstances(redis, redis_prefix, ttl_s=0.3)
    alive = LiveInstances(redis, redis_prefix, ttl_s=0.3)
    try:
        await crashed.beat()  # and never again, as a killed process
        assert await alive.beat() == 2
        await asyncio.sleep(0.4)
        assert await alive.beat() == 1
    finally:
        await redis.aclose()


async def test_the_setting_is_a_lower_bound(redis_prefix: str) -> None:
    redis = Redis.from_url(REDIS_URL)
    try:
        assert LiveInstances(None, redis_prefix, minimum=2).count == 2, "no Redis: the setting"
        counted = LiveInstances(redis, redis_prefix, minimum=8)
        assert await counted.beat() == 8, "1 live, at least 8"
    finally:
        await redis.aclose()


async def test_the_count_last_seen_survives_redis_going_down(tmp_path: Path) -> None:
    with redis_process(tmp_path) as server:
        await server.start()
        redis = Redis.from_url(server.url, socket_connect_timeout=0.2)
        instances = [LiveInstances(redis, "trollllm:", interval_s=0.05) for _ in range(5)]
        try:
            for instance in instances:
                await instance.start()
            await asyncio.sleep(0.2)
            server.stop()
            await asyncio.sleep(0.3)  # several failed beats
            with pytest.raises((RedisError, OSError)):
                await instances[0].beat()
            assert [instance.count for instance in instances] == [5] * 5
        finally:
            for instance in instances:
                await instance.close()
            await redis.aclose()
