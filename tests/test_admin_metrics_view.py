"""What /admin makes of the metrics report: exact spend, typed rows, and the series laid out as SVG."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trollllm.usage.metrics import MetricsReport, MetricsWindow, UsageSums
from trollllm.web.admin.metrics_view import Point, overview_of, series_chart

START = datetime(2026, 3, 1, tzinfo=UTC)


def _report(points: int, bucket: int = 3600) -> MetricsReport:
    window = MetricsWindow("24h", bucket, START, START + timedelta(days=1))
    spent = UsageSums(requests=3, errors=1, input_tokens=1_000, output_tokens=500, cost_nanos=17_500_000)
    cheap = UsageSums(requests=1, input_tokens=10, output_tokens=5, cost_nanos=1_000)
    return MetricsReport(
        window,
        totals=UsageSums(requests=4, errors=1, input_tokens=1_010, output_tokens=505, cost_nanos=17_501_000),
        by_model={"gpt-cheap": cheap, "gpt-test": spent},
        top_users=[("alice", spent)],
        series=[
            (START + timedelta(seconds=bucket * n), UsageSums(requests=n % 3, cost_nanos=n * 1_000))
            for n in range(points)
        ],
        latency_p50_ms=12,
        latency_p95_ms=40,
    )


def test_the_report_becomes_typed_rows_with_exact_nano_dollars_models_by_spend() -> None:
    overview = overview_of(_report(24))

    assert overview.spend_nanos == 17_501_000 and overview.error_rate == 1 / 4
    assert overview.by_model[0].spend_nanos == 17_500_000 and overview.by_model[0].errors == 1
    assert overview.top_users[0].username == "alice"
    assert overview.points[5].start == START + timedelta(hours=5)
    assert overview.points[5].spend_nanos == 5_000


def test_the_chart_labels_at_most_six_buckets_always_the_newest() -> None:
    overview = overview_of(_report(28, bucket=6 * 3600))

    chart = series_chart(overview.points, overview.bucket_seconds)

    labelled = [bar for bar in chart.bars if bar.label]
    assert len(chart.bars) == 28 and 1 <= len(labelled) <= 6
    assert chart.bars[-1].label != ""
    assert chart.max_requests == 2


def test_an_empty_series_draws_no_bar_and_no_scale() -> None:
    chart = series_chart([], 3600)

    assert chart.bars == [] and chart.max_requests == 0 and chart.spend_points == ""


def test_the_busiest_bucket_fills_the_plot_height() -> None:
    points = [Point(START, 1, 0, 0), Point(START + timedelta(hours=1), 4, 0, 10)]

    chart = series_chart(points, 3600)

    assert chart.bars[1].y == chart.plot_top and chart.bars[1].height == chart.plot_bottom - chart.plot_top
    assert chart.bars[0].height == (chart.plot_bottom - chart.plot_top) / 4
