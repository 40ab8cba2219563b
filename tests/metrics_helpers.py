"""Helpers of the admin metrics tests: log rows written directly, and the metrics the SPEC expects of them,
computed here in Python from the rows as written (the reference the API must equal)."""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from conftest import AppHarness
from helpers import Account
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm.accounts.tables import User
from trollllm.db import transaction
from trollllm.money import Money
from trollllm.usage.rollup import LATENCY_BOUNDS_MS
from trollllm.usage.tables import RequestLog

LOOPBACK = ("127.0.0.1", 5000)


async def scrape(
    gateway: AppHarness, *, client: tuple[str, int] = LOOPBACK, **headers: str
) -> httpx.Response:
    """`GET /metrics` on the gateway's port from `client` (loopback by default: SPEC §9, no token needed)."""
    transport = httpx.ASGITransport(app=gateway.app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as scraper:
        return await scraper.get("/metrics", headers=headers)


REFUSALS = (401, 402, 403, 404, 429)  # refused by the gateway when no provider key was involved
BUCKETS = {"1h": (300, 12), "24h": (3600, 24), "7d": (21600, 28), "30d": (86400, 30), "all": (86400, None)}


@dataclass
class Row:
    """A request log row as the test wrote it."""

    username: str
    model: str
    created_at: datetime
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_hit_tokens: int = 0
    cost_nanos: int = 0
    latency_ms: int = 0
    is_success: bool = True
    request_id: str = field(default_factory=lambda: f"req_{uuid.uuid4().hex}")
    error_type: str | None = None
    status_code: int | None = None  # None: 200 for a success, 502 for a failure


async def add_users(sessions: async_sessionmaker[AsyncSession], *names: str) -> dict[str, int]:
    """Users straight in the table (no API key needed): name → id."""
    ids = {}
    async with transaction(sessions) as session:
        for name in names:
            user = User(username=name, password_hash="not-a-hash", plan="free")
            session.add(user)
            await session.flush()
            ids[name] = user.id
    return ids


async def write_logs(gateway: AppHarness, users: dict[str, int], rows: list[Row]) -> None:
    """Insert `rows` into request_logs, in order."""
    async with transaction(gateway.state.sessions) as session:
        session.add_all(
            RequestLog(
                request_id=row.request_id,
                user_id=users[row.username],
                model=row.model,
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                cache_write_tokens=row.cache_write_tokens,
                cache_hit_tokens=row.cache_hit_tokens,
                credits_cost_nanos=row.cost_nanos,
                status_code=row.status_code or (200 if row.is_success else 502),
                latency_ms=row.latency_ms,
                is_success=row.is_success,
                error_type=row.error_type,
                created_at=row.created_at,
            )
            for row in rows
        )


async def metrics(gateway: AppHarness, admin: Account, period: str) -> dict[str, Any]:
    """`GET /api/admin/metrics?period=` as the admin."""
    response = await gateway.client.get("/api/admin/metrics", params={"period": period}, headers=admin.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def iso(when: datetime) -> str:
    """How the API writes a time."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def window_start(period: str, now: datetime) -> datetime | None:
    """The first instant of `period` at `now`: whole buckets ending with the one holding now."""
    step, count = BUCKETS[period]
    if count is None:
        return None
    current = int(now.timestamp()) // step * step
    return datetime.fromtimestamp(current - (count - 1) * step, UTC)


def _percentile(latencies: list[int], fraction: float) -> int | None:
    if not latencies:
        return None
    value = sorted(latencies)[max(math.ceil(fraction * len(latencies)), 1) - 1]
    return next((bound for bound in LATENCY_BOUNDS_MS if value < bound), LATENCY_BOUNDS_MS[-1])


def _usd(nanos: int) -> float:
    return Money(nanos).to_json()


def _errors_by_type(rows: list[Row]) -> list[dict[str, Any]]:
    """The failed rows by error type and status, most first, then by type and status (as SPEC'd)."""
    counts: dict[tuple[str, int], int] = defaultdict(int)
    for row in rows:
        if not row.is_success:
            counts[(row.error_type or "upstream_error", row.status_code or 502)] += 1
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0][0], item[0][1]))
    return [
        {"errorType": kind, "statusCode": status, "refused": status in REFUSALS, "requests": count}
        for (kind, status), count in ordered
    ]


