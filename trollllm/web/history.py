"""`/dashboard/request-history`: the user's requests as a paged table, one request's detail, and CSV export.

The table is a plain GET form (the date range lives in the URL, so it works with JavaScript off). The
CSV is streamed in keyset batches: a year of requests never sits in memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, tzinfo
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy import or_, select
from starlette.responses import RedirectResponse, Response, StreamingResponse

from trollllm.accounts.timezones import zone_names, zone_of
from trollllm.errors import InvalidRequest
from trollllm.money import Money
from trollllm.pricing.service import enabled_models
from trollllm.state import get_state
from trollllm.usage.history import (
    HistoryFilter,
    PageParams,
    find_request_log,
    is_refusal,
    page_request_logs,
    parse_history_filter,
    parse_page_params,
)
from trollllm.usage.tables import RequestLog
from trollllm.web.cost_formula import cost_formula, model_prices
from trollllm.web.render import page
from trollllm.web.session import csrf_token, page_user

router = APIRouter(include_in_schema=False)

_CSV_BATCH = 500
_CSV_COLUMNS = (
    "request_id", "model", "input_tokens", "output_tokens", "cache_write_tokens",
    "cache_hit_tokens", "credits_cost_usd", "status", "error_type", "latency_ms", "key", "stream",
)  # fmt: skip
_KEY_NAMES = {"api": "API key", "friend": "Friend Key", "byok": "own provider key"}


def page_numbers(current: int, total_pages: int) -> list[int | None]:
    """Page links around the current page, with None for a gap: 1 … 4 5 6 … 20."""
    wanted = {1, total_pages, current - 1, current, current + 1}
    pages = sorted(number for number in wanted if 1 <= number <= total_pages)
    numbers: list[int | None] = []
    for number in pages:
        if numbers and number - (numbers[-1] or 0) > 1:
            numbers.append(None)
        numbers.append(number)
    return numbers


@router.get("/dashboard/request-history")
async def history_page(request: Request) -> Response:
    """20 requests a page, newest first, filtered by range (days in the user's time zone), key, model and
    status, all kept in the URL; a page past the end shows the last page and says so."""
    user = await page_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    query = request.query_params
    since, until = query.get("from", ""), query.get("to", "")
    error = None
    try:
        params = parse_page_params(query.get("page"), None, since, until, zone_of(user.time_zone))
        filters = parse_history_filter(query.get("model"), query.get("status"), query.get("key"))
    except InvalidRequest as invalid:
        error, params, filters = invalid.message, PageParams(), HistoryFilter()
    state = get_state(request)
    async with state.sessions() as session:
        result = await page_request_logs(session, params, user_id=user.id, filters=filters)
        past_end = result.total_pages > 0 and result.page > result.total_pages
        if past_end:  # `?page=99` of 3: the last page, with a note
            last = replace(params, page=result.total_pages)
            result = await page_request_logs(session, last, user_id=user.id, filters=filters)
        models = [model.model_id for model in await enabled_models(session)]
    filtered = bool(since or until or filters.query())
    kept = {"from": since, "to": until, **filters.query()}
    return page(
        "history.html",
        user=user,
        csrf=csrf_token(request),
        current="request-history",
        rows=[(row, is_refusal(row)) for row in result.rows],
        total=result.total,
        totals=result.totals,
        page_number=result.page,
        total_pages=result.total_pages,
        page_numbers=page_numbers(result.page, result.total_pages),
        past_end=params.page if past_end else None,
        since=since,
        until=until,
        filters=filters,
        filtered=filtered,
        models=sorted(set(models) | ({filters.model} if filters.model else set())),
        query="&" + urlencode({name: value for name, value in kept.items() if value}),
        error=error,
        zone_names=zone_names(),
        base_url=str(request.base_url).rstrip("/"),
    )


@router.get("/dashboard/request-history/export.csv")
async def history_csv(request: Request) -> Response:
    """The filtered rows as CSV (times in the user's time zone, named in the header), streamed in batches."""
    user = await page_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    query = request.query_params
    zone = zone_of(user.time_zone)
    params = parse_page_params(None, None, query.get("from"), query.get("to"), zone)
    filters = parse_history_filter(query.get("model"), query.get("status"), query.get("key"))
    state = get_state(request)
    columns = (f"time_{user.time_zone.lower()}", *_CSV_COLUMNS)  # time_utc, time_europe/paris

    async def lines() -> AsyncIterator[str]:
        yield _csv_line(columns)
        after: tuple[datetime, int] | None = None
        while True:
            statement = select(RequestLog).where(RequestLog.user_id == user.id, *filters.conditions())
            if params.since is not None:
                statement = statement.where(RequestLog.created_at >= params.since)
            if params.until is not None:
                statement = statement.where(RequestLog.created_at <= params.until)
            if after is not None:
                statement = statement.where(
                    or_(
                        RequestLog.created_at < after[0],
                        (RequestLog.created_at == after[0]) & (RequestLog.id < after[1]),
                    )
                )
            statement = statement.order_by(RequestLog.created_at.desc(), RequestLog.id.desc()).limit(
                _CSV_BATCH
            )
            async with state.sessions() as session:
                batch = list((await session.scalars(statement)).all())
            for row in batch:
                yield _csv_line(_csv_row(row, zone))
            if len(batch) < _CSV_BATCH:
                return
            after = (batch[-1].created_at, batch[-1].id)

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="request-history.csv"'},
    )


@router.get("/dashboard/request-history/{request_id}")
async def request_detail(request: Request, request_id: str) -> Response:
    """One request: id, key used, tokens, cache tokens and its cost."""
    user = await page_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    async with get_state(request).sessions() as session:
        row = await find_request_log(session, request_id, user_id=user.id)
    if row is None:
        return page("not_found.html", 404, user=user, csrf=csrf_token(request), current="request-history")
    return page(
        "request_detail.html",
        user=user,
        csrf=csrf_token(request),
        current="request-history",
        row=row,
        refused=is_refusal(row),
        key=_KEY_NAMES[key_kind(row)],
        formula=cost_formula(row, await model_prices(get_state(request), row.model)),
    )


def key_kind(row: RequestLog) -> str:
    """Which key a request used: `api`, `friend` or `byok`."""
    return "friend" if row.is_friend_key_request else ("byok" if row.is_byok else "api")


def _csv_row(row: RequestLog, zone: tzinfo) -> tuple[object, ...]:
    return (
        row.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"), row.request_id, row.model,
        row.input_tokens, row.output_tokens, row.cache_write_tokens, row.cache_hit_tokens,
        format(Money(row.credits_cost_nanos).to_decimal(), "f"), row.status_code, row.error_type or "",
        row.latency_ms, key_kind(row), "yes" if row.is_stream else "no",
    )  # fmt: skip


def _csv_line(values: tuple[object, ...]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()
