"""Plan rules on the proxy (SPEC §5, §6): requests per minute per owner, and the monthly token limit.

The gate calls `enforce_plan_limits` once per proxied request, after the key, its owner and the plan's API
access are checked and after the body has parsed, before the model is resolved and the hold placed. So a
request refused for its key or its body costs nothing, while one refused later (unknown model, 402) has
used a slot of the minute, as the SPEC §6 order puts the rate limit before those checks.

The budget is keyed by the owner's user id: an owner's own key and their friend key share it. It lives in
the app's limiter (Redis when configured, so every instance shares one exact sliding window). When Redis
does not answer in time, `trollllm.ratelimit.fallback` decides locally with ⌈RPM / instances⌉ per instance
until Redis is back (never unlimited), logs the outage once at error level and counts it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from trollllm.billing.windows import WindowLimit
from trollllm.errors import MonthlyTokenLimitExceeded, RateLimited
from trollllm.plans.calendar import next_month_start
from trollllm.plans.expiry import reset_monthly_usage
from trollllm.ratelimit.fallback import RateLimitStatus

if TYPE_CHECKING:
    from trollllm.state import AppState

logger = logging.getLogger("trollllm.ratelimit")

RPM_WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class PlanStatus:
    """The owner's plan limits and monthly counter, as read with the key."""

    rpm: int
    monthly_token_limit: int | None
    monthly_tokens_used: int
    monthly_reset_date: datetime | None
    byok_rpm: int = 0  # requests per minute on the user's own provider keys
    name: str = ""
    windows: tuple[WindowLimit, ...] = ()  # the plan's usage windows
    models: frozenset[str] | None = None  # the model ids the plan allows (None: all)


async def enforce_plan_limits(
    state: AppState, user_id: int, plan: PlanStatus, *, for_friend_key: bool = False, own_key: bool = False
) -> RateLimitStatus:
    """SPEC §6 order: 429 `rate_limit_exceeded` (RPM), then 429 `monthly_token_limit_exceeded`.

    `user_id` and `plan` are the key owner's. Resets the owner's monthly counter first when its reset date
    has passed (lazily, once across instances). Returns the RPM decision, whose headers go on the
    response; both 429s carry them too. A Friend Key holder is not shown the owner's token counts.

    A request on the user's own provider key (`own_key`) has its own window, the plan's BYOK RPM, and no
    monthly token limit (SPEC §5).
    """
    rpm = plan.byok_rpm if own_key else plan.rpm
    status = await state.limits.hit(f"rpm-byok:{user_id}" if own_key else f"rpm:{user_id}", rpm, RPM_WINDOW_S)
    if not status.allowed:
        error = RateLimited(
            f"Rate limit exceeded: the plan allows {rpm} requests per minute"
            + (" on your own provider keys" if own_key else "")
            if status.shared
            else f"Rate limit exceeded: {status.limit} requests per minute on this instance while the "
            "shared rate limiter is unreachable",
            retry_after_s=math.ceil(status.retry_after_s),
        )
        error.headers.update(status.headers)
        raise error
    if own_key:
        return status
    used = plan.monthly_tokens_used
    now = state.clock.now()
    if plan.monthly_reset_date is None or plan.monthly_reset_date <= now:
        await reset_monthly_usage(state.sessions, now, user_id=user_id)
        used = 0
    limit = plan.monthly_token_limit
    if limit is not None and used >= limit:
        error = monthly_limit_error(plan, used, now, for_friend_key=for_friend_key)
        error.headers.update(status.headers)
        raise error
    return status


def monthly_limit_error(
    plan: PlanStatus, used: int, now: datetime, *, for_friend_key: bool, in_flight: int = 0
) -> MonthlyTokenLimitExceeded:
    """The 429 `monthly_token_limit_exceeded`: `used` tokens this month and `in_flight` tokens held by
    requests in flight leave no room (SPEC §5). A Friend Key holder is not shown the owner's counts."""
    limit = plan.monthly_token_limit
    resets_at = next_month_start(now)
    if plan.monthly_reset_date is not None and plan.monthly_reset_date > now:
        resets_at = plan.monthly_reset_date
    retry_after_s = math.ceil((resets_at - now).total_seconds())
    if for_friend_key:
        error = MonthlyTokenLimitExceeded(
            "The Friend Key owner's plan has reached its monthly token limit",
            retry_after_s=retry_after_s,
            monthlyResetDate=resets_at.isoformat(),
        )
    else:
        held = f" and up to {in_flight} held by requests in flight" if in_flight else ""
        error = MonthlyTokenLimitExceeded(
            f"Monthly token limit reached: {used} of {limit} tokens used{held}; it resets at "
            f"{resets_at.isoformat()}",
            retry_after_s=retry_after_s,
            monthlyTokensUsed=used,
            monthlyTokensLimit=limit,
            monthlyResetDate=resets_at.isoformat(),
        )
    error.headers["x-should-retry"] = "false"
    return error
