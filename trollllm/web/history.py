"""`/dashboard/request-history`: the user's requests as a paged table, one request's detail, and CSV export.

The table is a plain GET form (the date range lives in the URL, so it works with JavaScript off). The
CSV is streamed in keyset batches: a year of requests never sits in memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime

from fastapi import APIRouter, Request
from sqlalchemy import or_, select
from starlette.responses import RedirectResponse, Response, StreamingResponse

from trollllm.errors import InvalidRequest
from trollllm.money import Money
from trollllm.state import get_state
from trollllm.usage.history import PageParams, find_request_log, page_request_logs, parse_page_params
from trollllm.usage.tables import RequestLog
from trollllm.web.render import page
from trollllm.web.session import csrf_token, page_user

router = APIRouter(include_in_schema=False)

_CSV_BATCH = 500
_CSV_COLUMNS = (
    "time_utc", "request_id", "model", "input_tokens", "output_tokens", "cache_write_tokens",
    "cache_hit_tokens", "credits_cost_usd", "status", "latency_ms", "friend_key", "stream",
)  # fmt: skip


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
    """20 requests a page, newest first, optionally within a date range (`from`, `to`: dates or instants)."""
    user = await page_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    query = request.query_params
    since, until = query.get("from", ""), query.get("to", "")
    error = None
    try:
        params = parse_page_params(query.get("page"), None, since, until)
    except InvalidRequest as invalid:
        error, params = invalid.message, PageParams()
    async with get_state(request).sessions() as session:
        result = await page_request_logs(session, params, user_id=user.id)
    return page(
        "history.html",
        user=user,
        csrf=csrf_token(request),
        current="request-history",
        rows=result.rows,
        total=result.total,
        page_number=result.page,
        total_pages=result.total_pages,
        page_numbers=page_numbers(result.page, result.total_pages),
        since=since,
        until=until,
        error=error,
        base_url=str(request.base_url).rstrip("/"),
    )


@router.get("/dashboard/request-history/export.csv")
async def history_csv(request: Request) -> Response:
    """The filtered range as CSV, streamed in batches."""
    user = await page_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    params = parse_page_params(None, None, request.query_params.get("from"), request.query_params.get("to"))
    state = get_state(request)

    async def lines() -> AsyncIterator[str]:
        yield _csv_line(_CSV_COLUMNS)
        after: tuple[datetime, int] | None = None
        while True:
            statement = select(RequestLog).where(RequestLog.user_id == user.id)
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
                yield _csv_line(_csv_row(row))
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
        "request_detail.html", user=user, csrf=csrf_token(request), current="request-history", row=row
    )


def _csv_row(row: RequestLog) -> tuple[object, ...]:
    return (
        row.created_at.strftime("%Y-%m-%d %H:%M:%S"), row.request_id, row.model, row.input_tokens,
        row.output_tokens, row.cache_write_tokens, row.cache_hit_tokens,
        format(Money(row.credits_cost_nanos).to_decimal(), "f"), row.status_code, row.latency_ms,
        "yes" if row.is_friend_key_request else "no", "yes" if row.is_stream else "no",
    )  # fmt: skip


def _csv_line(values: tuple[object, ...]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()
