"""Redis down and back under three instances (issue 17): each instance limits to ⌈RPM / N⌉ with N = 3 known
from the Redis heartbeat set (TROLLLLM_INSTANCES is left at its default of 1), so together they still admit
the RPM; once Redis is back the budget is one again."""

from __future__ import annotations

import asyncio
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
    with redis_process(tmp_path) as redis:
        await redis.start()
        with gateway_cluster(
            tmp_path / "cluster",
            database_url=postgres_database_url,
            redis_url=redis.url,
            redis_prefix="trollllm:",
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
            replies = await burst(cluster.urls, during.api_key, 150)
            assert sorted(reply.status for reply in replies) == [200] * 60 + [429] * 90, "⌈60 / 3⌉ on each"
            assert {reply.headers["x-ratelimit-limit-requests"] for reply in replies} == {"20"}

            await redis.start()
            await asyncio.sleep(
                2.5
            )  # past the retry interval: the next request on each instance probes Redis
            for url in cluster.urls:
                (probe,) = await burst([url], warmup.api_key, 1)
                assert probe.headers["x-ratelimit-limit-requests"] == "60", "shared again"
            replies = await burst(cluster.urls, after.api_key, 150)
            assert sorted(reply.status for reply in replies) == [200] * 60 + [429] * 90
            client = Redis.from_url(redis.url)
            try:
                assert await client.zcard("trollllm:instances") == 3, (
                    "the heartbeats are back in the new Redis"
                )
            finally:
                await client.aclose()
