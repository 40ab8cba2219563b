"""The conditions in force now, read from what settlement, the upstream pool and the plan jobs already
wrote (nothing here runs on the request path): balances, plan expiry, monthly tokens, usage windows,
Friend Key model caps, and the operator's factory keys."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import orjson
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.accounts.tables import User
from trollllm.alerts.rules import (
    Condition,
    factory_key_disabled_condition,
    low_balance_condition,
    no_healthy_key_condition,
    percent_conditions,
    plan_expiry_condition,
)
from trollllm.alerts.schemas import DEFAULT_PLAN_EXPIRY_DAYS, DEFAULT_USAGE_PERCENTS
from trollllm.alerts.tables import AlertSettings
from trollllm.billing.tables import UsageWindowBucket
from trollllm.billing.windows import BUCKET_RETENTION_S, DAY_S, HOUR_S, WindowLimit
from trollllm.crypto import mask_secrets
from trollllm.friendkeys.tables import FriendKey, FriendKeyModelLimit
from trollllm.money import Money
from trollllm.plans.tables import Plan
from trollllm.plans.windows import parse_windows
from trollllm.upstream.tables import FactoryKey

_Buckets = dict[tuple[int, int], list[tuple[int, int, int]]]  # (user, span) -> [(start, nanos, tokens)]


async def user_conditions(session: AsyncSession, now: datetime) -> list[Condition]:
    """Every active user's conditions in force (users without settings get the default thresholds)."""
    rows = (
        await session.execute(
            select(
                User.id,
                User.plan,
                User.credits_nanos,
                User.ref_credits_nanos,
                User.monthly_tokens_used,
                User.monthly_reset_date,
                User.plan_expires_at,
                Plan.monthly_token_limit,
                Plan.windows,
                AlertSettings.user_id,
                AlertSettings.low_balance_nanos,
                AlertSettings.plan_expiry_days,
                AlertSettings.usage_percents,
            )
            .join(Plan, Plan.name == User.plan)
            .outerjoin(AlertSettings, AlertSettings.user_id == User.id)
            .where(User.is_active.is_(True))
        )
    ).all()
    buckets = await _settled_buckets(session, now)
    caps = await _friend_key_caps(session, now)
    conditions: list[Condition] = []
    for row in rows:
        user_id = row[0]
        configured = row[9] is not None
        percents = tuple(orjson.loads(row[12])) if configured else DEFAULT_USAGE_PERCENTS
        low_balance = Money(row[10]) if row[10] is not None else None
        expiry_days = row[11] if configured else DEFAULT_PLAN_EXPIRY_DAYS
        conditions += low_balance_condition(user_id, Money(row[2] + row[3]), low_balance)
        conditions += plan_expiry_condition(user_id, row[1], row[6], expiry_days, now)
        monthly_used = 0 if row[5] is not None and row[5] <= now else row[4]
        if row[7] is not None:
            conditions += percent_conditions(
                user_id, "monthly_tokens", monthly_used, row[7], percents,
                type_="monthly_tokens", describe="Your monthly token use",
                data={"tokensUsed": monthly_used, "tokenLimit": row[7]},
            )  # fmt: skip
        for window in parse_windows(row[8]):
            conditions += _window_conditions(user_id, window, buckets, now, percents)
        for model_id, limit, used in caps.get(user_id, ()):
            conditions += percent_conditions(
                user_id, f"friend_key:{model_id}", used, limit, percents,
                type_="friend_key_cap", describe=f"Your Friend Key's spend on {model_id}",
                data={"modelId": model_id, "usedUsd": Money(used).to_json(),
                      "limitUsd": Money(limit).to_json()},
            )  # fmt: skip
    return conditions


