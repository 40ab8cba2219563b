"""The dashboard's 30-day chart: requests and spend per day in the user's time zone, grouped by the
database, drawn as SVG (a wide drawing for desktops, a narrow one for phones).

`daily_usage` is one `GROUP BY` (the day's index) over the signed-in user's request logs (Friend Key
requests are the owner's) through `ix_request_logs_user_time`: at most 30 rows reach Python, never the
logs. `chart_geometry` turns those days into bar and step-line coordinates the template draws server-side, so
the chart needs no JavaScript and its table fallback shows the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.usage.tables import RequestLog

CHART_DAYS = 30
# The SVG's user units: the plot sits inside the margins, labels outside it.
WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 84, 12, 28
# The phone drawing: fewer units across, so its 12.5-unit labels show at about 11 px on a 390 px screen
# (the wide drawing scaled down there had 7 px labels).
NARROW_WIDTH, NARROW_LEFT, NARROW_RIGHT = 360, 30, 76
_LABEL_EVERY = 7


@dataclass(frozen=True, slots=True)
class Frame:
    """Where a chart is drawn: its width and the plot's side margins, in SVG units."""

    width: int = WIDTH
    left: int = LEFT
    right: int = RIGHT
    variant: str = "wide"


WIDE = Frame()
NARROW = Frame(NARROW_WIDTH, NARROW_LEFT, NARROW_RIGHT, "narrow")


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
    variant: str = "wide"


async def daily_usage(
    session: AsyncSession, user_id: int, now: datetime, zone: tzinfo = UTC, days: int = CHART_DAYS
) -> list[DayUsage]:
    """Requests and spend of `user_id` for each of the `days` calendar days in `zone` ending with today,
    oldest first; days without requests are zeros.

    The days' bounds are computed here (a day in a zone with summer time may last 23 or 25 hours) and the
    database sorts each row into its day with one CASE over those bounds, grouping and summing itself.
    """
    today = now.astimezone(zone).date()
    first = today - timedelta(days=days - 1)
    bounds = [
        datetime.combine(first + timedelta(days=offset), time(), zone).astimezone(UTC)
        for offset in range(days + 1)
    ]
    created = RequestLog.created_at
    index = case(*((created < bound, number) for number, bound in enumerate(bounds[1:])), else_=days)
    bucket = index.label("bucket")
    statement = (
        select(bucket, func.count(), func.coalesce(func.sum(RequestLog.credits_cost_nanos), 0))
        .where(RequestLog.user_id == user_id, created >= bounds[0], created < bounds[-1])
        .group_by(bucket)
    )
    found = {
        int(number): (int(requests), int(spend))
        for number, requests, spend in await session.execute(statement)
    }
    return [DayUsage(first + timedelta(days=offset), *found.get(offset, (0, 0))) for offset in range(days)]


def chart_geometry(days: list[DayUsage], frame: Frame = WIDE) -> Chart:
    """Bar and step coordinates for `days`: bars scaled to the busiest day, spend steps to the costliest."""
    left = frame.left
    plot_width = frame.width - left - frame.right
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
                x=round(left + index * slot + slot * 0.15, 2),
                y=round(TOP + plot_height - height, 2),
                width=round(slot * 0.7, 2),
                height=round(height, 2),
                spend_x=round(left + (index + 0.5) * slot, 2),
                spend_y=round(TOP + plot_height - spend_height, 2),
                label=label,
            )
        )
    return Chart(
        bars=bars,
        spend_points=_steps(bars, slot),
        max_requests=max_requests,
        max_spend_nanos=max_spend,
        total_requests=sum(day.requests for day in days),
        total_spend_nanos=sum(day.spend_nanos for day in days),
        width=frame.width,
        plot_left=left,
        plot_right=frame.width - frame.right,
        variant=frame.variant,
    )


def _steps(bars: list[Bar], slot: float) -> str:
    """The spend line as steps: flat across each day's slot, rising or falling only between days (a line
    from one day's point to the next would draw spend at hours that had none)."""
    points = []
    for bar in bars:
        half = slot / 2
        points.append(f"{round(bar.spend_x - half, 2)},{bar.spend_y}")
        points.append(f"{round(bar.spend_x + half, 2)},{bar.spend_y}")
    return " ".join(points)
