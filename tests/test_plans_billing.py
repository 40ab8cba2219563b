"""`GET /api/user/billing` and `GET /api/user/usage` (SPEC §7) agree with the request logs and the ledger."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from plan_helpers import burst, chat_body, set_user, user_row
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World
from sqlalchemy import func, select

from trollllm.billing.tables import LedgerEntry
from trollllm.db import transaction
from trollllm.money import Money
from trollllm.plans.calendar import month_start
from trollllm.plans.user_routes import usage_percentage
from trollllm.usage.tables import RequestLog

BILLING, USAGE = "/api/user/billing", "/api/user/usage"
DEV_LIMIT = 15_000_000


def say(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def friend_key_of(world: World) -> str:
    client = world.gateway.client
    created = await client.post("/api/user/friend-key", headers=world.user.auth)
    assert created.status_code == 201, created.text
    limits = [{"modelId": OPENAI_MODEL, "limitUsd": 5, "enabled": True}]
    put = await client.put(
        "/api/user/friend-key/limits", headers=world.user.auth, json={"modelLimits": limits}
    )
    assert put.status_code == 200, put.text
    key: str = created.json()["friendKey"]
    return key


async def mixed_traffic(world: World) -> None:
    """Own-key and friend-key requests on both formats, streamed and not, successful and failed."""
    key = world.user.api_key
    url = [world.base_url]
    for body in (
        chat_body(),
        chat_body(stream=True),
        chat_body(messages=say("[mock status=500]")),
        chat_body(messages=say("count please [mock drop_after=3]"), stream=True),
        chat_body(messages=say("[mock no_usage=1]")),
    ):
        await burst(url, key, 2, body)
    await burst(url, await friend_key_of(world), 3, chat_body())
    client = world.gateway.client
    for stream in (False, True):
        response = await client.post(
            "/v1/messages",
            headers={"x-api-key": key},
            json={"model": ANTHROPIC_MODEL, "max_tokens": 30, "messages": say("hi"), "stream": stream},
        )
        assert response.status_code == 200


async def insert_old_log(world: World, user_id: int) -> None:
    """A request of last month: not in this month's figures."""
    async with transaction(world.state.sessions) as session:
        session.add(
            RequestLog(
                request_id=f"req_{uuid.uuid4().hex}",
                user_id=user_id,
                model=OPENAI_MODEL,
                input_tokens=1000,
                output_tokens=1000,
                credits_cost_nanos=12345,
                status_code=200,
                is_success=True,
                created_at=datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC),
            )
        )


async def test_billing_and_usage_equal_the_logs_and_the_ledger(world: World) -> None:
    user = await user_row(world)
    await insert_old_log(world, user.id)
    await mixed_traffic(world)
    since = month_start(world.state.clock.now())
    async with world.state.sessions() as session:
        logs = list(
            await session.scalars(
                select(RequestLog).where(RequestLog.user_id == user.id, RequestLog.created_at >= since)
            )
        )
        ledger = (
            await session.execute(
                select(
                    func.sum(LedgerEntry.credits_delta_nanos), func.sum(LedgerEntry.ref_credits_delta_nanos)
                ).where(LedgerEntry.user_id == user.id)
            )
        ).one()
        charged = await session.scalar(
            select(func.sum(LedgerEntry.credits_delta_nanos + LedgerEntry.ref_credits_delta_nanos)).where(
                LedgerEntry.user_id == user.id, LedgerEntry.kind == "charge"
            )
        )
    assert any(log.is_friend_key_request for log in logs) and any(not log.is_success for log in logs)
    expected: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    for log in logs:
        row = expected[log.model]
        row["modelId"] = log.model
        row["requests"] += 1
        row["failedRequests"] += not log.is_success
        row["inputTokens"] += log.input_tokens
        row["outputTokens"] += log.output_tokens
        row["cacheWriteTokens"] += log.cache_write_tokens
        row["cacheHitTokens"] += log.cache_hit_tokens
        row["totalTokens"] += (
            log.input_tokens + log.output_tokens + log.cache_write_tokens + log.cache_hit_tokens
        )
        row["spend"] += log.credits_cost_nanos
        tokens = log.input_tokens + log.output_tokens + log.cache_write_tokens + log.cache_hit_tokens
        side = "byok" if log.is_byok else "platform"
        row[f"{side}Requests"] += 1
        row[f"{side}Tokens"] += tokens
        row[f"{'platform' if log.is_byok else 'byok'}Requests"] += 0
        row[f"{'platform' if log.is_byok else 'byok'}Tokens"] += 0
    month_tokens = sum(row["totalTokens"] for row in expected.values())

    usage = (await world.gateway.client.get(USAGE, headers=world.user.auth)).json()
    by_model = {row["modelId"]: row for row in usage["byModel"]}
    assert sorted(by_model) == sorted(expected) == [ANTHROPIC_MODEL, OPENAI_MODEL]
    assert sum(Money.from_usd(row["spendUsd"]).nanos for row in usage["byModel"]) == -int(charged or 0)
    for model_id, row in expected.items():
        spend = Money(row.pop("spend"))
        assert Money.from_usd(by_model[model_id].pop("spendUsd")) == spend
        assert by_model[model_id] == row
    assert usage["tokensUsed"] == month_tokens > 0
    assert (usage["tokenLimit"], usage["remaining"]) == (DEV_LIMIT, DEV_LIMIT - month_tokens)
    assert usage["percentage"] == round(month_tokens * 100 / DEV_LIMIT, 2)
    assert (usage["plan"], usage["usingOwnKeys"]) == ("dev", False)
    assert usage["periodStart"] == "2026-01-01T00:00:00Z" and usage["periodEnd"] == "2026-02-01T00:00:00Z"

    billing = (await world.gateway.client.get(BILLING, headers=world.user.auth)).json()
    assert Money.from_usd(billing["credits"]).nanos == int(ledger[0])
    assert Money.from_usd(billing["refCredits"]).nanos == int(ledger[1] or 0)
    assert billing["monthlyTokensUsed"] == month_tokens
    assert billing["monthlyTokensLimit"] == DEV_LIMIT and not billing["monthlyTokensUnlimited"]
    assert billing["usagePercentage"] == usage["percentage"]
    assert billing["totalTokens"] == DEV_LIMIT
    assert billing["totalTokensRemaining"] == DEV_LIMIT - month_tokens
    assert billing["planLimits"] == {
        "monthlyTokens": DEV_LIMIT,
        "rpm": 300,
        "features": ["api_access", "friend_key", "byok"],
    }
    assert billing["plan"] == "dev"
    assert billing["monthlyResetDate"] == "2026-02-01T00:00:00Z"
    assert billing["planStartDate"] == "2026-01-15T12:00:00Z"
    assert billing["planExpiresAt"] == "2026-02-15T12:00:00Z"


