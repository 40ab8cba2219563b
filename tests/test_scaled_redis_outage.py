"""Redis down and back under three instances (issue 17): each instance limits to ⌈RPM / N⌉ with N = 3 known
from the Redis heartbeat set (TROLLLLM_INSTANCES is left at its default of 1), so together they still admit
the RPM; once Redis is back the budget is one again."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
from instances import gateway_cluster
from plan_helpers import burst, redis_process
from redis.asyncio import Redis


async def live_counts(urls: list[str]) -> list[int]:
    """`trollllm_instances` of each instance's /metrics."""
    counts = []
    async with httpx.AsyncClient(timeout=5) as client:
        for url in urls:
            text = (await client.get(url + "/metrics")).text
            counts.append(
                int(
                    next(
                        line for line in text.splitlines() if line.startswith("trollllm_instances ")
                    ).split()[1]
                )
            )
    return counts


async def test_with_redis_down_three_instances_admit_the_rpm_between_them_and_share_it_again_once_it_is_back(
    tmp_path: Path, postgres_database_url: str, mock_url: str
) -> None:
    prefix = f"trollllm-test:{uuid.uuid4().hex}:"  # a prefix of its own, even on a Redis of its own
    with redis_process(tmp_path) as redis:
        await redis.start()
        with gateway_cluster(
            tmp_path / "cluster",
            database_url=postgres_database_url,
            redis_url=redis.url,
            redis_prefix=prefix,
            mock_url=mock_url,
        ) as cluster:
            cluster.new_plan("rpm60", rpm=60)
            during, warmup, after = (
                cluster.new_user(name, plan="rpm60") for name in ("during", "warmup", "after")
            )
            for _ in range(100):
                if await live_counts(cluster.urls) == [3, 3, 3]:
                    break
                await asyncio.sleep(0.05)
            assert await live_counts(cluster.urls) == [3, 3, 3], "every instance counts the three"

            redis.stop()
            # 90, not more: every admitted request opens an upstream connection at once, and a mock upstream
            # flooded past its listen backlog would fail some (they still use their slot).
            replies = await burst(cluster.urls, during.api_key, 90)  # request i goes to instance i % 3
            per_instance = [
                sorted(
                    (reply.status, reply.headers.get("x-ratelimit-limit-requests")) for reply in replies[i::3]
                )
                for i in range(3)
            ]
            assert per_instance == [[(200, "20")] * 20 + [(429, "20")] * 10] * 3, "⌈60 / 3⌉ on each"

            await redis.start()
            await asyncio.sleep(
                2.5
            )  # past the retry interval: the next request on each instance probes Redis
            for url in cluster.urls:
                (probe,) = await burst([url], warmup.api_key, 1)
                assert probe.headers["x-ratelimit-limit-requests"] == "60", "shared again"
            replies = await burst(cluster.urls, after.api_key, 90)
            assert sorted(reply.status for reply in replies) == [200] * 60 + [429] * 30
            client = Redis.from_url(redis.url)
            try:
                assert await client.zcard(prefix + "instances") == 3, (
                    "the heartbeats are back in the new Redis"
                )
            finally:
                await client.aclose()
