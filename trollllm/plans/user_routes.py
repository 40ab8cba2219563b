"""The user's plan, billing and usage (SPEC §7): `GET /api/user/billing` and `GET /api/user/usage`.

Both first apply what is due (an expired plan goes back to free, a passed monthly reset date zeroes the
month's counter), so they never show a stale plan or last month's tokens.

Unlimited plans (`monthlyTokenLimit` null on the plan) show `null` for every limit, remainder and
percentage, and `monthlyTokensUnlimited: true`. A limit of 0 (free) shows 0 % when nothing was used and
100 % otherwise. Percentages are not capped: the request that crosses the limit is served, so 100.4 % can
be true.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import case, func, select

from trollllm.accounts.sessions import CurrentUser
from trollllm.accounts.tables import User
from trollllm.byok.tables import ProviderKey
from trollllm.money import Money
from trollllm.plans.calendar import month_start, next_month_start
from trollllm.plans.expiry import expire_plan_if_due, reset_monthly_usage
from trollllm.plans.tables import Plan
from trollllm.plans.windows import WindowUsageView, parse_windows, window_report
from trollllm.state import AppState, get_state
from trollllm.usage.tables import RequestLog

router = APIRouter(tags=["billing"])

_UNLIMITED = "null when the plan is unlimited"


class PlanLimitsView(BaseModel):
    """What the user's plan allows."""

    monthlyTokens: int | None = Field(description=f"tokens per calendar month (UTC); {_UNLIMITED}")
    rpm: int = Field(description="requests per minute, shared by the user's own key and Friend Key")
    features: list[str] = Field(
        description="`api_access` and `friend_key` on plans with API access; `byok` when the plan allows "
        "requests with the user's own provider keys"
    )


class BillingView(BaseModel):
    """`GET /api/user/billing`."""

    plan: str
    planLimits: PlanLimitsView
    credits: float
    refCredits: float
    totalTokens: int | None = Field(description=f"the token quota of the current plan period; {_UNLIMITED}")
    totalTokensRemaining: int | None = Field(
        description=f"totalTokens − monthlyTokensUsed, never below 0; {_UNLIMITED}"
    )
    monthlyTokensUsed: int
    monthlyTokensLimit: int | None = Field(description=f"the plan's monthly token limit; {_UNLIMITED}")
    monthlyTokensUnlimited: bool
    monthlyResetDate: datetime | None = Field(description="the next reset: 00:00 UTC on the 1st")
    usagePercentage: float | None = Field(
        description=f"monthlyTokensUsed / monthlyTokensLimit × 100, 2 decimals, not capped; {_UNLIMITED}"
    )
    planStartDate: datetime | None
    planExpiresAt: datetime | None
    windows: list[WindowUsageView] = Field(description="the plan's usage windows (SPEC §5), rolling")


class ModelUsageView(BaseModel):
    """One model's requests this month (own key and Friend Key; failed ones included), split between the
    platform's keys (charged) and the user's own provider keys (BYOK, not charged)."""

    modelId: str
    requests: int
    failedRequests: int
    inputTokens: int
    outputTokens: int
    cacheWriteTokens: int
    cacheHitTokens: int
    totalTokens: int
    spendUsd: float = Field(description="charged for this model (requests on own provider keys cost 0)")
    platformRequests: int = Field(description="requests sent with the platform's keys")
    platformTokens: int = Field(description="their input + output + cache tokens")
    byokRequests: int = Field(description="requests sent with the user's own provider key")
    byokTokens: int = Field(description="their input + output + cache tokens (not counted against the limit)")


class UsageView(BaseModel):
    """`GET /api/user/usage`: the month's token widget and the per-model breakdown."""

    tokensUsed: int = Field(description="tokens counted against the monthly limit this month")
    tokenLimit: int | None = Field(description=f"the plan's monthly token limit; {_UNLIMITED}")
    remaining: int | None = Field(description=f"tokenLimit − tokensUsed, never below 0; {_UNLIMITED}")
    percentage: float | None = Field(description=f"tokensUsed / tokenLimit × 100, 2 decimals; {_UNLIMITED}")
    plan: str
    usingOwnKeys: bool = Field(description="true when the user has stored a provider key of their own")
    ownKeyProviders: list[str] = Field(description="the providers the user has stored a key for")
    periodStart: datetime = Field(description="00:00 UTC on the 1st of this month")
    periodEnd: datetime = Field(description="00:00 UTC on the 1st of next month (exclusive)")
    byModel: list[ModelUsageView]


def usage_percentage(used: int, limit: int | None) -> float | None:
    """used / limit × 100 rounded to 2 decimals; None when unlimited; a 0 limit is 0 % or 100 %."""
    if limit is None:
        return None
    if limit == 0:
        return 100.0 if used > 0 else 0.0
    return round(used * 100 / limit, 2)


