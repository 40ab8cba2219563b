"""A plan's usage windows and model list (SPEC §5): their JSON on the plan row, what the proxy refuses, and
what the user's billing view shows.

The reservation itself is `trollllm.billing.windows`, inside the hold's transaction; this module parses the
plan's columns (cached by their text: the proxy reads them with the key on every request), names the
window that refused a hold with its `resetsAt`, and reports each window's use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache

import orjson
from pydantic import BaseModel, Field

from trollllm.billing.windows import Bucket, WindowLimit, buckets
from trollllm.errors import UsageWindowExceeded
from trollllm.money import Money
from trollllm.storage.sqlprogram import ProgramRunner


@lru_cache(maxsize=256)
def parse_windows(text: str | None) -> tuple[WindowLimit, ...]:
    """The windows stored on a plan row (validated when the admin saved them)."""
    if not text:
        return ()
    return tuple(
        WindowLimit(
            name=item["window"],
            usd_limit_nanos=None if item.get("usdLimitNanos") is None else int(item["usdLimitNanos"]),
            token_limit=None if item.get("tokenLimit") is None else int(item["tokenLimit"]),
        )
        for item in orjson.loads(text)
    )


def dump_windows(windows: Sequence[WindowLimit]) -> str | None:
    """The plan row's text for `windows` (None for none)."""
    if not windows:
        return None
    return orjson.dumps(
        [{"window": w.name, "usdLimitNanos": w.usd_limit_nanos, "tokenLimit": w.token_limit} for w in windows]
    ).decode()


@lru_cache(maxsize=256)
def parse_models(text: str | None) -> frozenset[str] | None:
    """The model ids a plan allows (None: every model)."""
    if text is None:
        return None
    return frozenset(orjson.loads(text))


def dump_models(models: Sequence[str] | None) -> str | None:
    """The plan row's text for a model list (None: every model)."""
    return None if models is None else orjson.dumps(sorted(set(models))).decode()


def _fits(window: WindowLimit, nanos: int, tokens: int, amount: int, request_tokens: int) -> bool:
    if window.usd_limit_nanos is not None and nanos + amount > window.usd_limit_nanos:
        return False
    return window.token_limit is None or tokens + request_tokens <= window.token_limit


def frees_enough_at(window: WindowLimit, rows: Sequence[Bucket], amount: int, tokens: int) -> int | None:
    """When the oldest buckets will have left `window` so that a request of `amount` and `tokens` fits
    (Unix seconds); None when it fits now. When even an empty window cannot take it, the time it empties."""
    nanos = sum(row.used_nanos + row.held_nanos for row in rows)
    used_tokens = sum(row.used_tokens + row.held_tokens for row in rows)
    if _fits(window, nanos, used_tokens, amount, tokens):
        return None
    for row in rows:
        nanos -= row.used_nanos + row.held_nanos
        used_tokens -= row.used_tokens + row.held_tokens
        if _fits(window, nanos, used_tokens, amount, tokens):
            return window.frees_at(row.start_s)
    return window.frees_at(rows[-1].start_s) if rows else None


async def window_refusal(
    db: ProgramRunner,
    user_id: int,
    windows: Sequence[WindowLimit],
    span_s: int,
    amount: int,
    tokens: int,
    now: datetime,
    *,
    for_friend_key: bool,
) -> UsageWindowExceeded:
    """The 429 for a hold a window of `span_s`-second buckets refused: which window, when it frees up."""
    now_s = int(now.timestamp())
    full = windows[0]
    resets_s = now_s + 1
    for window in windows:
        if window.span_s != span_s:
            continue
        frees = frees_enough_at(window, await db.read(buckets(user_id, window, now_s)), amount, tokens)
        if frees is not None:
            full, resets_s = window, frees
            break
    resets_at = datetime.fromtimestamp(resets_s, UTC)
    who = "The Friend Key owner's plan" if for_friend_key else "Your plan"
    return UsageWindowExceeded(
        f"{who} has reached its {full.name} usage limit; it frees up at {resets_at.isoformat()}",
        retry_after_s=max(1, math.ceil(resets_s - now.timestamp())),
        window=full.name,
        resetsAt=resets_at.isoformat(),
    )


class WindowUsageView(BaseModel):
    """One usage window of the user's plan, as `GET /api/user/billing` shows it."""

    window: str = Field(description="5h, 24h, 7d or 30d, rolling")
    usdLimit: float | None
    usdUsed: float = Field(description="settled spend plus the holds of requests in flight")
    tokenLimit: int | None
    tokensUsed: int = Field(description="settled tokens plus the maximum of requests in flight")
    resetsAt: datetime | None = Field(description="when the oldest use counted leaves the window")
    # The exact figures behind the two USD numbers, for the pages (never serialized: the API shows USD).
    usd_limit_nanos: int | None = Field(exclude=True)
    usd_used_nanos: int = Field(exclude=True)


async def window_report(
    db: ProgramRunner, user_id: int, windows: Sequence[WindowLimit], now: datetime
) -> list[WindowUsageView]:
    """Each window's limits and what counts in it now (SPEC §5 `windows` of `GET /api/user/billing`).

    `usdUsed` and `tokensUsed` are settled requests plus the holds of requests in flight; `resetsAt` is
    when the oldest counted bucket leaves the window (null when nothing counts).
    """
    now_s = int(now.timestamp())
    report = []
    for window in windows:
        rows = await db.read(buckets(user_id, window, now_s))
        counted = [row for row in rows if row.used_nanos + row.held_nanos + row.used_tokens + row.held_tokens]
        usd, used = window.usd_limit_nanos, sum(row.used_nanos + row.held_nanos for row in rows)
        resets = datetime.fromtimestamp(window.frees_at(counted[0].start_s), UTC) if counted else None
        report.append(
            WindowUsageView(
                window=window.name,
                usdLimit=None if usd is None else Money(usd).to_json(),
                usdUsed=Money(used).to_json(),
                tokenLimit=window.token_limit,
                tokensUsed=sum(row.used_tokens + row.held_tokens for row in rows),
                resetsAt=resets,
                usd_limit_nanos=usd,
                usd_used_nanos=used,
            )
        )
    return report
