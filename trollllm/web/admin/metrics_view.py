"""What `/admin` shows of the system metrics, read from the metrics API's documented shape.

`overview_of` turns the `GET /api/admin/metrics` body (SPEC §7; `period, from, to, requests, …, byModel[],
topUsers[], series{bucketSeconds, points[]}`) into typed rows, so the page depends on that one shape and
not on how the metrics service computes it. `series_chart` lays the series out as the SVG the page draws
(the same geometry and look as the dashboard's 30-day chart).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from trollllm.usage.error_types import ErrorTypeCount
from trollllm.usage.metrics import MetricsReport, Period, error_rate
from trollllm.web.usage_chart import BOTTOM, HEIGHT, LEFT, RIGHT, TOP, WIDE, WIDTH, Frame

PERIODS: dict[Period, str] = {
    "1h": "Last hour",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
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
class Previous:
    """The previous period's totals, shown beside the current ones."""

    start: datetime
    requests: int
    failed_requests: int
    error_rate: float
    input_tokens: int
    output_tokens: int
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
    previous: Previous | None = None
    error_types: tuple[ErrorTypeCount, ...] = ()


def overview_of(report: MetricsReport) -> Overview:
    """The page's view of the metrics service's report (nano-dollars as they are, no JSON round trip)."""
    totals = report.totals
    before = report.previous
    previous = None
    if before is not None and report.previous_start is not None:
        previous = Previous(
            start=report.previous_start,
            requests=before.requests,
            failed_requests=before.errors,
            error_rate=error_rate(before),
            input_tokens=before.input_tokens,
            output_tokens=before.output_tokens,
            spend_nanos=before.cost_nanos,
        )
    return Overview(
        period=report.window.period,
        requests=totals.requests,
        failed_requests=totals.errors,
        error_rate=report.error_rate,
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        cache_write_tokens=totals.cache_write_tokens,
        cache_hit_tokens=totals.cache_hit_tokens,
        spend_nanos=totals.cost_nanos,
        latency_p50_ms=report.latency_p50_ms,
        latency_p95_ms=report.latency_p95_ms,
        by_model=[
            ModelRow(
                model=model,
                requests=sums.requests,
                errors=sums.errors,
                input_tokens=sums.input_tokens,
                output_tokens=sums.output_tokens,
                spend_nanos=sums.cost_nanos,
            )
            for model, sums in report.models_by_spend()
        ],
        top_users=[
            UserRow(
                username=username,
                requests=sums.requests,
                input_tokens=sums.input_tokens,
                output_tokens=sums.output_tokens,
                spend_nanos=sums.cost_nanos,
            )
            for username, sums in report.top_users
        ],
        bucket_seconds=report.window.bucket_s,
        points=[
            Point(start=start, requests=sums.requests, errors=sums.errors, spend_nanos=sums.cost_nanos)
            for start, sums in report.series
        ],
        previous=previous,
        error_types=tuple(report.error_types),
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
    variant: str = "wide"


def bucket_text(start: datetime, bucket_seconds: int) -> str:
    """A bucket's start as the page names it: a time for buckets under a day, a date otherwise (UTC)."""
    return start.strftime("%Y-%m-%d" if bucket_seconds >= 86_400 else "%m-%d %H:%M")


def axis_label(start: datetime, dated: bool) -> str:
    """A tick under the chart: `May 4` for a date, `18:00` for a time of day (UTC)."""
    return f"{start:%b} {start.day}" if dated else f"{start:%H:%M}"


def labelled_buckets(points: list[Point], bucket_seconds: int) -> tuple[set[int], bool]:
    """Which buckets get a tick, and whether the ticks are dates; at most `_MAX_LABELS`.

    Daily buckets: every k-th day back from the newest. Buckets under a day over more than a day (7d):
    the buckets that start a day, as dates, so the axis says which day is which. Otherwise (1h, 24h):
    times, every k-th back from the newest.
    """
    dated = bucket_seconds >= 86_400 or len(points) * bucket_seconds > 86_400
    candidates = list(range(len(points)))
    if dated and bucket_seconds < 86_400:
        candidates = [i for i, point in enumerate(points) if point.start.hour == point.start.minute == 0]
    every = max(1, -(-len(candidates) // _MAX_LABELS))
    return set(candidates[::-1][::every]), dated


def series_chart(points: list[Point], bucket_seconds: int, frame: Frame = WIDE) -> SeriesChart:
    """Bars scaled to the busiest bucket, the spend line to the costliest; at most 6 ticks, dated when the
    chart spans more than a day (`labelled_buckets`)."""
    left = frame.left
    plot_width = frame.width - left - frame.right
    plot_height = HEIGHT - TOP - BOTTOM
    max_requests = max((point.requests for point in points), default=0)
    max_spend = max((point.spend_nanos for point in points), default=0)
    slot = plot_width / max(len(points), 1)
    labelled, dated = labelled_buckets(points, bucket_seconds)
    bars = []
    for index, point in enumerate(points):
        height = plot_height * point.requests / max_requests if max_requests else 0.0
        spend_height = plot_height * point.spend_nanos / max_spend if max_spend else 0.0
        bars.append(
            SeriesBar(
                point=point,
                x=round(left + index * slot + slot * 0.15, 2),
                y=round(TOP + plot_height - height, 2),
                width=round(slot * 0.7, 2),
                height=round(height, 2),
                spend_x=round(left + (index + 0.5) * slot, 2),
                spend_y=round(TOP + plot_height - spend_height, 2),
                label=axis_label(point.start, dated) if index in labelled else "",
                when=bucket_text(point.start, bucket_seconds),
            )
        )
    return SeriesChart(
        bars=bars,
        spend_points=" ".join(f"{bar.spend_x},{bar.spend_y}" for bar in bars),
        max_requests=max_requests,
        max_spend_nanos=max_spend,
        width=frame.width,
        plot_left=left,
        plot_right=frame.width - frame.right,
        variant=frame.variant,
    )
