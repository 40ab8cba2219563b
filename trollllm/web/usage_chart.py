"""The dashboard's 30-day chart: requests and spend per UTC day, grouped by the database, drawn as SVG.

`daily_usage` is one `GROUP BY date(created_at)` over the signed-in user's request logs (Friend Key
requests are the owner's) through `ix_request_logs_user_time`: at most 30 rows reach Python, never the
logs. `chart_geometry` turns those days into bar and line coordinates the template draws server-side, so
the chart needs no JavaScript and its table fallback shows the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.usage.tables import RequestLog

CHART_DAYS = 30
# The SVG's user units: the plot sits inside the margins, labels outside it.
WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 84, 12, 28
_LABEL_EVERY = 7


@dataclass(frozen=True, slots=True)
class DayUsage:
    """One UTC day of the user's requests: how many, and their summed cost in nano-USD."""

    day: date
    requests: int
    spend_nanos: int


@dataclass(frozen=True, slots=True)
class Bar:
    """One day's bar (requests) and its spend point, in SVG units."""

    usage: DayUsage
    x: float
    y: float
    width: float
    height: float
    spend_x: float
    spend_y: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    """Everything the template draws: bars, the spend line, the axis maxima and the day labels."""

    bars: list[Bar]
    spend_points: str
    max_requests: int
    max_spend_nanos: int
    total_requests: int
    total_spend_nanos: int
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    plot_top: int = TOP
    plot_bottom: int = HEIGHT - BOTTOM


async def daily_usage(
    session: AsyncSession, user_id: int, today: date, days: int = CHART_DAYS
) -> list[DayUsage]:
    """Requests and spend of `user_id` for each of the `days` UTC days ending with `today`, oldest first.

    Days without requests are zeros. The grouping and the sums run in the database.
    """
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(today + timedelta(days=1), time(), UTC)
    day = func.date(RequestLog.created_at).label("day")
    statement = (
        select(day, func.count(), func.coalesce(func.sum(RequestLog.credits_cost_nanos), 0))
        .where(RequestLog.user_id == user_id, RequestLog.created_at >= start, RequestLog.created_at < end)
        .group_by(day)
    )
    found: dict[date, tuple[int, int]] = {}
    for raw_day, requests, spend in (await session.execute(statement)).all():
        # SQLite's date() answers 'YYYY-MM-DD' text, PostgreSQL's a date.
        when = raw_day if isinstance(raw_day, date) else date.fromisoformat(str(raw_day)[:10])
        found[when] = (int(requests), int(spend))
    return [
        DayUsage(first + timedelta(days=offset), *found.get(first + timedelta(days=offset), (0, 0)))
        for offset in range(days)
    ]


def chart_geometry(days: list[DayUsage]) -> Chart:
    """Bar and line coordinates for `days`: bars scaled to the busiest day, the line to the costliest."""
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    max_requests = max((day.requests for day in days), default=0)
    max_spend = max((day.spend_nanos for day in days), default=0)
    slot = plot_width / max(len(days), 1)
    bars = []
    for index, day in enumerate(days):
        height = plot_height * day.requests / max_requests if max_requests else 0.0
        spend_height = plot_height * day.spend_nanos / max_spend if max_spend else 0.0
        # A label every 7 days counted back from today, so today is always labelled and none overlap.
        label = day.day.strftime("%m-%d") if (len(days) - 1 - index) % _LABEL_EVERY == 0 else ""
        bars.append(
            Bar(
                usage=day,
                x=round(LEFT + index * slot + slot * 0.15, 2),
                y=round(TOP + plot_height - height, 2),
                width=round(slot * 0.7, 2),
                height=round(height, 2),
                spend_x=round(LEFT + (index + 0.5) * slot, 2),
                spend_y=round(TOP + plot_height - spend_height, 2),
                label=label,
            )
        )
    return Chart(
        bars=bars,
        spend_points=" ".join(f"{bar.spend_x},{bar.spend_y}" for bar in bars),
        max_requests=max_requests,
        max_spend_nanos=max_spend,
        total_requests=sum(day.requests for day in days),
        total_spend_nanos=sum(day.spend_nanos for day in days),
    )
