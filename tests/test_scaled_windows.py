"""Issue 27 on the scaled shape: two `trollllm serve` processes on one PostgreSQL and one Redis. A 5-hour
window of $1.00 is never passed by held-and-settled spend under 200 concurrent requests split over both,
and the monthly token limit, counting requests in flight, is passed by at most the last admitted request
(SPEC §5)."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from instances import OPENAI_MODEL, Cluster, gateway_cluster
from plan_helpers import burst
from services import REDIS_URL
from sqlalchemy import func, select

from trollllm.accounts.tables import User
from trollllm.billing.tables import Hold, UsageWindowBucket
from trollllm.db import create_sessionmaker, create_test_engine
from trollllm.money import Money
from trollllm.usage.tables import RequestLog

BIG = {
    "model": OPENAI_MODEL,
    "max_tokens": 4000,
    "messages": [{"role": "user", "content": "[mock reply_tokens=4000 delay_ms=100] hello"}],
}


@pytest.fixture(scope="module")
def two_instances(
    tmp_path_factory: pytest.TempPathFactory,
    scaled_database_url: str,
    scaled_redis_prefix: str,
    mock_url: str,
) -> Iterator[Cluster]:
    with gateway_cluster(
        tmp_path_factory.mktemp("two"),
        database_url=scaled_database_url,
        redis_url=REDIS_URL,
        redis_prefix=scaled_redis_prefix,
        mock_url=mock_url,
        count=2,
    ) as running:
        yield running


def plan_with(cluster: Cluster, name: str, **fields: object) -> None:
    cluster.new_plan(name, rpm=1_000_000, credit_grant_usd=100)
    plans = cluster.admin_call("GET", "/api/admin/plans").json()["plans"]
    plan = {k: v for k, v in next(p for p in plans if p["name"] == name).items() if k != "name"}
    cluster.admin_call("PUT", f"/api/admin/plans/{name}", json={**plan, **fields})


async def figures(cluster: Cluster, username: str) -> dict[str, int]:
    engine = create_test_engine(cluster.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            user = await session.scalar(select(User).where(User.username == username))
            assert user is not None
            charged = await session.scalar(
                select(func.coalesce(func.sum(RequestLog.credits_cost_nanos), 0)).where(
                    RequestLog.user_id == user.id
                )
            )
            holds = await session.scalar(
                select(func.count()).select_from(Hold).where(Hold.user_id == user.id)
            )
            buckets = (
                await session.execute(
                    select(
                        func.coalesce(func.sum(UsageWindowBucket.used_nanos), 0),
                        func.coalesce(func.sum(UsageWindowBucket.held_nanos), 0),
                    ).where(UsageWindowBucket.user_id == user.id, UsageWindowBucket.span_s == 3600)
                )
            ).one()
            return {
                "charged": int(charged or 0),
                "holds": int(holds or 0),
                "window_used": int(buckets[0]),
                "window_held": int(buckets[1]),
                "tokens_used": user.monthly_tokens_used,
                "tokens_held": user.monthly_tokens_held,
            }
    finally:
        await engine.dispose()


async def test_a_5h_window_of_one_dollar_is_never_passed_under_200_concurrent_requests_on_two_instances(
    two_instances: Cluster,
) -> None:
    cluster = two_instances
    plan_with(cluster, "window1", windows=[{"window": "5h", "usdLimit": 1.00}])
    user = cluster.new_user("windowed", plan="window1")

    replies = await burst(cluster.urls, user.api_key, 200, BIG)

    statuses = [reply.status for reply in replies]
    assert set(statuses) == {200, 429}, statuses
    refused = orjson.loads(next(reply for reply in replies if reply.status == 429).body)["error"]
    assert refused["type"] == "usage_window_exceeded" and refused["window"] == "5h"
    after = await figures(cluster, "windowed")
    assert after["holds"] == 0 and after["window_held"] == 0
    assert after["window_used"] == after["charged"]
    assert 0 < after["charged"] <= Money.from_usd("1.00").nanos  # passed by zero nano-dollars
    assert 1 <= statuses.count(200) <= 9  # each request holds a little over $0.10


async def test_the_monthly_token_limit_is_passed_by_at_most_the_last_admitted_request_on_two_instances(
    two_instances: Cluster,
) -> None:
    cluster = two_instances
    plan_with(cluster, "tokens20k", monthlyTokenLimit=20_000)
    user = cluster.new_user("tokened", plan="tokens20k")

    replies = await burst(cluster.urls, user.api_key, 200, BIG)

    admitted = [reply for reply in replies if reply.status == 200]
    refused = [orjson.loads(reply.body)["error"]["type"] for reply in replies if reply.status == 429]
    assert set(refused) == {"monthly_token_limit_exceeded"}
    assert 1 <= len(admitted) <= 5  # 20,000 tokens of room, each request holds ~4,050
    after = await figures(cluster, "tokened")
    assert after["tokens_held"] == 0 and after["holds"] == 0
    assert after["tokens_used"] < 20_000 + 4_100  # at most the last admitted request passes it
