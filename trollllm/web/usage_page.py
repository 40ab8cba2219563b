"""`/dashboard/usage`: spend and tokens over a range (24 h, 7 d, 30 d or custom days), stacked by model or by
key (API key, Friend Key, own provider keys), with totals; every bar segment and every total links to the
request history filtered to it.

All state is in the URL (`range`, `from`, `to`, `by`): presets and the grouping are links, the custom range a
GET form, so the page works without JavaScript.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta, tzinfo
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from trollllm.accounts.timezones import zone_of
from trollllm.errors import InvalidRequest
from trollllm.state import get_state
from trollllm.usage.breakdown import (
    KEY_LABELS,
    Bucket,
    GroupBy,
    Usage,
    day_buckets,
    hour_buckets,
    usage_breakdown,
)
from trollllm.web.render import count_short, page, usd_spend
from trollllm.web.session import csrf_token, page_user
from trollllm.web.stacked_chart import MAX_SERIES, NARROW, WIDE, StackedChart, stacked_chart

router = APIRouter(include_in_schema=False)

PRESETS = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days"}
_PRESET_DAYS = {"7d": 7, "30d": 30}
DEFAULT_RANGE = "7d"
MAX_CUSTOM_DAYS = 92
_HISTORY = "/dashboard/request-history"


@dataclass(frozen=True, slots=True)
class Group:
    """One model or key kind in the range: its series (colour), name, link and totals."""

    series: int
    name: str
    label: str
    href: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class Metric:
    """One chart (spend or tokens) in its wide and narrow drawings."""

    name: str
    charts: list[StackedChart]


def custom_days(since: str, until: str, zone: tzinfo) -> list[Bucket]:
    """The days from `since` to `until` (inclusive, `YYYY-MM-DD` in `zone`); 400 naming the field."""
    days: list[date] = []
    for field, raw in (("from", since), ("to", until)):
        try:
            days.append(date.fromisoformat(raw.strip()))
        except ValueError as exc:
            raise InvalidRequest(f"{field} must be a date such as 2026-01-15", field=field) from exc
    first, last = days
    if first > last:
        raise InvalidRequest("from must not be after to", field="from")
    count = (last - first).days + 1
    if count > MAX_CUSTOM_DAYS:
        raise InvalidRequest(f"A custom range is at most {MAX_CUSTOM_DAYS} days", field="to")
    return day_buckets(first, count, zone)


def _span(first: Bucket, last: Bucket) -> dict[str, str]:
    """The history's `from`/`to` for these buckets: days as dates (the history reads them in the user's
    zone), hours as instants (`to` is inclusive: the last microsecond)."""
    if first.hourly:
        return {"from": first.start.isoformat(), "to": (last.end - timedelta(microseconds=1)).isoformat()}
    return {"from": first.label, "to": last.label}


def _history(span: dict[str, str], by: GroupBy, name: str | None) -> str:
    query = dict(span)
    if name is not None:
        query["key" if by == "key" else "model"] = name
    return f"{_HISTORY}?{urlencode(query)}"


def _groups(totals: dict[str, Usage], by: GroupBy, span: dict[str, str]) -> list[Group]:
    """The groups by spend, then tokens, then name; past the last colour they share it (and its link
    drops the model, which no longer names one)."""
    ranked = sorted(totals, key=lambda name: (-totals[name].spend_nanos, -totals[name].tokens, name))
    return [
        Group(
            series=min(index, MAX_SERIES - 1),
            name=name,
            label=KEY_LABELS.get(name, name) if by == "key" else (name or "(no model)"),
            href=_history(span, by, name),
            usage=totals[name],
        )
        for index, name in enumerate(ranked)
    ]


@router.get("/dashboard/usage")
async def usage_page(request: Request) -> Response:
    """The usage view of the signed-in user."""
    user = await page_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    state = get_state(request)
    zone = zone_of(user.time_zone)
    query = request.query_params
    chosen = query.get("range", DEFAULT_RANGE)
    by: GroupBy = "key" if query.get("by") == "key" else "model"
    since, until = query.get("from", ""), query.get("to", "")
    error = None
    today = state.clock.now().astimezone(zone).date()
    buckets: list[Bucket] = []
    if chosen == "custom":
        try:
            buckets = custom_days(since, until, zone)
        except InvalidRequest as invalid:
            error = invalid.message
    if not buckets:
        chosen = chosen if chosen in PRESETS else DEFAULT_RANGE
        if chosen == "24h":
            buckets = hour_buckets(state.clock.now(), 24, zone)
        else:
            days = _PRESET_DAYS[chosen]
            buckets = day_buckets(today - timedelta(days=days - 1), days, zone)
    async with state.sessions() as session:
        cells = await usage_breakdown(session, user.id, buckets, by)
    span = _span(buckets[0], buckets[-1])
    totals: dict[str, Usage] = {}
    for (_, name), usage in cells.items():
        totals[name] = totals.get(name, Usage()) + usage
    groups = _groups(totals, by, span)
    series_of = {group.name: group.series for group in groups}
    merged: dict[str, dict[tuple[int, int], int]] = {"spend": {}, "tokens": {}}
    for (index, name), usage in cells.items():
        cell = (index, series_of[name])
        merged["spend"][cell] = merged["spend"].get(cell, 0) + usage.spend_nanos
        merged["tokens"][cell] = merged["tokens"].get(cell, 0) + usage.tokens
    by_series = {group.series: group for group in groups}

    others = len(groups) > MAX_SERIES  # the last colour is shared: its segments link to every model

    def describer(metric: str) -> Callable[[int, int, int], tuple[str, str]]:
        def describe(index: int, series: int, amount: int) -> tuple[str, str]:
            group, bucket = by_series[series], buckets[index]
            name = None if others and series == MAX_SERIES - 1 else group.name
            label = "Other models" if name is None else group.label
            shown = usd_spend(amount) if metric == "spend" else f"{count_short(amount)} tokens"
            return _history(_span(bucket, bucket), by, name), f"{label}, {bucket.label}: {shown}"

        return describe

    series_count = min(len(groups), MAX_SERIES)
    metrics = [
        Metric(
            metric,
            [
                stacked_chart(
                    buckets,
                    merged[metric],
                    series_count,
                    frame,
                    describer(metric),
                    usd_spend if metric == "spend" else count_short,
                )
                for frame in (WIDE, NARROW)
            ],
        )
        for metric in ("spend", "tokens")
    ]
    total = sum(totals.values(), Usage())
    return page(
        "usage.html",
        user=user,
        csrf=csrf_token(request),
        current="usage",
        presets=PRESETS,
        chosen=chosen,
        by=by,
        since=since if chosen == "custom" else buckets[0].label[:10],
        until=until if chosen == "custom" else buckets[-1].label[:10],
        error=error,
        groups=groups,
        total=total,
        total_href=_history(span, by, None),
        metrics=metrics,
        range_text=f"{buckets[0].label} – {buckets[-1].label}",
        hourly=buckets[0].hourly,
    )
