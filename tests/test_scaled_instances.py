"""The scaled shape (issue 17, SPEC §2): three `trollllm serve` processes on one PostgreSQL database and one
Redis, clients spreading their requests over them. RPM is one budget; a change made on one instance applies
on every other within 1 s; concurrent spend by one user over all of them keeps the ledger exact (the delay
and the spend's figures are printed at the end of the run)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from instances import ANTHROPIC_MODEL, OPENAI_MODEL, Cluster, report_figure
from plan_helpers import burst, chat_body
from sqlalchemy import func, select

from trollllm.accounts.tables import User
from trollllm.billing.ledger import CHARGE
from trollllm.billing.tables import Hold, LedgerEntry
from trollllm.db import create_sessionmaker, create_test_engine
from trollllm.mockupstream import count_input_tokens
from trollllm.money import Money, Prices, TokenUsage, cost_of, parse_price_per_mtok
from trollllm.usage.tables import RequestLog

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


# --- concurrent spend: the ledger stays exact ----------------------------------------------------------
# ≥ 10,000 requests by one user spread over the instances, upstream faults injected (errors, streams cut
# mid-way), the credits running out before the end; then 0 nano-USD lost: Σ ledger = balance, grants −
# charges = balance, never negative, no hold left, every successful request charged exactly its cost.

REQUESTS = 10_000
CONCURRENCY = 48
REPLY_TOKENS = 16  # the mock's default reply, under max_tokens
PRICES = Prices(parse_price_per_mtok(5), parse_price_per_mtok(25))
# About 0.5 ¢ per request: the credits run out around request 8,000, so the last ones meet an empty balance.
CREDITS = Money.from_usd("3.6")


@dataclass(frozen=True)
class Sent:
    """One request as sent: where, what, and whether its answer is a normal one (not a fault)."""

    path: str
    body: dict[str, Any]
    normal: bool

    @property
    def expected_cost(self) -> Money:
        """What a normal answer costs: the mock's deterministic token counts at the model's prices."""
        return cost_of(TokenUsage(count_input_tokens(self.body), REPLY_TOKENS), PRICES)


def request_number(i: int) -> Sent:
    """The i-th request: mostly plain calls in both formats and streams; about one in 30 meets an upstream
    fault: the provider refuses it (400, returned as is), cuts its stream after 3 chunks (charged what was
    delivered), or is overloaded (503, Retry-After 1) on each key it is retried on (they cool down 1 s)."""
    words = " ".join(["word"] * (i % 13))
    kind = i % 100
    if kind == 0:
        content, normal = f"refused {words} [mock status=400]", False
    elif kind in (2, 3):
        content, normal = f"cut {words} [mock drop_after=3]", False
    elif i % 500 == 7:
        content, normal = f"fail {words} [mock status=503 retry_after=1]", False
    else:
        content, normal = f"hello {words}", True
    messages = [{"role": "user", "content": content}]
    body: dict[str, Any] = {"max_tokens": 20, "messages": messages}
    if kind % 5 == 1:
        return Sent("/v1/messages", {"model": ANTHROPIC_MODEL, **body}, normal)
    if kind % 3 == 0 or kind in (2, 3):
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return Sent("/v1/chat/completions", {"model": OPENAI_MODEL, **body}, normal)


async def spend(cluster: Cluster, key: str) -> list[tuple[Sent, int, str]]:
    """Every request, spread over the instances at `CONCURRENCY`; (request, status, request id)."""
    outcomes: list[tuple[Sent, int, str]] = []
    queue = iter(range(REQUESTS))
    headers = {"Authorization": f"Bearer {key}", "x-api-key": key, "anthropic-version": "2023-06-01"}
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as client:

        async def worker(number: int) -> None:
            base_url = cluster.urls[number % len(cluster.urls)]
            for i in queue:
                sent = request_number(i)
                async with client.post(base_url + sent.path, headers=headers, json=sent.body) as response:
                    with contextlib.suppress(aiohttp.ClientPayloadError):  # a stream cut by the fault
                        await response.read()
                    outcomes.append((sent, response.status, response.headers["x-request-id"]))

        await asyncio.gather(*(worker(number) for number in range(CONCURRENCY)))
    return outcomes


async def books(database_url: str, username: str) -> dict[str, Any]:
    """The user's balance, ledger sums, charges by request, logged costs by request and open holds."""
    engine = create_test_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            user = await session.scalar(select(User).where(User.username == username))
            assert user is not None
            columns = (LedgerEntry.kind, LedgerEntry.credits_delta_nanos, LedgerEntry.ref_credits_delta_nanos)
            entries = (
                await session.execute(
                    select(*columns, LedgerEntry.request_id).where(LedgerEntry.user_id == user.id)
                )
            ).all()
            logged = (
                await session.execute(
                    select(RequestLog.request_id, RequestLog.credits_cost_nanos).where(
                        RequestLog.user_id == user.id
                    )
                )
            ).all()
            holds = await session.scalar(
                select(func.count()).select_from(Hold).where(Hold.user_id == user.id)
            )
    finally:
        await engine.dispose()
    charged: Counter[str] = Counter()
    for kind, credits, ref_credits, request_id in entries:
        if kind == CHARGE:
            charged[request_id] += -(credits + ref_credits)
    return {
        "balance": user.credits_nanos + user.ref_credits_nanos,
        "credits": user.credits_nanos,
        "held": user.held_nanos,
        "ledger_sum": sum(credits + ref for _, credits, ref, _ in entries),
        "grants": sum(credits + ref for kind, credits, ref, _ in entries if kind != CHARGE),
        "charges": sum(charged.values()),
        "charged": charged,
        "logged": {request_id: cost for request_id, cost in logged},
        "holds": holds,
    }


