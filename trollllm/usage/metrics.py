"""The admin metrics of a period, computed by the database in one statement.

A period is a run of whole buckets ending with the current one, so every bucket of its chart is as wide as
the others and the answer names its exact bounds (`from`, `to`):

| period | bucket | buckets | read from |
|---|---|---|---|
| `1h` | 5 minutes | 12 | the logs themselves (at most two hours of rows, found by primary key) |
| `24h` | 1 hour | 24 | the hourly rollups, plus the logs not yet rolled up |
| `7d` | 6 hours (00, 06, 12, 18 UTC) | 28 | the same |
| `30d` | 1 day (UTC) | 30 | the same |
| `all` | 1 day (UTC) | from the first day with a request | the same; top users from their totals |

Every period but `all` also has the previous period's totals (the same number of buckets just before it),
read by the same statement over both periods' buckets in the same snapshot.

The errors by type are read from the logs' failed rows (`trollllm.usage.error_types`), in the same snapshot
on PostgreSQL. Every other figure comes from one SQL statement (one snapshot on both databases): GROUP BYs
over the rollups and the live rows (`trollllm.usage.rollup.log_changes`), a few dozen group rows back; no
log row reaches Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    SQLColumnExpression,
    String,
    func,
    literal,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Subquery
from sqlalchemy.sql.selectable import CTE

from trollllm.accounts.tables import User
from trollllm.usage.error_types import ErrorTypeCount, read_error_types
from trollllm.usage.rollup import (
    LATENCY_BOUNDS_MS,
    LATENCY_OVERFLOW_MS,
    SUM_COLUMNS,
    latency_bucket,
    log_changes,
)
from trollllm.usage.rollup_tables import (
    HourlyLatency,
    HourlyModelUsage,
    HourlyUserUsage,
    RollupState,
    SixHourlyUserUsage,
    UserUsageTotal,
)

Period = Literal["1h", "24h", "7d", "30d", "all"]
PERIODS: dict[str, tuple[int, int | None]] = {
    "1h": (300, 12),
    "24h": (3600, 24),
    "7d": (6 * 3600, 28),
    "30d": (86400, 30),
    "all": (86400, None),
}
"""Each period's bucket width in seconds and its number of buckets (None: since the first request)."""
TOP_USERS = 10


@dataclass(frozen=True, slots=True)
class MetricsWindow:
    """Where a period starts (None: the beginning) and ends, and its bucket width."""

    period: str
    bucket_s: int
    start: datetime | None
    end: datetime


def metrics_window(period: str, now: datetime) -> MetricsWindow:
    """The window of `period` at `now`: whole buckets, the last one holding `now`."""
    bucket_s, buckets = PERIODS[period]
    if buckets is None:
        return MetricsWindow(period, bucket_s, None, now)
    current = int(now.timestamp()) // bucket_s * bucket_s
    start = datetime.fromtimestamp(current - (buckets - 1) * bucket_s, UTC)
    return MetricsWindow(period, bucket_s, start, now)


@dataclass(slots=True)
class UsageSums:
    """Requests, failures, tokens and cost (nano-USD) of some requests."""

    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_hit_tokens: int = 0
    cost_nanos: int = 0

    def add(self, other: UsageSums) -> None:
        """Add `other` to these sums."""
        for name in SUM_COLUMNS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(slots=True)
class MetricsReport:
    """What `GET /api/admin/metrics` answers, before its JSON shape."""

    window: MetricsWindow
    totals: UsageSums = field(default_factory=UsageSums)
    by_model: dict[str, UsageSums] = field(default_factory=dict)
    top_users: list[tuple[str, UsageSums]] = field(default_factory=list)
    series: list[tuple[datetime, UsageSums]] = field(default_factory=list)
    latency_p50_ms: int | None = None
    latency_p95_ms: int | None = None
    previous: UsageSums | None = None
    """The previous period's totals (the same length just before `window.start`); None for `all`."""
    previous_start: datetime | None = None
    error_types: list[ErrorTypeCount] = field(default_factory=list)
    """The period's failed and refused requests by error type (`trollllm.usage.error_types`)."""

    def models_by_spend(self) -> list[tuple[str, UsageSums]]:
        """The models by spend, then requests (most first), then name."""
        return sorted(
            self.by_model.items(), key=lambda item: (-item[1].cost_nanos, -item[1].requests, item[0])
        )

    @property
    def error_rate(self) -> float:
        """Failed requests over requests (0 when there were none)."""
        return error_rate(self.totals)


def error_rate(sums: UsageSums) -> float:
    """Failed requests over requests (0 when there were none)."""
    return sums.errors / sums.requests if sums.requests else 0.0


