"""Calendar arithmetic of plans: one calendar month ahead, and the monthly reset boundary (UTC)."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime


def add_one_month(moment: datetime) -> datetime:
    """The same time one calendar month later, clamped to the month's last day (Jan 31 → Feb 28/29)."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def next_month_start(moment: datetime) -> datetime:
    """00:00 UTC on the first day of the month after `moment`: when monthly counters reset next."""
    moment = moment.astimezone(UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def month_start(moment: datetime) -> datetime:
    """00:00 UTC on the first day of `moment`'s month (UTC): where the current monthly period began."""
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)
