"""Until the metrics service lands (issue 14, item 1): the `GET /api/admin/metrics` body computed from the
request logs by the database (grouped sums; no row reaches Python), in the documented shape.

Replaced by the metrics service once merged; only `overview.py` calls it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from trollllm.accounts.tables import User
from trollllm.money import Money
from trollllm.usage.tables import RequestLog

# (window, bucket) of each period; "all" starts at the first logged request's UTC day, in days.
WINDOWS = {
    "1h": (timedelta(hours=1), 300),
    "24h": (timedelta(days=1), 3600),
    "7d": (timedelta(days=7), 21600),
}
_DAY = 86_400
_TOP = 10


def _usd(nanos: Any) -> float:
    return Money(int(nanos or 0)).to_json()


def _point(start: datetime, requests: int, errors: int, spend_nanos: int) -> dict[str, Any]:
    return {"start": start, "requests": requests, "errors": errors, "spendUsd": _usd(spend_nanos)}


def _epoch(session: AsyncSession) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "sqlite":
        return cast(func.strftime("%s", RequestLog.created_at), Integer)
    return cast(func.floor(func.extract("epoch", RequestLog.created_at)), Integer)


async def interim_metrics(session: AsyncSession, period: str, now: datetime) -> dict[str, Any]:
    """The metrics body of `period` ending at `now`."""
    if period in WINDOWS:
        window, bucket = WINDOWS[period]
        start = now - window
        first = int(start.timestamp()) // bucket * bucket
    else:
        oldest = await session.scalar(select(func.min(RequestLog.created_at)))
        bucket = _DAY
        first = int((oldest or now).timestamp()) // _DAY * _DAY
        start = datetime.fromtimestamp(first, UTC)
    in_period = (RequestLog.created_at >= start, RequestLog.created_at <= now)
    failed = func.sum(case((RequestLog.is_success.is_(False), 1), else_=0))
    sums = (
        func.count(),
        failed,
        func.coalesce(func.sum(RequestLog.input_tokens), 0),
        func.coalesce(func.sum(RequestLog.output_tokens), 0),
        func.coalesce(func.sum(RequestLog.cache_write_tokens), 0),
        func.coalesce(func.sum(RequestLog.cache_hit_tokens), 0),
        func.coalesce(func.sum(RequestLog.credits_cost_nanos), 0),
    )
    total = (await session.execute(select(*sums).where(*in_period))).one()
    requests, errors = int(total[0]), int(total[1] or 0)
    by_model = await session.execute(
        select(RequestLog.model, *sums)
        .where(*in_period)
        .group_by(RequestLog.model)
        .order_by(func.count().desc())
    )
    top_users = await session.execute(
        select(User.username, *sums)
        .join(User, User.id == RequestLog.user_id)
        .where(*in_period)
        .group_by(User.username)
        .order_by(sums[-1].desc(), func.count().desc())
        .limit(_TOP)
    )
    index = ((_epoch(session) - first) // bucket).label("bucket")
    grouped = select(index, func.count(), failed, sums[-1]).where(*in_period).group_by(index)
    series = {
        int(row[0]): (int(row[1]), int(row[2] or 0), int(row[3])) for row in await session.execute(grouped)
    }
    buckets = (int(now.timestamp()) - first) // bucket + 1
    return {
        "period": period,
        "from": start,
        "to": now,
        "requests": requests,
        "successfulRequests": requests - errors,
        "failedRequests": errors,
        "errorRate": errors / requests if requests else 0.0,
        "totalInputTokens": int(total[2]),
        "totalOutputTokens": int(total[3]),
        "cacheWriteTokens": int(total[4]),
        "cacheHitTokens": int(total[5]),
        "spendUsd": _usd(total[6]),
        "latencyP50Ms": None,
        "latencyP95Ms": None,
        "byModel": [
            {
                "model": row[0],
                "requests": row[1],
                "errors": int(row[2] or 0),
                "inputTokens": row[3],
                "outputTokens": row[4],
                "cacheWriteTokens": row[5],
                "cacheHitTokens": row[6],
                "spendUsd": _usd(row[7]),
            }
            for row in by_model
        ],
        "topUsers": [
            {
                "username": row[0],
                "requests": row[1],
                "inputTokens": row[3],
                "outputTokens": row[4],
                "spendUsd": _usd(row[7]),
            }
            for row in top_users
        ],
        "series": {
            "bucketSeconds": bucket,
            "points": [
                _point(datetime.fromtimestamp(first + n * bucket, UTC), *series.get(n, (0, 0, 0)))
                for n in range(buckets)
            ],
        },
    }
