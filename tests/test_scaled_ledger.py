"""Concurrent spend by one user over three instances keeps the ledger exact (issue 17): ≥ 10,000 requests
spread over the instances, upstream faults injected (errors, streams cut mid-way), the credits running out
before the end; then 0 nano-USD lost: Σ ledger = balance, grants − charges = balance, never negative, no
hold left, and every successful request charged exactly its deterministic cost."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp
from instances import ANTHROPIC_MODEL, OPENAI_MODEL, Cluster, report_figure
from sqlalchemy import func, select

from trollllm.accounts.tables import User
from trollllm.billing.ledger import CHARGE
from trollllm.billing.tables import Hold, LedgerEntry
from trollllm.db import create_sessionmaker, create_test_engine
from trollllm.mockupstream import count_input_tokens
from trollllm.money import Money, Prices, TokenUsage, cost_of, parse_price_per_mtok
from trollllm.usage.tables import RequestLog

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
