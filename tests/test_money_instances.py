"""SPEC §10 across instances: two `trollllm serve` processes on one PostgreSQL and Redis. One code redeemed by
50 concurrent requests grants once; one webhook delivered 20 times concurrently grants once; the books
balance (`trollllm reconcile` exits 0) after each."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from helpers import Account
from instances import Cluster, gateway_cluster
from services import REDIS_URL
from stripe_fake import SECRET_KEY, WEBHOOK_SECRET, StripeFake

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
async def stripe() -> AsyncIterator[StripeFake]:
    fake = StripeFake()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def pair(
    tmp_path: Path, postgres_database_url: str, redis_prefix: str, mock_url: str, stripe: StripeFake
) -> Iterator[Cluster]:
    with gateway_cluster(
        tmp_path, database_url=postgres_database_url, redis_url=REDIS_URL, redis_prefix=redis_prefix,
        mock_url=mock_url, count=2, TROLLLLM_STRIPE_SECRET_KEY=SECRET_KEY,
        TROLLLLM_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, TROLLLLM_STRIPE_API_BASE=stripe.url,
        TROLLLLM_REDEEM_FAILURES_PER_HOUR="1000",
    ) as cluster:  # fmt: skip
        yield cluster


def reconcile_exit_status(cluster: Cluster) -> int:
    return subprocess.run(
        [sys.executable, "-m", "trollllm", "reconcile"], env=cluster.env, capture_output=True, check=False
    ).returncode


async def test_fifty_concurrent_redemptions_over_two_instances_grant_once(pair: Cluster) -> None:
    users = [pair.new_user(f"redeemer{n}", plan="free", instance=n % 2) for n in range(5)]
    code = pair.admin_call("POST", "/api/admin/redemption-codes", json={"count": 1, "amountUsd": 9}).json()[
        "codes"
    ][0]
    async with httpx.AsyncClient(timeout=60) as client:
        answers = await asyncio.gather(*(
            client.post(pair.urls[n % 2] + "/api/user/redeem", json={"code": code}, headers=users[n % 5].auth)
            for n in range(50)
        ))  # fmt: skip
    assert sorted(answer.status_code for answer in answers) == [200] + [400] * 49
    credits = [pair.user_call(user, "GET", "/api/user/me").json()["credits"] for user in users]
    assert sorted(credits) == [0, 0, 0, 0, 9]
    assert reconcile_exit_status(pair) == 0


async def test_twenty_concurrent_deliveries_of_one_webhook_over_two_instances_grant_once(
    pair: Cluster, stripe: StripeFake
) -> None:
    buyer: Account = pair.new_user("buyer", plan="free")
    async with httpx.AsyncClient(timeout=60) as client:  # async: the fake Stripe serves on this loop
        started = await client.post(
            pair.urls[0] + "/api/user/checkout", json={"amountUsd": 20}, headers=buyer.auth
        )
    url = started.json()["url"]
    event = stripe.paid(url.rsplit("/", 1)[1])
    answers = await asyncio.gather(*(
        stripe.deliver(event, url=pair.urls[n % 2] + "/api/webhooks/stripe") for n in range(20)
    ))  # fmt: skip
    assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers]
    assert sorted(answer.json()["outcome"] for answer in answers) == ["duplicate"] * 19 + ["granted"]
    assert pair.user_call(buyer, "GET", "/api/user/me").json()["credits"] == 20
    assert reconcile_exit_status(pair) == 0