def plan_features(plan: Plan) -> list[str]:
    """The plan's features as the billing view names them."""
    features = ["api_access", "friend_key"] if plan.api_access else []
    if plan.byok_rpm > 0:
        features.append("byok")
    return features


async def current_account(state: AppState, user: User) -> tuple[User, Plan]:
    """The user after applying a due expiry and monthly reset, and their plan row."""
    now = state.clock.now()
    changed = await expire_plan_if_due(state, user.id, user.plan_expires_at)
    if user.monthly_reset_date is None or user.monthly_reset_date <= now:
        changed = bool(await reset_monthly_usage(state.sessions, now, user_id=user.id)) or changed
    async with state.sessions() as session:
        if changed:
            user = await session.get_one(User, user.id, populate_existing=True)
        plan = await session.get_one(Plan, user.plan)
    return user, plan


@router.get("/api/user/billing", response_model=BillingView)
async def billing(user: CurrentUser, request: Request) -> BillingView:
    """The caller's plan, its limits, balances and this month's token use."""
    state = get_state(request)
    user, plan = await current_account(state, user)
    windows = await window_report(state.db, user.id, parse_windows(plan.windows), state.clock.now())
    limit = plan.monthly_token_limit
    used = user.monthly_tokens_used
    total = user.total_tokens
    return BillingView(
        plan=plan.name,
        planLimits=PlanLimitsView(monthlyTokens=limit, rpm=plan.rpm, features=plan_features(plan)),
        credits=Money(user.credits_nanos).to_json(),
        refCredits=Money(user.ref_credits_nanos).to_json(),
        totalTokens=total,
        totalTokensRemaining=None if total is None else max(total - used, 0),
        monthlyTokensUsed=used,
        monthlyTokensLimit=limit,
        monthlyTokensUnlimited=limit is None,
        monthlyResetDate=user.monthly_reset_date,
        usagePercentage=usage_percentage(used, limit),
        planStartDate=user.plan_start_date,
        planExpiresAt=user.plan_expires_at,
        windows=windows,
    )


@router.get("/api/user/usage", response_model=UsageView)
async def usage(user: CurrentUser, request: Request) -> UsageView:
    """This month's tokens against the plan's limit, and per model: requests, tokens and spend.

    The breakdown is one grouped query over this month's request logs of the caller (Friend Key requests
    are the owner's), so it equals the request history exactly.
    """
    state = get_state(request)
    user, plan = await current_account(state, user)
    now = state.clock.now()
    start, end = month_start(now), next_month_start(now)
    log = RequestLog
    tokens = log.input_tokens + log.output_tokens + log.cache_write_tokens + log.cache_hit_tokens
    byok = log.is_byok.is_(True)
    statement = (
        select(
            log.model,
            func.count(),
            func.sum(case((log.is_success.is_(False), 1), else_=0)),
            func.sum(log.input_tokens),
            func.sum(log.output_tokens),
            func.sum(log.cache_write_tokens),
            func.sum(log.cache_hit_tokens),
            func.sum(log.credits_cost_nanos),
            func.sum(case((byok, 1), else_=0)),
            func.sum(case((byok, tokens), else_=0)),
        )
        .where(log.user_id == user.id, log.created_at >= start, log.created_at < end)
        .group_by(log.model)
        .order_by(log.model)
    )
    async with state.sessions() as session:
        rows = (await session.execute(statement)).all()
        own_keys = list(
            (
                await session.scalars(
                    select(ProviderKey.provider)
                    .where(ProviderKey.user_id == user.id)
                    .order_by(ProviderKey.provider)
                )
            ).all()
        )
    by_model = []
    for row in rows:
        model_id, requests, failed, input_tokens, output_tokens, cache_write, cache_hit, cost = row[:8]
        byok_requests, byok_tokens = int(row[8] or 0), int(row[9] or 0)
        counts = [int(value or 0) for value in (input_tokens, output_tokens, cache_write, cache_hit)]
        by_model.append(
            ModelUsageView(
                modelId=model_id,
                requests=int(requests),
                failedRequests=int(failed or 0),
                inputTokens=counts[0],
                outputTokens=counts[1],
                cacheWriteTokens=counts[2],
                cacheHitTokens=counts[3],
                totalTokens=sum(counts),
                spendUsd=Money(int(cost or 0)).to_json(),
                platformRequests=int(requests) - byok_requests,
                platformTokens=sum(counts) - byok_tokens,
                byokRequests=byok_requests,
                byokTokens=byok_tokens,
            )
        )
    limit = plan.monthly_token_limit
    used = user.monthly_tokens_used
    return UsageView(
        tokensUsed=used,
        tokenLimit=limit,
        remaining=None if limit is None else max(limit - used, 0),
        percentage=usage_percentage(used, limit),
        plan=plan.name,
        usingOwnKeys=bool(own_keys),
        ownKeyProviders=own_keys,
        periodStart=start,
        periodEnd=end,
        byModel=by_model,
    )