def previous_window(window: MetricsWindow) -> MetricsWindow | None:
    """The window holding `window` and as many buckets just before it (None for `all`)."""
    if window.start is None:
        return None
    length = int(window.end.timestamp()) // window.bucket_s * window.bucket_s - int(window.start.timestamp())
    start = datetime.fromtimestamp(int(window.start.timestamp()) - length - window.bucket_s, UTC)
    return MetricsWindow(window.period, window.bucket_s, start, window.end)


async def read_metrics(session: AsyncSession, period: str, now: datetime) -> MetricsReport:
    """The metrics of `period` at `now`, equal to the request logs (rolled up or not) at this moment, with
    the errors by type and the previous period's totals."""
    dialect = session.get_bind().dialect.name
    window = metrics_window(period, now)
    if dialect == "postgresql":
        # One snapshot for the whole transaction, so the first log id not rolled up can be read first and
        # given to the planner as a number: inside the statement it guessed a third of the table, planned
        # a parallel scan and compiled it (JIT), 90 % of the time at 10 million logs. SQLite reads it in
        # the statement (one statement, one snapshot).
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        await session.execute(text("SET LOCAL jit = off"))
    report = await _read_window(session, window, dialect)
    report.error_types = await read_error_types(session, window.start, window.end)
    both = previous_window(window)
    if both is not None and both.start is not None and window.start is not None:
        # The buckets of both periods, from the same snapshot; those before this period's start are the
        # previous period's.
        earlier = (await _read_window(session, both, dialect)).series
        report.previous = UsageSums()
        for start, sums in earlier:
            if start < window.start:
                report.previous.add(sums)
        report.previous_start = both.start
    return report


async def _read_window(session: AsyncSession, window: MetricsWindow, dialect: str) -> MetricsReport:
    after: int | None = None
    if dialect == "postgresql":
        after = int(await session.scalar(_first_unread(window)) or 0)
    rows = (await session.execute(_metrics_statement(window, dialect, after))).all()
    report = MetricsReport(window)
    buckets: dict[int, UsageSums] = {}
    latency: dict[int, int] = {}
    for row in rows:
        kind, label, key, *sums = tuple(row)
        values = UsageSums(*(int(value or 0) for value in sums))
        if kind == "model":
            report.by_model[label] = values
            report.totals.add(values)
        elif kind == "user":
            report.top_users.append((label, values))
        elif kind == "bucket":
            buckets[int(key)] = values
        elif values.requests:
            latency[int(key)] = values.requests
    report.top_users.sort(key=lambda item: (-item[1].cost_nanos, -item[1].requests, item[0]))
    report.series = _zero_filled(window, buckets)
    report.latency_p50_ms = percentile(latency, 0.50)
    report.latency_p95_ms = percentile(latency, 0.95)
    return report


def percentile(histogram: dict[int, int], fraction: float) -> int | None:
    """The upper bound of the bucket holding the request of rank ⌈fraction × n⌉ (nearest rank), or None
    without requests; the last, open bucket answers its lower bound."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = max(math.ceil(fraction * total), 1)
    seen = 0
    for under_ms in sorted(histogram):
        seen += histogram[under_ms]
        if seen >= rank:
            return LATENCY_BOUNDS_MS[-1] if under_ms == LATENCY_OVERFLOW_MS else under_ms
    return None  # unreachable: the counts add up to `total`


def _zero_filled(window: MetricsWindow, buckets: dict[int, UsageSums]) -> list[tuple[datetime, UsageSums]]:
    """Every bucket of the window in order, those without requests as zeros."""
    step = window.bucket_s
    last = int(window.end.timestamp()) // step * step
    if window.start is not None:
        first = int(window.start.timestamp())
    else:
        first = min((start for start, sums in buckets.items() if sums.requests), default=last)
    return [
        (datetime.fromtimestamp(start, UTC), buckets.get(start, UsageSums()))
        for start in range(first, last + step, step)
    ]


def _first_unread(window: MetricsWindow) -> Select[tuple[int]]:
    """The log id after which the window's live rows are: W, or for `1h` (read from the logs alone) the
    id before the first of the window's first hour."""
    watermark = select(RollupState.last_log_id).where(RollupState.id == 1).scalar_subquery()
    if window.period != "1h":
        return select(watermark)
    assert window.start is not None
    hour = int(window.start.timestamp()) // 3600
    first_id = select(func.min(HourlyModelUsage.first_log_id)).where(HourlyModelUsage.epoch_hour >= hour)
    return select(func.coalesce(first_id.scalar_subquery() - 1, watermark))


