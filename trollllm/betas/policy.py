"""Which `anthropic-beta` values a request may carry, decided from memory on the hot path.

Every value is forwarded except:
- the values an admin refuses (`anthropic_beta_refusals`: exact, or a prefix ending in `*`), loaded into
  memory and reloaded when an admin changes them (the `anthropic_betas` invalidation topic, every
  instance) or after `TTL_S`: no database read per request;
- the values the gateway knows change what a request costs, unless the model row prices them:
  `context-1m-…` (the long-context tier: forwarded to a model with `longContext`), and values nothing
  prices here (`PRICED_ELSEWHERE`: code execution containers, 1-hour cache writes, fast mode).

A refusal is 400 `invalid_request_error` naming the values and `anthropic-beta`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm.betas.tables import AnthropicBetaRefusal
from trollllm.betas.tally import BetaTally
from trollllm.clock import Clock
from trollllm.errors import InvalidRequest
from trollllm.pricing.catalog import CatalogModel
from trollllm.snapshot import SnapshotAge
from trollllm.telemetry import Telemetry

TTL_S = 60.0
TOPIC = "anthropic_betas"
"""The invalidation topic an admin change publishes (`trollllm.invalidation`)."""
LONG_CONTEXT_PREFIX = "context-1m-"
PRICED_ELSEWHERE: dict[str, str] = {
    "code-execution-": "code execution is billed per container hour by the provider",
    "extended-cache-ttl-": "1-hour cache writes cost twice the input price",
    "fast-mode-": "fast mode is billed at a premium",
}
"""Prefixes of values the gateway knows change the price and no model row prices: refused, with why."""
FIELD = "anthropic-beta"
_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def split_betas(header: str | None) -> tuple[str, ...]:
    """The values of an `anthropic-beta` header (comma-separated, blanks dropped)."""
    if not header:
        return ()
    return tuple(value for value in (part.strip() for part in header.split(",")) if value)


def known_price_refusal(value: str, model: CatalogModel) -> str | None:
    """Why the gateway refuses this value for this model (it changes the price unpriced), or None."""
    if value.startswith(LONG_CONTEXT_PREFIX):
        if model.prices.long_context is None:
            return f"{model.model_id} has no long-context price tier"
        return None
    for prefix, why in PRICED_ELSEWHERE.items():
        if value.startswith(prefix):
            return why
    return None


def matches(value: str, refused: frozenset[str], prefixes: tuple[str, ...]) -> bool:
    """Whether an admin refuses this value (exactly, or by a `prefix*` entry)."""
    return value in refused or value.startswith(prefixes)


class BetaPolicy:
    """The admin's refused values (cached) and the gateway's own rules; counts what it forwards."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, telemetry: Telemetry
    ) -> None:
        self._sessions = sessions
        self._telemetry = telemetry
        self._refused: frozenset[str] = frozenset()
        self._prefixes: tuple[str, ...] = ()
        self._age = SnapshotAge(clock, TTL_S)
        self.tally = BetaTally(clock)

    def invalidate(self) -> None:
        """Forget the refused values; the next request reloads them."""
        self._age.invalidate()

    async def check(self, betas: Iterable[str], model: CatalogModel) -> None:
        """400 naming every value refused for this model (by an admin or because nothing prices it)."""
        betas = tuple(betas)
        if not betas:
            return
        if self._age.stale:
            await self._age.refresh(self._reload)
        reasons: list[str] = []
        for value in betas:
            if matches(value, self._refused, self._prefixes):
                reasons.append(f"{value} (refused by the operator)")
                continue
            why = known_price_refusal(value, model)
            if why is not None:
                reasons.append(f"{value} ({why})")
        if reasons:
            raise InvalidRequest(
                f"anthropic-beta {', '.join(reasons)} is not available on this gateway", field=FIELD
            )

    def count_forwarded(self, betas: Iterable[str]) -> None:
        """Count each value of a request that went upstream (Prometheus and the 24-hour tally)."""
        for value in betas:
            label = self.tally.add(value if _VALUE.fullmatch(value) else "invalid")
            self._telemetry.count_anthropic_beta(label)

    async def _reload(self) -> None:
        async with self._sessions() as session:
            values = list(await session.scalars(select(AnthropicBetaRefusal.value)))
        self._refused = frozenset(v for v in values if not v.endswith("*"))
        self._prefixes = tuple(v[:-1] for v in values if v.endswith("*"))
