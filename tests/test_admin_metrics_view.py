"""What /admin makes of the metrics API body: exact spend, typed rows, and the series laid out as SVG."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from trollllm.web.admin.metrics_view import Point, overview_of, series_chart

START = datetime(2026, 3, 1, tzinfo=UTC)


def _body(points: int, bucket: int = 3600) -> dict[str, Any]:
    return {
        "period": "24h", "from": START.isoformat(), "to": (START + timedelta(days=1)).isoformat(),
        "requests": 3, "successfulRequests": 2, "failedRequests": 1, "errorRate": 1 / 3,
        "totalInputTokens": 1_000, "totalOutputTokens": 500, "cacheWriteTokens": 0, "cacheHitTokens": 0,
        "spendUsd": 0.0175, "latencyP50Ms": 12, "latencyP95Ms": 40,
        "byModel": [{"model": "gpt-test", "requests": 3, "errors": 1, "inputTokens": 1_000,
                     "outputTokens": 500,
                     "cacheWriteTokens": 0, "cacheHitTokens": 0, "spendUsd": 0.0175}],
        "topUsers": [{"username": "alice", "requests": 3, "inputTokens": 1_000, "outputTokens": 500,
                      "spendUsd": 0.0175}],
        "series": {"bucketSeconds": bucket, "points": [
            {"start": (START + timedelta(seconds=bucket * n)).isoformat().replace("+00:00", "Z"),
             "requests": n % 3, "errors": 0, "inputTokens": 0, "outputTokens": 0, "spendUsd": n * 1_000 / 1e9}
            for n in range(points)]},
    }  # fmt: skip


def test_the_body_becomes_typed_rows_with_exact_nano_dollars() -> None:
    overview = overview_of(_body(24))

    assert overview.spend_nanos == 17_500_000
    assert overview.by_model[0].spend_nanos == 17_500_000 and overview.by_model[0].errors == 1
    assert overview.top_users[0].username == "alice"
    assert overview.points[5].start == START + timedelta(hours=5)
    assert overview.points[5].spend_nanos == 5_000


def test_the_chart_labels_at_most_six_buckets_always_the_newest() -> None:
    overview = overview_of(_body(28, bucket=6 * 3600))

    chart = series_chart(overview.points, overview.bucket_seconds)

    labelled = [bar for bar in chart.bars if bar.label]
    assert len(chart.bars) == 28 and 1 <= len(labelled) <= 6
    assert chart.bars[-1].label != ""
    assert chart.max_requests == 2


def test_a_float_past_nano_precision_is_the_nearest_nano_dollar() -> None:
    body = _body(1) | {"spendUsd": 0.1 + 0.2}  # 0.30000000000000004

    assert overview_of(body).spend_nanos == 300_000_000


def test_an_empty_series_draws_no_bar_and_no_scale() -> None:
    chart = series_chart([], 3600)

    assert chart.bars == [] and chart.max_requests == 0 and chart.spend_points == ""


def test_the_busiest_bucket_fills_the_plot_height() -> None:
    points = [Point(START, 1, 0, 0), Point(START + timedelta(hours=1), 4, 0, 10)]

    chart = series_chart(points, 3600)

    assert chart.bars[1].y == chart.plot_top and chart.bars[1].height == chart.plot_bottom - chart.plot_top
    assert chart.bars[0].height == (chart.plot_bottom - chart.plot_top) / 4
