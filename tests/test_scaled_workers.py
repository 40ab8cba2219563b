"""`trollllm serve --workers N` on the scaled shape (issue 17): the workers of one server share PostgreSQL and
Redis like separate instances: both count themselves in the heartbeat set, and a burst admits exactly the
RPM between them. (The embedded shape refuses several workers: tests/test_cli_guards.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from instances import gateway_cluster
from plan_helpers import burst
from services import REDIS_URL


async def live_count(url: str) -> int:
    """`trollllm_instances` on the /metrics of whichever worker answers."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(url + "/metrics")).text
    line = next(line for line in text.splitlines() if line.startswith("trollllm_instances "))
    return int(line.split()[1])


async def test_two_workers_of_one_server_share_one_rpm_budget(
    tmp_path: Path, postgres_database_url: str, redis_prefix: str, mock_url: str
) -> None:
    with gateway_cluster(
        tmp_path,
        database_url=postgres_database_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        mock_url=mock_url,
        count=1,
        serve_args=("--workers", "2"),
    ) as server:
        # Each /metrics goes to either worker, and a worker counts the other from its next beat on: wait
        # until 20 answers in a row say 2 (both workers, in all likelihood).
        in_a_row = 0
        for _ in range(600):
            in_a_row = in_a_row + 1 if await live_count(server.urls[0]) == 2 else 0
            if in_a_row == 20:
                break
            await asyncio.sleep(0.05)
        assert in_a_row == 20, "both workers beat in the heartbeat set and count each other"
        server.new_plan("rpm60", rpm=60)
        user = server.new_user("worker-user", plan="rpm60")
        replies = await burst(server.urls, user.api_key, 90)
        assert sorted(reply.status for reply in replies) == [200] * 60 + [429] * 30