async def test_ten_thousand_concurrent_requests_over_three_instances_lose_no_nano_dollar(
    cluster: Cluster,
) -> None:
    cluster.new_plan("bulk", rpm=1_000_000, credit_grant_usd=0)
    user = cluster.new_user("spender", plan="bulk")
    cluster.admin_call(
        "POST",
        "/api/admin/users/spender/credits",
        json={"amountUsd": CREDITS.to_json(), "balance": "credits", "reason": "the run's budget"},
    )
    started = time.monotonic()
    outcomes = await spend(cluster, user.api_key)
    elapsed = time.monotonic() - started
    after = await books(cluster.database_url, "spender")

    statuses = Counter(status for _, status, _ in outcomes)
    successes = [(sent, request_id) for sent, status, request_id in outcomes if status == 200 and sent.normal]
    wrong = [
        (request_id, after["charged"][request_id], sent.expected_cost.nanos)
        for sent, request_id in successes
        if after["charged"][request_id] != sent.expected_cost.nanos
    ]
    unlogged = {rid: n for rid, n in after["charged"].items() if after["logged"].get(rid) != n}
    lost = (
        abs(after["ledger_sum"] - after["balance"])
        + abs(after["grants"] - after["charges"] - after["balance"])
        + sum(abs(charged - expected) for _, charged, expected in wrong)
    )
    report_figure(
        "concurrent spend over 3 instances",
        f"{len(outcomes)} requests in {elapsed:.1f} s ({len(outcomes) / elapsed:.0f} req/s), "
        f"statuses {dict(sorted(statuses.items()))}, {len(successes)} charged exactly, "
        f"nano-USD lost: {lost}",
    )
    assert len(outcomes) == REQUESTS
    assert statuses[402] > 0, "the credits ran out before the end"
    assert statuses[400] > 0 and statuses[503] > 0 and len(successes) > REQUESTS // 2
    assert after["grants"] == CREDITS.nanos
    assert after["ledger_sum"] == after["balance"], "Σ ledger = balance"
    assert after["grants"] - after["charges"] == after["balance"], "grants − charges = balance"
    assert after["credits"] >= 0 and after["balance"] >= 0, "never negative"
    assert after["held"] == 0 and after["holds"] == 0, "every hold settled"
    assert not wrong, "every successful request charged exactly its cost"
    assert not unlogged, "every charge is the cost its request log shows"
    assert lost == 0
