"""A user's usage per time bucket and per model or per key (the dashboard's usage view).

One `GROUP BY` over the user's request logs through `ix_request_logs_user_time`: the database sorts each
row into its bucket with one CASE over the buckets' bounds (computed here, in the user's time zone: a day
with a summer-time change lasts 23 or 25 hours) and sums; only (bucket, group) rows reach Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import pairwise
from typing import Literal

from sqlalchemy import ColumnElement, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.usage.tables import RequestLog

GroupBy = Literal["model", "key"]
KEY_LABELS = {"api": "API key", "friend": "Friend Key", "byok": "Own provider keys"}
"""The key kinds of the history's `key=` filter, by name."""


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bar's time span, `[start, end)` in UTC, and its label in the user's zone."""

    start: datetime
    end: datetime
    label: str
    hourly: bool


@dataclass(frozen=True, slots=True)
class Usage:
    """Requests, tokens (input, output and cache) and spend in nano-USD of one group in one bucket."""

    requests: int = 0
    tokens: int = 0
    spend_nanos: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.requests + other.requests, self.tokens + other.tokens, self.spend_nanos + other.spend_nanos
        )


def day_buckets(first: date, days: int, zone: tzinfo) -> list[Bucket]:
    """`days` calendar days in `zone` from `first`."""
    starts = [datetime.combine(first + timedelta(days=n), time(), zone) for n in range(days + 1)]
    return [
        Bucket(start.astimezone(UTC), end.astimezone(UTC), start.strftime("%Y-%m-%d"), hourly=False)
        for start, end in pairwise(starts)
    ]


def hour_buckets(now: datetime, hours: int, zone: tzinfo) -> list[Bucket]:
    """The last `hours` whole hours, the current one last (labelled in `zone`)."""
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    starts = [current - timedelta(hours=hours - 1 - n) for n in range(hours + 1)]
    return [
        Bucket(start, end, start.astimezone(zone).strftime("%Y-%m-%d %H:00"), hourly=True)
        for start, end in pairwise(starts)
    ]


def key_kind() -> ColumnElement[str]:
    """Which key a log row used, as the history's `key=` filter names it: `friend`, `byok` or `api`."""
    log = RequestLog
    return case(
        (log.is_friend_key_request.is_(True), literal("friend")),
        (log.is_byok.is_(True), literal("byok")),
        else_=literal("api"),
    )


async def usage_breakdown(
    session: AsyncSession, user_id: int, buckets: list[Bucket], by: GroupBy
) -> dict[tuple[int, str], Usage]:
    """(bucket index, model or key kind) -> usage of `user_id` (Friend Key requests are the owner's)."""
    if not buckets:
        return {}
    log = RequestLog
    created = log.created_at
    index = case(*((created < bucket.end, number) for number, bucket in enumerate(buckets)), else_=-1)
    bucket = index.label("bucket")
    group = (log.model if by == "model" else key_kind()).label("grp")
    tokens = log.input_tokens + log.output_tokens + log.cache_write_tokens + log.cache_hit_tokens
    statement = (
        select(
            bucket,
            group,
            func.count(),
            func.coalesce(func.sum(tokens), 0),
            func.coalesce(func.sum(log.credits_cost_nanos), 0),
        )
        .where(log.user_id == user_id, created >= buckets[0].start, created < buckets[-1].end)
        .group_by(bucket, group)
    )
    return {
        (int(number), str(name)): Usage(int(requests), int(token_sum), int(spend))
        for number, name, requests, token_sum, spend in await session.execute(statement)
    }
