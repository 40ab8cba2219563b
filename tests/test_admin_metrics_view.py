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


def test_the_7_day_chart_labels_days_by_their_date_at_most_six() -> None:
    overview = overview_of(_report(28, bucket=6 * 3600))  # 2026-03-01 00:00 to 03-07 18:00

    chart = series_chart(overview.points, overview.bucket_seconds)

    labels = [(bar.point.start, bar.label) for bar in chart.bars if bar.label]
    assert len(chart.bars) == 28 and chart.max_requests == 2
    assert [label for _, label in labels] == ["Mar 1", "Mar 3", "Mar 5", "Mar 7"]
    assert all(start.hour == 0 for start, _ in labels), "a date labels the bucket that starts its day"


def test_a_day_of_hourly_buckets_labels_times_always_the_newest() -> None:
    overview = overview_of(_report(24))

    chart = series_chart(overview.points, overview.bucket_seconds)

    labels = [bar.label for bar in chart.bars if bar.label]
    assert labels == ["03:00", "07:00", "11:00", "15:00", "19:00", "23:00"]


def test_the_30_day_chart_labels_dates_always_the_newest() -> None:
    overview = overview_of(_report(30, bucket=86_400))

    chart = series_chart(overview.points, overview.bucket_seconds)

    labels = [bar.label for bar in chart.bars if bar.label]
    assert labels == ["Mar 5", "Mar 10", "Mar 15", "Mar 20", "Mar 25", "Mar 30"]


def test_an_empty_series_draws_no_bar_and_no_scale() -> None:
    chart = series_chart([], 3600)

    assert chart.bars == [] and chart.max_requests == 0 and chart.spend_points == ""


def test_the_busiest_bucket_fills_the_plot_height() -> None:
    points = [Point(START, 1, 0, 0), Point(START + timedelta(hours=1), 4, 0, 10)]

    chart = series_chart(points, 3600)

    assert chart.bars[1].y == chart.plot_top and chart.bars[1].height == chart.plot_bottom - chart.plot_top
    assert chart.bars[0].height == (chart.plot_bottom - chart.plot_top) / 4