def _window_conditions(
    user_id: int, window: WindowLimit, buckets: _Buckets, now: datetime, percents: tuple[int, ...]
) -> list[Condition]:
    now_s = int(now.timestamp())
    first = window.first_bucket(now_s)
    counted = [b for b in buckets.get((user_id, window.span_s), ()) if b[0] >= first]
    nanos, tokens = sum(b[1] for b in counted), sum(b[2] for b in counted)
    conditions: list[Condition] = []
    if window.usd_limit_nanos is not None:
        conditions += percent_conditions(
            user_id, f"window:{window.name}:usd", nanos, window.usd_limit_nanos, percents,
            type_="usage_window", describe=f"Your {window.name} usage window (USD)",
            data={"window": window.name, "usdUsed": Money(nanos).to_json(),
                  "usdLimit": Money(window.usd_limit_nanos).to_json()},
        )  # fmt: skip
    if window.token_limit is not None:
        conditions += percent_conditions(
            user_id, f"window:{window.name}:tokens", tokens, window.token_limit, percents,
            type_="usage_window", describe=f"Your {window.name} usage window (tokens)",
            data={"window": window.name, "tokensUsed": tokens, "tokenLimit": window.token_limit},
        )  # fmt: skip
    return conditions


async def _settled_buckets(session: AsyncSession, now: datetime) -> _Buckets:
    """Settled spend and tokens per bucket still inside some window (holds in flight are not counted)."""
    now_s = int(now.timestamp())
    bucket = UsageWindowBucket
    rows = await session.execute(
        select(bucket.user_id, bucket.span_s, bucket.start_s, bucket.used_nanos, bucket.used_tokens).where(
            or_(
                and_(bucket.span_s == HOUR_S, bucket.start_s >= now_s - DAY_S - 2 * HOUR_S),
                and_(bucket.span_s == DAY_S, bucket.start_s >= now_s - BUCKET_RETENTION_S),
            )
        )
    )
    found: _Buckets = defaultdict(list)
    for user_id, span_s, start_s, nanos, tokens in rows:
        found[(user_id, span_s)].append((int(start_s), int(nanos), int(tokens)))
    return found


async def _friend_key_caps(session: AsyncSession, now: datetime) -> dict[int, list[tuple[str, int, int]]]:
    """Each owner's enabled model caps: (model, limit, used). A reset that is due but not yet applied
    (it happens at the next request) counts as done."""
    rows = await session.execute(
        select(
            FriendKey.owner_id,
            FriendKeyModelLimit.model_id,
            FriendKeyModelLimit.limit_nanos,
            FriendKeyModelLimit.used_nanos,
            FriendKeyModelLimit.next_reset_at,
        )
        .join(FriendKey, FriendKey.id == FriendKeyModelLimit.friend_key_id)
        .where(FriendKeyModelLimit.enabled.is_(True), FriendKeyModelLimit.limit_nanos > 0)
    )
    caps: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
    for owner_id, model_id, limit, used, next_reset in rows:
        due = next_reset is not None and next_reset <= now
        caps[owner_id].append((model_id, int(limit), 0 if due else int(used)))
    return caps


async def operator_conditions(session: AsyncSession, now: datetime) -> list[Condition]:
    """Factory keys disabled, and providers none of whose factory keys is healthy now."""
    keys = (
        await session.execute(
            select(
                FactoryKey.id,
                FactoryKey.name,
                FactoryKey.provider,
                FactoryKey.status,
                FactoryKey.cooldown_until,
                FactoryKey.last_error,
            ).order_by(FactoryKey.id)
        )
    ).all()
    conditions: list[Condition] = []
    healthy: dict[str, bool] = {}
    for key_id, name, provider, status, cooldown_until, last_error in keys:
        if status == "disabled":
            error = mask_secrets(last_error)[:200] if last_error else None
            conditions.append(factory_key_disabled_condition(key_id, name, provider, error))
        usable = status == "healthy" or (
            status == "cooling_down" and (cooldown_until is None or cooldown_until <= now)
        )
        healthy[provider] = healthy.get(provider, False) or usable
    conditions += [no_healthy_key_condition(provider) for provider, ok in healthy.items() if not ok]
    return conditions