def _metrics_statement(
    window: MetricsWindow, dialect: str, after: int | None = None
) -> Select[*tuple[Any, ...]]:
    """model, user, bucket and latency group rows of the window, as one UNION ALL; the live rows are those
    after `after` (`_first_unread`, read inside this statement when None)."""
    unread = _first_unread(window).scalar_subquery() if after is None else after
    if window.period == "1h":
        live = log_changes(dialect, after=unread, since=window.start, corrections=False)
        rolled: _Rollups | None = None
    else:
        live = log_changes(dialect, after=unread, since=window.start)
        rolled = _Rollups(window)
    changes = live.cte("changes")
    step = window.bucket_s
    model = _grouped(
        rolled.models(HourlyModelUsage.model) if rolled else None, _sums_of(changes, changes.c.model)
    )
    bucket_of_hour = HourlyModelUsage.epoch_hour * 3600 // step * step
    bucket = _grouped(
        rolled.models(bucket_of_hour) if rolled else None, _sums_of(changes, changes.c.at // step * step)
    )
    under_ms = latency_bucket(changes.c.latency_ms)
    latency = _grouped(
        rolled.latency() if rolled else None,
        select(under_ms.label("key"), changes.c.requests.label("requests")),
        only_requests=True,
    )
    users = _grouped(rolled.users() if rolled else None, _sums_of(changes, changes.c.user_id))
    top = (
        select(users.c.key, *(users.c[name] for name in SUM_COLUMNS))
        .order_by(users.c.cost_nanos.desc(), users.c.requests.desc(), users.c.key)
        .limit(TOP_USERS)
        .subquery("top_users")
    )
    no_label = literal("", String)
    parts = [
        select(literal("model"), model.c.key, literal(0, BigInteger), *_sum_columns(model)),
        select(literal("bucket"), no_label, bucket.c.key, *_sum_columns(bucket)),
        select(literal("latency"), no_label, latency.c.key, *_sum_columns(latency)),
        select(literal("user"), User.username, literal(0, BigInteger), *_sum_columns(top)).join(
            User, User.id == top.c.key
        ),
    ]
    union = union_all(*parts).subquery("metrics")
    return select(*union.c)


class _Rollups:
    """The rollup rows of a window (all of them for the `all` period)."""

    def __init__(self, window: MetricsWindow) -> None:
        self.first_hour = None if window.start is None else int(window.start.timestamp()) // 3600
        # Windows of 6-hour buckets start on a block: their users come from the 6-hourly rollup.
        self.user_table = SixHourlyUserUsage if window.bucket_s % (6 * 3600) == 0 else HourlyUserUsage

    def models(self, key: SQLColumnExpression[Any]) -> Select[*tuple[Any, ...]]:
        statement = select(key.label("key"), *(getattr(HourlyModelUsage, n) for n in SUM_COLUMNS))
        if self.first_hour is not None:
            statement = statement.where(HourlyModelUsage.epoch_hour >= self.first_hour)
        return statement

    def users(self) -> Select[*tuple[Any, ...]]:
        if self.first_hour is None:
            columns = (getattr(UserUsageTotal, name) for name in SUM_COLUMNS)
            return select(UserUsageTotal.user_id.label("key"), *columns)
        table = self.user_table
        columns = (getattr(table, name) for name in SUM_COLUMNS)
        return select(table.user_id.label("key"), *columns).where(table.epoch_hour >= self.first_hour)

    def latency(self) -> Select[*tuple[Any, ...]]:
        statement = select(HourlyLatency.under_ms.label("key"), HourlyLatency.requests)
        if self.first_hour is None:
            return statement
        return statement.where(HourlyLatency.epoch_hour >= self.first_hour)


def _sums_of(changes: Subquery | CTE, key: ColumnElement[Any]) -> Select[*tuple[Any, ...]]:
    return select(key.label("key"), *(changes.c[name] for name in SUM_COLUMNS))


def _grouped(
    rolled: Select[*tuple[Any, ...]] | None,
    live: Select[*tuple[Any, ...]],
    *,
    only_requests: bool = False,
) -> Subquery:
    """Rollup rows and live rows (same columns: key, sums) summed by key."""
    source = (live if rolled is None else union_all(rolled, live)).subquery()
    names = ("requests",) if only_requests else SUM_COLUMNS
    return (
        select(source.c.key, *(func.sum(source.c[name]).label(name) for name in names))
        .group_by(source.c.key)
        .subquery()
    )


def _sum_columns(grouped: Subquery) -> list[ColumnElement[Any]]:
    """The seven sums of a grouped subquery, zeros for those it lacks (latency has requests only)."""
    return [
        grouped.c[name] if name in grouped.c else literal(0, BigInteger).label(name) for name in SUM_COLUMNS
    ]
