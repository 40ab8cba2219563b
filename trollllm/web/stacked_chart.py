"""Stacked bars for the usage view: one bar per time bucket, one segment per model or key, each segment a
link to the request history filtered to it. Drawn server-side as SVG (a wide and a narrow drawing, as the
dashboard's chart), so the page needs no JavaScript.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trollllm.usage.breakdown import Bucket
from trollllm.web.usage_chart import BOTTOM, HEIGHT, TOP, Frame

MAX_SERIES = 8  # colours in app.css (`.series-0` … `.series-7`); more groups share the last one
# No value axis (the page states the tallest bar), so narrow side margins; the narrow drawing keeps the
# dashboard chart's phone scale (labels at about 11 px on a 390 px screen).
WIDE = Frame(720, 24, 24, "wide")
NARROW = Frame(360, 14, 20, "narrow")  # room on the right for the latest bar's label


@dataclass(frozen=True, slots=True)
class Segment:
    """One group's part of one bar, in SVG units, with where it links and what it says."""

    x: float
    y: float
    width: float
    height: float
    series: int
    href: str
    label: str


@dataclass(frozen=True, slots=True)
class StackedBar:
    """One bucket's bar: its segments bottom-up, and its axis label (empty for most bars)."""

    segments: list[Segment]
    center: float
    tick: str


@dataclass(frozen=True, slots=True)
class StackedChart:
    """Everything the template draws for one metric in one frame."""

    bars: list[StackedBar]
    max_text: str
    width: int
    variant: str
    plot_left: int
    plot_right: int
    plot_top: int = TOP
    plot_bottom: int = HEIGHT - BOTTOM
    height: int = HEIGHT


def _tick(bucket: Bucket, index: int, count: int) -> str:
    every = 6 if bucket.hourly else max(1, -(-count // 6))
    if (count - 1 - index) % every:  # labelled back from the last bar, so the latest always is
        return ""
    return bucket.label[11:16] if bucket.hourly else bucket.label[5:]


def stacked_chart(
    buckets: list[Bucket],
    values: dict[tuple[int, int], int],
    series_count: int,
    frame: Frame,
    describe: Callable[[int, int, int], tuple[str, str]],
    max_text: Callable[[int], str],
) -> StackedChart:
    """Bars for `values` ((bucket index, series index) -> amount), scaled to the largest bar.

    `describe(bucket, series, amount)` gives a segment's link and label; `max_text` writes the axis top.
    """
    plot_width = frame.width - frame.left - frame.right
    plot_height = HEIGHT - TOP - BOTTOM
    totals = [sum(values.get((index, s), 0) for s in range(series_count)) for index in range(len(buckets))]
    top = max(totals, default=0)
    slot = plot_width / max(len(buckets), 1)
    bars = []
    for index, bucket in enumerate(buckets):
        base = float(TOP + plot_height)
        segments = []
        for series in range(series_count):
            amount = values.get((index, series), 0)
            if amount <= 0 or top <= 0:
                continue
            height = plot_height * amount / top
            base -= height
            href, label = describe(index, series, amount)
            segments.append(
                Segment(
                    x=round(frame.left + index * slot + slot * 0.15, 2),
                    y=round(base, 2),
                    width=round(slot * 0.7, 2),
                    height=round(height, 2),
                    series=min(series, MAX_SERIES - 1),
                    href=href,
                    label=label,
                )
            )
        center = round(frame.left + (index + 0.5) * slot, 2)
        bars.append(StackedBar(segments, center, _tick(bucket, index, len(buckets))))
    return StackedChart(
        bars=bars,
        max_text=max_text(top) if top else "",
        width=frame.width,
        variant=frame.variant,
        plot_left=frame.left,
        plot_right=frame.width - frame.right,
    )
