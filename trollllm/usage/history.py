"""Reading request logs: paging parameters, the paged query, and the JSON view of a row.

Shared by `GET /api/user/request-history` (filtered by the caller's `user_id`) and the friend key's
activity (filtered by `friend_key_id`): both answer `{requests, total, page, limit, totalPages}`.

Every query filters on an indexed column and `created_at`, counts with `COUNT(*)` on the same filter and
fetches one page with `LIMIT/OFFSET`, so the database walks `ix_request_logs_user_time` (or
`ix_request_logs_friend_key_time`) and only the page's rows reach Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.errors import InvalidRequest
from trollllm.money import Money
from trollllm.usage.tables import RequestLog

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_PAGE = 10_000_000  # keeps OFFSET far inside int64 on both databases

_DIGITS = re.compile(r"[0-9]{1,9}")
# A `+HH:MM` offset whose `+` a client forgot to percent-encode arrives as a space.
_UNENCODED_PLUS = re.compile(r"(?P<head>.+T.+) (?P<offset>[0-9]{2}(?::?[0-9]{2})?)")


@dataclass(frozen=True, slots=True)
class PageParams:
    """A validated page request: 1-based `page`, `limit` rows, and an inclusive UTC time range."""

    page: int = 1
    limit: int = DEFAULT_PAGE_SIZE
    since: datetime | None = None
    until: datetime | None = None

    @property
    def offset(self) -> int:
        """The SQL OFFSET of this page."""
        return (self.page - 1) * self.limit


def parse_page_params(
    page: str | None, limit: str | None, since: str | None, until: str | None
) -> PageParams:
    """Validate the raw `page`, `limit`, `from` and `to` query strings (400 naming the field).

    `page` ≥ 1 (default 1); `limit` 1..100 (default 20). `from`/`to` are ISO 8601 instants, both
    inclusive: `Z` or an offset is honoured, a value without one is UTC, and a date alone means the whole
    day in UTC (`from=2026-01-15` starts at 00:00:00, `to=2026-01-15` ends at 23:59:59.999999).
    """
    page_number = _parse_int(page, "page", default=1, low=1, high=MAX_PAGE)
    page_size = _parse_int(limit, "limit", default=DEFAULT_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE)
    start = parse_instant(since, "from", end_of_day=False)
    end = parse_instant(until, "to", end_of_day=True)
    if start is not None and end is not None and start > end:
        raise InvalidRequest("from must not be after to", field="from")
    return PageParams(page=page_number, limit=page_size, since=start, until=end)


def _parse_int(raw: str | None, field: str, *, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise InvalidRequest(f"{field} must be an integer from {low} to {high}", field=field)
    return int(raw)


def parse_instant(raw: str | None, field: str, *, end_of_day: bool) -> datetime | None:
    """An ISO 8601 date or date-time as aware UTC; a date alone is its first (or last) microsecond."""
    if raw is None or raw == "":
        return None
    text = raw.strip()
    if unencoded := _UNENCODED_PLUS.fullmatch(text):
        text = f"{unencoded['head']}+{unencoded['offset']}"
    try:
        if len(text) <= 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time.max if end_of_day else time.min, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidRequest(
            f"{field} must be an ISO 8601 date or date-time, e.g. 2026-01-15 or 2026-01-15T10:30:00Z",
            field=field,
        ) from exc


@dataclass(frozen=True, slots=True)
class LogPage:
    """One page of request logs, newest first, and the number of rows matching the filter."""

    rows: list[RequestLog]
    total: int
    page: int
    limit: int

    @property
    def total_pages(self) -> int:
        """Pages needed for `total` rows (0 when there are none)."""
        return -(-self.total // self.limit)


def _log_filter(
    user_id: int | None, friend_key_id: int | None, since: datetime | None, until: datetime | None
) -> list[ColumnElement[bool]]:
    if user_id is None and friend_key_id is None:
        raise ValueError("request logs are only listed for one user or one friend key")
    conditions: list[ColumnElement[bool]] = []
    if user_id is not None:
        conditions.append(RequestLog.user_id == user_id)
    if friend_key_id is not None:
        conditions.append(RequestLog.friend_key_id == friend_key_id)
    if since is not None:
        conditions.append(RequestLog.created_at >= since)
    if until is not None:
        conditions.append(RequestLog.created_at <= until)
    return conditions


async def page_request_logs(
    session: AsyncSession,
    params: PageParams,
    *,
    user_id: int | None = None,
    friend_key_id: int | None = None,
) -> LogPage:
    """One page of the logs of a user (all their requests, friend-key ones included) or of a friend key.

    Newest first (`created_at DESC, id DESC`); at least one of `user_id`/`friend_key_id` is required.
    """
    conditions = _log_filter(user_id, friend_key_id, params.since, params.until)
    total = await session.scalar(select(func.count()).select_from(RequestLog).where(*conditions))
    rows: list[RequestLog] = []
    if total and params.offset < total:
        statement = (
            select(RequestLog)
            .where(*conditions)
            .order_by(RequestLog.created_at.desc(), RequestLog.id.desc())
            .limit(params.limit)
            .offset(params.offset)
        )
        rows = list((await session.scalars(statement)).all())
    return LogPage(rows=rows, total=int(total or 0), page=params.page, limit=params.limit)


async def find_request_log(session: AsyncSession, request_id: str, *, user_id: int) -> RequestLog | None:
    """The log row of `request_id` if it is one of `user_id`'s requests (None otherwise)."""
    statement = select(RequestLog).where(RequestLog.request_id == request_id, RequestLog.user_id == user_id)
    return await session.scalar(statement)


