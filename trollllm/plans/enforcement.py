"""Plan rules on the proxy (SPEC §5, §6): requests per minute per owner, and the monthly token limit.

The gate calls `enforce_plan_limits` once per proxied request, after the key, its owner and the plan's API
access are checked and after the body has parsed, before the model is resolved and the hold placed. So a
request refused for its key or its body costs nothing, while one refused later (unknown model, 402) has
used a slot of the minute, as the SPEC §6 order puts the rate limit before those checks.

The budget is keyed by the owner's user id: an owner's own key and their friend key share it. It lives in
the app's limiter (Redis when configured, so every instance shares one exact sliding window). When Redis
does not answer in time, `RequestRateLimiter` decides locally with ⌈RPM / instances⌉ per instance until
Redis is back (never unlimited), logs the outage once at error level and counts it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Row, Table

from trollllm.accounts.tables import User
from trollllm.clock import Clock
from trollllm.errors import MonthlyTokenLimitExceeded, RateLimited
from trollllm.limiter import Limiter, LimiterUnavailable, MemoryLimiter
from trollllm.plans.calendar import next_month_start
from trollllm.plans.expiry import reset_monthly_usage
from trollllm.plans.tables import Plan

if TYPE_CHECKING:
    from trollllm.state import AppState

logger = logging.getLogger("trollllm.ratelimit")

RPM_WINDOW_S = 60.0
# A shared decision slower than this is abandoned and taken locally (a slow Redis must not stall the proxy).
SHARED_DECISION_TIMEOUT_S = 1.0
# After a failure, decisions stay local this long before one request probes Redis again.
SHARED_RETRY_INTERVAL_S = 2.0

_users = cast(Table, User.__table__)
_plans = cast(Table, Plan.__table__)

# The columns the gate's key lookup adds so plan rules cost no extra query (`PlanStatus.of` reads them).
PLAN_COLUMNS = (
    _users.c.plan_expires_at,
    _users.c.monthly_tokens_used,
    _users.c.monthly_reset_date,
    _plans.c.rpm,
    _plans.c.monthly_token_limit,
)


@dataclass(frozen=True, slots=True)
class PlanStatus:
    """The owner's plan limits and monthly counter, as read with the key."""

    rpm: int
    monthly_token_limit: int | None
    monthly_tokens_used: int
    monthly_reset_date: datetime | None

    @classmethod
    def of(cls, row: Row[*tuple[Any, ...]]) -> PlanStatus:
        """The status from a row that selected `PLAN_COLUMNS`."""
        return cls(
            rpm=int(row.rpm),
            monthly_token_limit=row.monthly_token_limit,
            monthly_tokens_used=int(row.monthly_tokens_used),
            monthly_reset_date=row.monthly_reset_date,
        )


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """One RPM decision, as the `x-ratelimit-*-requests` headers show it.

    `shared` is False when the decision was taken by the local fallback (Redis unreachable); `limit` is
    then the per-instance share ⌈RPM / instances⌉.
    """

    allowed: bool
    limit: int
    remaining: int
    retry_after_s: float
    reset_after_s: float
    shared: bool

    @property
    def headers(self) -> dict[str, str]:
        """OpenAI-style headers: the limit, what is left of it, and when the window is whole again."""
        return {name.decode(): value.decode() for name, value in self.raw_headers}

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The same headers for a raw ASGI `http.response.start` message (the hot path's form)."""
        return [
            (b"x-ratelimit-limit-requests", b"%d" % self.limit),
            (b"x-ratelimit-remaining-requests", b"%d" % self.remaining),
            (b"x-ratelimit-reset-requests", format_duration(self.reset_after_s).encode()),
        ]


def format_duration(seconds: float) -> str:
    """A wait as OpenAI writes it in `x-ratelimit-reset-*` (Go duration style), rounded up to the ms.

    `0s`, `12ms`, `1s`, `59.5s`, `1m0s`, `1m30.25s`.
    """
    millis = math.ceil(max(seconds, 0.0) * 1000 - 1e-6)
    if millis <= 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    minutes, rest = divmod(millis, 60_000)
    whole, fraction = divmod(rest, 1000)
    text = f"{whole}.{fraction:03d}".rstrip("0").rstrip(".")
    return f"{minutes}m{text}s" if minutes else f"{text}s"


class RequestRateLimiter:
    """Requests per minute per owner on the app's limiter, with a local fallback while it is unreachable.

    The fallback is a `MemoryLimiter` on the app's clock with ⌈RPM / instances⌉ per owner, so N instances
    together admit at most about the plan's RPM while Redis is down. Each outage is logged once at error
    level (and its end once at warning level); `outages` and `fallback_decisions` count them for metrics.
    """

    def __init__(
        self,
        limiter: Limiter,
        clock: Clock,
        *,
        instances: int = 1,
        timeout_s: float = SHARED_DECISION_TIMEOUT_S,
        retry_interval_s: float = SHARED_RETRY_INTERVAL_S,
    ) -> None:
        if instances < 1:
            raise ValueError(f"instances must be >= 1, got {instances}")
        self._shared = limiter
        self._shared_is_local = isinstance(limiter, MemoryLimiter)
        self._local = MemoryLimiter(clock)
        self._clock = clock
        self._instances = instances
        self._timeout_s = timeout_s
        self._retry_interval_s = retry_interval_s
        self._retry_at: float | None = None  # set while degraded: when to probe the shared limiter again
        self.outages = 0
        self.fallback_decisions = 0

    @property
    def degraded(self) -> bool:
        """True while decisions are taken locally."""
        return self._retry_at is not None

    def metrics(self) -> dict[str, int]:
        """Counters for monitoring: outages so far, decisions taken locally, and whether one is ongoing."""
        return {
            "rate_limiter_outages": self.outages,
            "rate_limiter_fallback_decisions": self.fallback_decisions,
            "rate_limiter_degraded": int(self.degraded),
        }

    def local_limit(self, rpm: int) -> int:
        """The per-instance share of `rpm` used while the shared limiter is unreachable."""
        return math.ceil(rpm / self._instances)

    async def hit(self, user_id: int, rpm: int) -> RateLimitStatus:
        """Record a request of `user_id` if `rpm` allows it in the last 60 s; a refusal records nothing."""
        key = f"rpm:{user_id}"
        now = self._clock.monotonic()
        if self._retry_at is None or now >= self._retry_at:
            if self._retry_at is not None:
                self._retry_at = now + self._retry_interval_s  # one probe per interval; others stay local
            try:
                if self._shared_is_local:  # in-process: cannot hang, so no timer to arm on every request
                    decision = await self._shared.hit(key, rpm, RPM_WINDOW_S)
                else:
                    async with asyncio.timeout(self._timeout_s):
                        decision = await self._shared.hit(key, rpm, RPM_WINDOW_S)
            except (LimiterUnavailable, TimeoutError) as exc:
                self._fail(exc)
            else:
                if self._retry_at is not None:
                    self._retry_at = None
                    logger.warning("rate limiter backend is back; shared limits restored")
                return RateLimitStatus(
                    decision.allowed,
                    decision.limit,
                    decision.remaining,
                    decision.retry_after_s,
                    decision.reset_after_s,
                    shared=True,
                )
        self.fallback_decisions += 1
        decision = await self._local.hit(key, self.local_limit(rpm), RPM_WINDOW_S)
        return RateLimitStatus(
            decision.allowed,
            decision.limit,
            decision.remaining,
            decision.retry_after_s,
            decision.reset_after_s,
            shared=False,
        )

    def _fail(self, exc: BaseException) -> None:
        if self._retry_at is None:
            self.outages += 1
            logger.error(
                "rate limiter backend unreachable; limiting locally to ceil(RPM / %d instances) until it "
                "is back",
                self._instances,
                extra={"error": f"{type(exc).__name__}: {exc}"},
            )
        self._retry_at = self._clock.monotonic() + self._retry_interval_s


async def enforce_plan_limits(
    state: AppState, user_id: int, plan: PlanStatus, *, for_friend_key: bool = False
) -> RateLimitStatus:
    """SPEC §6 order: 429 `rate_limit_exceeded` (RPM), then 429 `monthly_token_limit_exceeded`.

    `user_id` and `plan` are the key owner's. Resets the owner's monthly counter first when its reset date
    has passed (lazily, once across instances). Returns the RPM decision, whose headers go on the
    response; both 429s carry them too. A Friend Key holder is not shown the owner's token counts.
    """
    status = await state.rpm_limiter.hit(user_id, plan.rpm)
    if not status.allowed:
        error = RateLimited(
            f"Rate limit exceeded: the plan allows {plan.rpm} requests per minute"
            if status.shared
            else f"Rate limit exceeded: {status.limit} requests per minute on this instance while the "
            "shared rate limiter is unreachable",
            retry_after_s=math.ceil(status.retry_after_s),
        )
        error.headers.update(status.headers)
        raise error
    used = plan.monthly_tokens_used
    now = state.clock.now()
    if plan.monthly_reset_date is None or plan.monthly_reset_date <= now:
        await reset_monthly_usage(state.sessions, now, user_id=user_id)
        used = 0
    limit = plan.monthly_token_limit
    if limit is not None and used >= limit:
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
            error = MonthlyTokenLimitExceeded(
                f"Monthly token limit reached: {used} of {limit} tokens used; it resets at "
                f"{resets_at.isoformat()}",
                retry_after_s=retry_after_s,
                monthlyTokensUsed=used,
                monthlyTokensLimit=limit,
                monthlyResetDate=resets_at.isoformat(),
            )
        error.headers.update(status.headers)
        error.headers["x-should-retry"] = "false"
        raise error
    return status
