"""The scaled shape (issue 17, SPEC §2): three `trollllm serve` processes on one PostgreSQL database and one
Redis, clients spreading their requests over them. RPM is one budget, and a change made on one instance
applies on every other within 1 s (the delay measured is printed at the end of the run)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
from instances import OPENAI_MODEL, Cluster, report_figure
from plan_helpers import burst, chat_body

PROPAGATION_BOUND_S = 1.0
_delays: list[float] = []


async def test_a_burst_split_over_three_instances_admits_exactly_the_rpm(cluster: Cluster) -> None:
    cluster.new_plan("rpm60", rpm=60)
    user = cluster.new_user("burster", plan="rpm60")
    replies = await burst(cluster.urls, user.api_key, 120)
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [200] * 60 + [429] * 60
    assert {reply.headers["x-ratelimit-limit-requests"] for reply in replies} == {"60"}


async def ask(base_url: str, key: str) -> tuple[int, dict[str, str], bytes]:
    """One small chat completion; its status, headers and body."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client,
        client.post(
            base_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=chat_body()
        ) as response,
    ):
        return response.status, dict(response.headers), await response.read()


async def propagation_delay(
    cluster: Cluster, change: Callable[[], object], applied: Callable[[str], Awaitable[bool]]
) -> float:
    """Make `change` (on instance 0), then poll every instance until `applied(base_url)`; the longest wait
    in seconds (recorded for the summary). Fails past twice the bound."""
    await asyncio.to_thread(change)
    changed_at = time.monotonic()

    async def until_applied(base_url: str) -> float:
        while not await applied(base_url):
            assert time.monotonic() - changed_at < 2 * PROPAGATION_BOUND_S, f"{base_url} never saw the change"
            await asyncio.sleep(0.005)
        return time.monotonic() - changed_at

    delay = max(await asyncio.gather(*(until_applied(url) for url in cluster.urls)))
    _delays.append(delay)
    report_figure("max propagation delay", f"{max(_delays) * 1000:.1f} ms over {len(_delays)} changes")
    return delay


async def test_a_rotated_key_is_refused_on_every_instance_within_1s(cluster: Cluster) -> None:
    user = cluster.new_user("rotator")
    assert [(await ask(url, user.api_key))[0] for url in cluster.urls] == [200] * 3

    async def refused(url: str) -> bool:
        return (await ask(url, user.api_key))[0] == 401

    assert (
        await propagation_delay(
            cluster, lambda: cluster.user_call(user, "POST", "/api/user/api-key/rotate"), refused
        )
        < PROPAGATION_BOUND_S
    )


async def test_a_revoked_key_is_refused_on_every_instance_within_1s(cluster: Cluster) -> None:
    user = cluster.new_user("revoked")
    assert [(await ask(url, user.api_key))[0] for url in cluster.urls] == [200] * 3

    async def refused(url: str) -> bool:
        return (await ask(url, user.api_key))[0] == 401

    delay = await propagation_delay(
        cluster, lambda: cluster.admin_call("POST", "/api/admin/keys/revoked/revoke"), refused
    )
    assert delay < PROPAGATION_BOUND_S


async def test_a_deleted_friend_key_is_refused_on_every_instance_within_1s(cluster: Cluster) -> None:
    owner = cluster.new_user("befriended")
    friend_key = cluster.user_call(owner, "POST", "/api/user/friend-key").json()["friendKey"]
    limits = [{"modelId": OPENAI_MODEL, "limitUsd": 1}]
    cluster.user_call(owner, "PUT", "/api/user/friend-key/limits", json={"modelLimits": limits})
    assert [(await ask(url, friend_key))[0] for url in cluster.urls] == [200] * 3

    async def refused(url: str) -> bool:
        return (await ask(url, friend_key))[0] == 401

    delay = await propagation_delay(
        cluster, lambda: cluster.user_call(owner, "DELETE", "/api/user/friend-key"), refused
    )
    assert delay < PROPAGATION_BOUND_S


async def test_a_deactivated_user_is_refused_on_every_instance_within_1s(cluster: Cluster) -> None:
    user = cluster.new_user("deactivated")
    assert [(await ask(url, user.api_key))[0] for url in cluster.urls] == [200] * 3

    async def refused(url: str) -> bool:
        status, _, body = await ask(url, user.api_key)
        return status == 401 and b"owner_inactive" in body

    delay = await propagation_delay(
        cluster,
        lambda: cluster.admin_call("PATCH", "/api/admin/users/deactivated", json={"isActive": False}),
        refused,
    )
    assert delay < PROPAGATION_BOUND_S


async def test_a_price_change_applies_on_every_instance_within_1s(cluster: Cluster) -> None:
    user = cluster.new_user("priced")
    before = {(await ask(url, user.api_key))[1]["x-trollllm-cost-usd"] for url in cluster.urls}
    assert len(before) == 1
    models = cluster.admin_call("GET", "/api/admin/models").json()
    row = next(model for model in models if model["modelId"] == OPENAI_MODEL)

    def raise_price() -> None:
        cluster.admin_call("PUT", f"/api/admin/models/{OPENAI_MODEL}", json={**row, "outputPricePerMTok": 50})

    async def repriced(url: str) -> bool:
        status, headers, _ = await ask(url, user.api_key)
        assert status == 200
        return headers["x-trollllm-cost-usd"] not in before

    try:
        assert await propagation_delay(cluster, raise_price, repriced) < PROPAGATION_BOUND_S
    finally:
        cluster.admin_call("PUT", f"/api/admin/models/{OPENAI_MODEL}", json=row)