class RequestLogView(BaseModel):
    """One request as a user sees it (SPEC §6 fields; the operator's factory key id is left out)."""

    requestId: str
    userId: str
    model: str
    inputTokens: int
    outputTokens: int
    cacheWriteTokens: int
    cacheHitTokens: int
    creditsCost: float
    creditsCostDisplay: str
    statusCode: int
    latencyMs: int
    isSuccess: bool
    isByok: bool
    isFriendKeyRequest: bool
    friendKeyId: int | None
    userKeyId: int | None
    isStream: bool
    errorType: str | None
    createdAt: datetime

    @classmethod
    def of(cls, row: RequestLog, owner_username: str) -> RequestLogView:
        """The view of one log row; `userId` is its owner's username (also on friend-key requests).

        Every listing filters by the owner (`user_id`), so the caller passes the username it already has
        instead of joining `users` per row.
        """
        cost = Money(row.credits_cost_nanos)
        return cls(
            requestId=row.request_id,
            userId=owner_username,
            model=row.model,
            inputTokens=row.input_tokens,
            outputTokens=row.output_tokens,
            cacheWriteTokens=row.cache_write_tokens,
            cacheHitTokens=row.cache_hit_tokens,
            creditsCost=cost.to_json(),
            creditsCostDisplay=cost.format_cost(),
            statusCode=row.status_code,
            latencyMs=row.latency_ms,
            isSuccess=row.is_success,
            isByok=row.is_byok,
            isFriendKeyRequest=row.is_friend_key_request,
            friendKeyId=row.friend_key_id,
            userKeyId=row.user_key_id,
            isStream=row.is_stream,
            errorType=row.error_type,
            createdAt=row.created_at,
        )


class RequestLogPageView(BaseModel):
    """A page of request logs: `{requests, total, page, limit, totalPages}`."""

    requests: list[RequestLogView]
    total: int
    page: int
    limit: int
    totalPages: int

    @classmethod
    def of(cls, page: LogPage, owner_username: str) -> RequestLogPageView:
        """The view of a page of one owner's logs."""
        return cls(
            requests=[RequestLogView.of(row, owner_username) for row in page.rows],
            total=page.total,
            page=page.page,
            limit=page.limit,
            totalPages=page.total_pages,
        )