async def test_a_free_user_sees_zero_limits(world: World) -> None:
    billing = await world.gateway.client.get(BILLING, headers=world.admin.auth)
    assert billing.status_code == 200
    body = billing.json()
    assert (body["plan"], body["credits"], body["monthlyTokensLimit"], body["usagePercentage"]) == (
        "free",
        0,
        0,
        0,
    )
    assert body["planLimits"] == {"monthlyTokens": 0, "rpm": 0, "features": ["byok"]}
    assert body["planExpiresAt"] is None and body["planStartDate"] is None
    usage = (await world.gateway.client.get(USAGE, headers=world.admin.auth)).json()
    assert (usage["tokensUsed"], usage["tokenLimit"], usage["remaining"], usage["percentage"]) == (0, 0, 0, 0)
    assert usage["byModel"] == []


async def test_an_unlimited_plan_is_shown_as_null_limits(world: World) -> None:
    await world.admin_call("PATCH", "/api/admin/users/alice", json={"plan": "pro-troll"})
    await set_user(world, monthly_tokens_used=123_456_789)
    billing = (await world.gateway.client.get(BILLING, headers=world.user.auth)).json()
    assert billing["monthlyTokensUnlimited"] is True
    assert billing["monthlyTokensLimit"] is None and billing["usagePercentage"] is None
    assert billing["planLimits"]["monthlyTokens"] is None
    assert billing["totalTokens"] is None and billing["totalTokensRemaining"] is None
    assert billing["monthlyTokensUsed"] == 123_456_789
    usage = (await world.gateway.client.get(USAGE, headers=world.user.auth)).json()
    assert (usage["tokenLimit"], usage["remaining"], usage["percentage"]) == (None, None, None)


async def test_the_endpoints_apply_a_due_expiry_and_monthly_reset(world: World) -> None:
    past = datetime(2026, 1, 1, tzinfo=UTC)
    await set_user(world, plan_expires_at=past, monthly_reset_date=past, monthly_tokens_used=77)
    billing = (await world.gateway.client.get(BILLING, headers=world.user.auth)).json()
    assert (billing["plan"], billing["credits"], billing["totalTokens"]) == ("free", 0, 0)
    assert billing["monthlyTokensUsed"] == 0 and billing["monthlyResetDate"] == "2026-02-01T00:00:00Z"
    user = await user_row(world)
    assert user.plan == "free" and user.monthly_tokens_used == 0


@pytest.mark.parametrize("path", [BILLING, USAGE])
async def test_the_endpoints_need_a_session(world: World, path: str) -> None:
    async with httpx.AsyncClient(base_url=world.base_url) as anonymous:  # no session cookie
        assert (await anonymous.get(path)).status_code == 401
        bad = await anonymous.get(path, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401


@pytest.mark.parametrize(
    ("used", "limit", "expected"),
    [
        (0, None, None),
        (5, None, None),
        (0, 0, 0.0),
        (1, 0, 100.0),
        (1, 3, 33.33),
        (2, 3, 66.67),
        (1004, 1000, 100.4),
    ],
)
def test_usage_percentage(used: int, limit: int | None, expected: float | None) -> None:
    assert usage_percentage(used, limit) == expected
