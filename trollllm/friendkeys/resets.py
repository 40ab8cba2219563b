"""When a Friend Key model cap resets (SPEC §3): `none`, or 00:00 in the owner's time zone every day, every
Monday or on the 1st of each month. The reset itself is applied in the hold's transaction
(`trollllm.billing.holds.place_hold`), so it is exact under concurrency."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

RESET_PERIODS = ("none", "daily", "weekly", "monthly")


def next_reset_after(period: str, after: datetime, time_zone: str) -> datetime | None:
    """The first 00:00 of the period's boundary strictly after `after`, in `time_zone`, as UTC (None for
    `none`)."""
    if period == "none":
        return None
    zone = ZoneInfo(time_zone)
    today = after.astimezone(zone).date()
    day: date
    if period == "daily":
        day = today + timedelta(days=1)
    elif period == "weekly":
        day = today + timedelta(days=7 - today.weekday())
    elif period == "monthly":
        day = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    else:
        raise ValueError(f"unknown reset period {period!r}")
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
