"""Every limit decision of the gateway: on the shared limiter, with a local fallback while it is unreachable.

RPM per key owner, login attempts, key reveals and registrations all go through `FallbackLimiter.hit`. When
the shared limiter (Redis) fails or does not answer in time, the decision is taken by an in-process limiter
with ⌈limit / N⌉, so N instances together admit about the limit while Redis is down — never
unlimited, never a 500. N is the live instance count last seen in Redis (`trollllm.ratelimit.instances`).
The outage is logged once at error level (and its end once at warning level);
`metrics()` counts them.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from trollllm.clock import Clock
from trollllm.ratelimit.limiter import LimitDecision, Limiter, LimiterUnavailable, MemoryLimiter
from trollllm.telemetry import Telemetry

logger = logging.getLogger("trollllm.ratelimit")
T = TypeVar("T")

# A shared decision slower than this is abandoned and taken locally (a slow Redis must not stall the proxy).
SHARED_DECISION_TIMEOUT_S = 1.0
# After a failure, decisions stay local this long before one request probes Redis again.
SHARED_RETRY_INTERVAL_S = 2.0


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """One decision, as the `x-ratelimit-*-requests` headers show it.

    `shared` is False when the decision was taken by the local fallback (Redis unreachable); `limit` is
    then the per-instance share ⌈limit / instances⌉.
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


class FallbackLimiter:
    """The app's limits: the shared limiter, or while it is unreachable an in-process one with the
    instance's share of each limit."""

    def __init__(
        self,
        limiter: Limiter,
        clock: Clock,
        *,
        instances: int | Callable[[], int] = 1,
        timeout_s: float = SHARED_DECISION_TIMEOUT_S,
        retry_interval_s: float = SHARED_RETRY_INTERVAL_S,
        telemetry: Telemetry | None = None,
    ) -> None:
        if isinstance(instances, int) and instances < 1:
            raise ValueError(f"instances must be >= 1, got {instances}")
        self._shared = limiter
        self._shared_is_local = isinstance(limiter, MemoryLimiter)
        self._local = MemoryLimiter(clock)
        self._clock = clock
        # N: a fixed count, or the live count of `LiveInstances` read at each decision.
        self._instances: Callable[[], int] = (lambda: instances) if isinstance(instances, int) else instances
        self._timeout_s = timeout_s
        self._retry_interval_s = retry_interval_s
        self._retry_at: float | None = None  # set while degraded: when to probe the shared limiter again
        self.outages = 0
        self.fallback_decisions = 0
        self._telemetry = telemetry  # the same counts, summed over the workers

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

    @property
    def instances(self) -> int:
        """N, the number of instances the limits are shared by (the local share is ⌈limit / N⌉)."""
        return max(self._instances(), 1)

    def local_limit(self, limit: int) -> int:
        """The per-instance share of `limit` used while the shared limiter is unreachable."""
        return math.ceil(limit / self.instances)

    async def hit(self, key: str, limit: int, window_s: float) -> RateLimitStatus:
        """Record one hit of `key` if `limit` allows it in the last `window_s`; a refusal records nothing."""
        decision = await self._shared_call(lambda: self._shared.hit(key, limit, window_s))
        if decision is not None:
            return _status(decision, shared=True)
        self.fallback_decisions += 1
        if self._telemetry is not None:
            self._telemetry.count("rate_limiter_fallback_decisions")
        return _status(await self._local.hit(key, self.local_limit(limit), window_s), shared=False)

    async def release(self, key: str) -> None:
        """Forget the newest hit of `key` (an attempt that turned out not to count), wherever it went."""
        await self._shared_call(lambda: self._shared.release(key))
        await self._local.release(key)

    async def reset(self, key: str) -> None:
        """Forget every hit of `key`, shared and local."""
        await self._shared_call(lambda: self._shared.reset(key))
        await self._local.reset(key)

    async def _shared_call(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """`call()` on the shared limiter, or None when it is (known to be) unreachable."""
        now = self._clock.monotonic()
        if self._retry_at is not None and now < self._retry_at:
            return None
        if self._retry_at is not None:
            self._retry_at = now + self._retry_interval_s  # one probe per interval; others stay local
        try:
            if self._shared_is_local:  # in-process: cannot hang, so no timer to arm on every request
                result = await call()
            else:
                async with asyncio.timeout(self._timeout_s):
                    result = await call()
        except (LimiterUnavailable, TimeoutError) as exc:
            self._fail(exc)
            return None
        if self._retry_at is not None:
            self._retry_at = None
            logger.warning("rate limiter backend is back; shared limits restored")
            if self._telemetry is not None:
                self._telemetry.set_limiter_degraded(False)
        return result

    def _fail(self, exc: BaseException) -> None:
        if self._retry_at is None:
            self.outages += 1
            if self._telemetry is not None:
                self._telemetry.count("rate_limiter_outages")
                self._telemetry.set_limiter_degraded(True)
            logger.error(
                "rate limiter backend unreachable; limiting locally to ceil(limit / %d instances) until it "
                "is back",
                self.instances,
                extra={"error": f"{type(exc).__name__}: {exc}"},
            )
        self._retry_at = self._clock.monotonic() + self._retry_interval_s


def _status(decision: LimitDecision, *, shared: bool) -> RateLimitStatus:
    return RateLimitStatus(
        decision.allowed,
        decision.limit,
        decision.remaining,
        decision.retry_after_s,
        decision.reset_after_s,
        shared=shared,
    )