def expected_metrics(
    rows: list[Row], period: str, now: datetime, logs_since: datetime | None = None
) -> dict[str, Any]:
    """What the metrics of `period` must say of `rows` (every key but `to`); the errors by type are those
    of the rows still logged (at or after `logs_since`, when the older ones were purged)."""
    start = window_start(period, now)
    chosen = [row for row in rows if start is None or row.created_at >= start]
    logged = [row for row in chosen if logs_since is None or row.created_at >= logs_since]
    step, _ = BUCKETS[period]
    models: dict[str, list[Row]] = defaultdict(list)
    users: dict[str, list[Row]] = defaultdict(list)
    buckets: dict[int, list[Row]] = defaultdict(list)
    for row in chosen:
        models[row.model].append(row)
        users[row.username].append(row)
        buckets[int(row.created_at.timestamp()) // step * step].append(row)
    last = int(now.timestamp()) // step * step
    first = int(start.timestamp()) if start else min(buckets, default=last)
    failed = sum(not row.is_success for row in chosen)
    by_model = [
        {
            "model": model,
            "requests": len(group),
            "errors": sum(not row.is_success for row in group),
            "inputTokens": sum(row.input_tokens for row in group),
            "outputTokens": sum(row.output_tokens for row in group),
            "cacheWriteTokens": sum(row.cache_write_tokens for row in group),
            "cacheHitTokens": sum(row.cache_hit_tokens for row in group),
            "spendUsd": _usd(sum(row.cost_nanos for row in group)),
            "_sort": (-sum(row.cost_nanos for row in group), -len(group), model),
        }
        for model, group in models.items()
    ]
    top_users = [
        {
            "username": name,
            "requests": len(group),
            "inputTokens": sum(row.input_tokens for row in group),
            "outputTokens": sum(row.output_tokens for row in group),
            "spendUsd": _usd(sum(row.cost_nanos for row in group)),
            "_sort": (-sum(row.cost_nanos for row in group), -len(group), name),
        }
        for name, group in users.items()
    ]
    latencies = [row.latency_ms for row in chosen]
    previous = None
    if start is not None:
        _, count = BUCKETS[period]
        assert count is not None
        since = start - timedelta(seconds=step * count)
        earlier = [row for row in rows if since <= row.created_at < start]
        failed_before = sum(not row.is_success for row in earlier)
        previous = {
            "from": iso(since),
            "to": iso(start),
            "requests": len(earlier),
            "failedRequests": failed_before,
            "errorRate": failed_before / len(earlier) if earlier else 0.0,
            "totalInputTokens": sum(row.input_tokens for row in earlier),
            "totalOutputTokens": sum(row.output_tokens for row in earlier),
            "spendUsd": _usd(sum(row.cost_nanos for row in earlier)),
        }
    return {
        "period": period,
        "from": iso(start) if start else None,
        "requests": len(chosen),
        "successfulRequests": len(chosen) - failed,
        "failedRequests": failed,
        "errorRate": failed / len(chosen) if chosen else 0.0,
        "errorsByType": _errors_by_type(logged),
        "totalInputTokens": sum(row.input_tokens for row in chosen),
        "totalOutputTokens": sum(row.output_tokens for row in chosen),
        "cacheWriteTokens": sum(row.cache_write_tokens for row in chosen),
        "cacheHitTokens": sum(row.cache_hit_tokens for row in chosen),
        "spendUsd": _usd(sum(row.cost_nanos for row in chosen)),
        "latencyP50Ms": _percentile(latencies, 0.5),
        "latencyP95Ms": _percentile(latencies, 0.95),
        "byModel": [_public(item) for item in sorted(by_model, key=lambda item: item["_sort"])],
        "topUsers": [_public(item) for item in sorted(top_users, key=lambda item: item["_sort"])[:10]],
        "series": {
            "bucketSeconds": step,
            "points": [
                {
                    "start": iso(datetime.fromtimestamp(at, UTC)),
                    "requests": len(buckets[at]),
                    "errors": sum(not row.is_success for row in buckets[at]),
                    "inputTokens": sum(row.input_tokens for row in buckets[at]),
                    "outputTokens": sum(row.output_tokens for row in buckets[at]),
                    "spendUsd": _usd(sum(row.cost_nanos for row in buckets[at])),
                }
                for at in range(first, last + step, step)
            ],
        },
        "previous": previous,
    }


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if not key.startswith("_")}


def without_to(body: dict[str, Any]) -> dict[str, Any]:
    """The answer less `to` (the request's own time)."""
    return {key: value for key, value in body.items() if key != "to"}


FAILURES = [(None, 502), ("upstream_error", 503), ("model_not_found", 404), ("insufficient_credits", 402)]


def spread_rows(now: datetime, users: list[str], count: int, days: int, seed: int = 7) -> list[Row]:
    """`count` varied rows over the last `days` days (deterministic)."""
    import random

    chance = random.Random(seed)
    models = ["gpt-a", "gpt-b", "claude-c"]
    rows = []
    for _ in range(count):
        when = now - timedelta(seconds=chance.randint(0, days * 86400))
        rows.append(
            Row(
                username=chance.choice(users),
                model=chance.choice(models),
                created_at=when,
                input_tokens=chance.randint(0, 5000),
                output_tokens=chance.randint(0, 2000),
                cache_write_tokens=chance.choice([0, 0, 100]),
                cache_hit_tokens=chance.choice([0, 300]),
                cost_nanos=chance.randint(0, 50_000_000),
                latency_ms=chance.choice([0, 3, 45, 180, 999, 1000, 2500, 40_000]),
                is_success=chance.random() > 0.2,
            )
        )
        if not rows[-1].is_success:
            kind, status = chance.choice(FAILURES)
            rows[-1].error_type, rows[-1].status_code = kind, status
    return rows
