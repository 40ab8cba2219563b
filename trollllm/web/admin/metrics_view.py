"""What `/admin` shows of the system metrics, read from the metrics API's documented shape.

`overview_of` turns the `GET /api/admin/metrics` body (SPEC §7; `period, from, to, requests, …, byModel[],
topUsers[], series{bucketSeconds, points[]}`) into typed rows, so the page depends on that one shape and
not on how the metrics service computes it. `series_chart` lays the series out as the SVG the page draws
(the same geometry and look as the dashboard's 30-day chart).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from trollllm.money import NANOS_PER_USD, Money, MoneyParseError
from trollllm.usage.metrics import Period
from trollllm.web.usage_chart import BOTTOM, HEIGHT, LEFT, RIGHT, TOP, WIDTH

PERIODS: dict[Period, str] = {
    "1h": "Last hour",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "all": "All time",
}
DEFAULT_PERIOD: Period = "24h"
_MAX_LABELS = 6


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One model's traffic in the period."""

    model: str
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    spend_nanos: int


@dataclass(frozen=True, slots=True)
class UserRow:
    """One of the period's top users."""

    username: str
    requests: int
    input_tokens: int
    output_tokens: int
    spend_nanos: int


@dataclass(frozen=True, slots=True)
class Point:
    """One bucket of the series."""

    start: datetime
    requests: int
    errors: int
    spend_nanos: int


@dataclass(frozen=True, slots=True)
class Overview:
    """The period's totals, its models, its top users and its series."""

    period: str
    requests: int
    failed_requests: int
    error_rate: float
    input_tokens: int
    output_tokens: int
    cache_write_tokens: int
    cache_hit_tokens: int
    spend_nanos: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    by_model: list[ModelRow]
    top_users: list[UserRow]
    bucket_seconds: int
    points: list[Point]


def _nanos(usd: Any) -> int:
    """A USD amount of the API (a JSON number, exact to the nano-dollar up to 15 significant digits) as
    nano-dollars; past that precision, the nearest nano-dollar."""
    if usd is None:
        return 0
    try:
        return Money.from_usd(usd).nanos
    except MoneyParseError:
        return int((Decimal(repr(usd)) * NANOS_PER_USD).to_integral_value(ROUND_HALF_EVEN))


def _moment(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def overview_of(body: Mapping[str, Any]) -> Overview:
    """The page's view of a metrics API body (the documented JSON shape, or its `model_dump()`)."""
    series = body.get("series") or {}
    return Overview(
        period=str(body["period"]),
        requests=int(body["requests"]),
        failed_requests=int(body.get("failedRequests") or 0),
        error_rate=float(body.get("errorRate") or 0),
        input_tokens=int(body["totalInputTokens"]),
        output_tokens=int(body["totalOutputTokens"]),
        cache_write_tokens=int(body.get("cacheWriteTokens") or 0),
        cache_hit_tokens=int(body.get("cacheHitTokens") or 0),
        spend_nanos=_nanos(body["spendUsd"]),
        latency_p50_ms=body.get("latencyP50Ms"),
        latency_p95_ms=body.get("latencyP95Ms"),
        by_model=[
            ModelRow(
                model=str(row["model"]),
                requests=int(row["requests"]),
                errors=int(row.get("errors") or 0),
                input_tokens=int(row["inputTokens"]),
                output_tokens=int(row["outputTokens"]),
                spend_nanos=_nanos(row["spendUsd"]),
            )
            for row in body.get("byModel") or []
        ],
        top_users=[
            UserRow(
                username=str(row["username"]),
                requests=int(row["requests"]),
                input_tokens=int(row["inputTokens"]),
                output_tokens=int(row["outputTokens"]),
                spend_nanos=_nanos(row["spendUsd"]),
            )
            for row in body.get("topUsers") or []
        ],
        bucket_seconds=int(series.get("bucketSeconds") or 0),
        points=[
            Point(
                start=_moment(point["start"]),
                requests=int(point["requests"]),
                errors=int(point.get("errors") or 0),
                spend_nanos=_nanos(point["spendUsd"]),
            )
            for point in series.get("points") or []
        ],
    )


@dataclass(frozen=True, slots=True)
class SeriesBar:
    """One bucket's bar (requests) and spend point, in SVG units, with its label and hover text."""

    point: Point
    x: float
    y: float
    width: float
    height: float
    spend_x: float
    spend_y: float
    label: str
    when: str


@dataclass(frozen=True, slots=True)
class SeriesChart:
    """Everything the template draws of the series."""

    bars: list[SeriesBar]
    spend_points: str
    max_requests: int
    max_spend_nanos: int
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    plot_top: int = TOP
    plot_bottom: int = HEIGHT - BOTTOM


def bucket_text(start: datetime, bucket_seconds: int) -> str:
    """A bucket's start as the page names it: a time for buckets under a day, a date otherwise (UTC)."""
    return start.strftime("%Y-%m-%d" if bucket_seconds >= 86_400 else "%m-%d %H:%M")


def series_chart(points: list[Point], bucket_seconds: int) -> SeriesChart:
    """Bars scaled to the busiest bucket, the spend line to the costliest; at most 6 labels, the last one
    always on the newest bucket."""
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    max_requests = max((point.requests for point in points), default=0)
    max_spend = max((point.spend_nanos for point in points), default=0)
    slot = plot_width / max(len(points), 1)
    every = max(1, -(-len(points) // _MAX_LABELS))
    short = "%m-%d" if bucket_seconds >= 86_400 else "%H:%M"
    bars = []
    for index, point in enumerate(points):
        height = plot_height * point.requests / max_requests if max_requests else 0.0
        spend_height = plot_height * point.spend_nanos / max_spend if max_spend else 0.0
        labelled = (len(points) - 1 - index) % every == 0
        bars.append(
            SeriesBar(
                point=point,
                x=round(LEFT + index * slot + slot * 0.15, 2),
                y=round(TOP + plot_height - height, 2),
                width=round(slot * 0.7, 2),
                height=round(height, 2),
                spend_x=round(LEFT + (index + 0.5) * slot, 2),
                spend_y=round(TOP + plot_height - spend_height, 2),
                label=point.start.strftime(short) if labelled else "",
                when=bucket_text(point.start, bucket_seconds),
            )
        )
    return SeriesChart(
        bars=bars,
        spend_points=" ".join(f"{bar.spend_x},{bar.spend_y}" for bar in bars),
        max_requests=max_requests,
        max_spend_nanos=max_spend,
    )
