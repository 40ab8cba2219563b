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
from datetime import UTC, date, datetime, time, tzinfo

from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, func, not_, select
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


# Statuses the gateway itself refuses with before anything goes upstream (SPEC §7: logged, charged nothing).
REFUSAL_STATUSES = (401, 402, 403, 404, 429)
STATUS_KINDS = ("success", "refused", "failed")
KEY_KINDS = ("api", "friend", "byok")
_CODE = re.compile(r"[1-5][0-9]{2}")


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """The history's filters (SPEC §7): one model, a status kind or code, and the key used."""

    model: str | None = None
    status: str | None = None  # success | refused | failed | an HTTP status code
    key: str | None = None  # api | friend | byok

    def conditions(self) -> list[ColumnElement[bool]]:
        """The SQL conditions of these filters."""
        log = RequestLog
        found: list[ColumnElement[bool]] = []
        if self.model:
            found.append(log.model == self.model)
        refused = refused_by_gateway()
        if self.status == "success":
            found.append(log.is_success.is_(True))
        elif self.status == "refused":
            found.append(and_(not_(log.is_success), refused))
        elif self.status == "failed":
            found.append(and_(not_(log.is_success), not_(refused)))
        elif self.status:
            found.append(log.status_code == int(self.status))
        if self.key == "api":
            found.append(and_(not_(log.is_friend_key_request), not_(log.is_byok)))
        elif self.key == "friend":
            found.append(log.is_friend_key_request.is_(True))
        elif self.key == "byok":
            found.append(log.is_byok.is_(True))
        return found

    def query(self) -> dict[str, str]:
        """The filters as URL query parameters (the empty ones left out)."""
        return {
            name: value
            for name, value in (("model", self.model), ("status", self.status), ("key", self.key))
            if value
        }


def refused_by_gateway() -> ColumnElement[bool]:
    """A refusal status with no factory key and no own key: the gateway answered it, nothing upstream."""
    log = RequestLog
    return and_(log.status_code.in_(REFUSAL_STATUSES), log.factory_key_id.is_(None), not_(log.is_byok))


def parse_history_filter(model: str | None, status: str | None, key: str | None) -> HistoryFilter:
    """Validate `model`, `status` and `key` (400 naming the field)."""
    model = (model or "").strip() or None
    if model is not None and len(model) > 128:
        raise InvalidRequest("model must be at most 128 characters", field="model")
    status = (status or "").strip().lower() or None
    if status is not None and status not in STATUS_KINDS and not _CODE.fullmatch(status):
        raise InvalidRequest(
            "status must be success, refused, failed or an HTTP status code such as 402", field="status"
        )
    key = (key or "").strip().lower() or None
    if key is not None and key not in KEY_KINDS:
        raise InvalidRequest("key must be api, friend or byok", field="key")
    return HistoryFilter(model=model, status=status, key=key)


def is_refusal(row: RequestLog) -> bool:
    """A request the gateway refused itself (never sent upstream, charged nothing)."""
    return (
        not row.is_success
        and row.status_code in REFUSAL_STATUSES
        and row.factory_key_id is None
        and not row.is_byok
    )


def parse_page_params(
    page: str | None,
    limit: str | None,
    since: str | None,
    until: str | None,
    zone: tzinfo = UTC,
) -> PageParams:
    """Validate the raw `page`, `limit`, `from` and `to` query strings (400 naming the field).

    `page` ≥ 1 (default 1); `limit` 1..100 (default 20). `from`/`to` are ISO 8601 instants, both
    inclusive: `Z` or an offset is honoured, a value without one is in `zone` (UTC for the API; the
    user's time zone on the pages), and a date alone means that whole day in `zone` (`from=2026-01-15`
    starts at 00:00:00, `to=2026-01-15` ends at 23:59:59.999999).
    """
    page_number = _parse_int(page, "page", default=1, low=1, high=MAX_PAGE)
    page_size = _parse_int(limit, "limit", default=DEFAULT_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE)
    start = parse_instant(since, "from", end_of_day=False, zone=zone)
    end = parse_instant(until, "to", end_of_day=True, zone=zone)
    if start is not None and end is not None and start > end:
        raise InvalidRequest("from must not be after to", field="from")
    return PageParams(page=page_number, limit=page_size, since=start, until=end)


def _parse_int(raw: str | None, field: str, *, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise InvalidRequest(f"{field} must be an integer from {low} to {high}", field=field)
    return int(raw)


def parse_instant(raw: str | None, field: str, *, end_of_day: bool, zone: tzinfo = UTC) -> datetime | None:
    """An ISO 8601 date or date-time as aware UTC; a date alone is its first (or last) microsecond."""
    if raw is None or raw == "":
        return None
    text = raw.strip()
    if unencoded := _UNENCODED_PLUS.fullmatch(text):
        text = f"{unencoded['head']}+{unencoded['offset']}"
    try:
        if len(text) <= 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time.max if end_of_day else time.min, tzinfo=zone).astimezone(UTC)
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=zone).astimezone(UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidRequest(
            f"{field} must be an ISO 8601 date or date-time, e.g. 2026-01-15 or 2026-01-15T10:30:00Z",
            field=field,
        ) from exc


@dataclass(frozen=True, slots=True)
class HistoryTotals:
    """Sums over every row the filters match (not only the page's)."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_hit_tokens: int = 0
    cost_nanos: int = 0
    refused: int = 0


@dataclass(frozen=True, slots=True)
class LogPage:
    """One page of request logs, newest first, and the number of rows matching the filter."""

    rows: list[RequestLog]
    total: int
    page: int
    limit: int
    totals: HistoryTotals | None = None

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
    filters: HistoryFilter | None = None,
) -> LogPage:
    """One page of the logs of a user (all their requests, friend-key ones included) or of a friend key.

    Newest first (`created_at DESC, id DESC`); at least one of `user_id`/`friend_key_id` is required.
    The count and the totals of every matching row come from one aggregate query.
    """
    conditions = _log_filter(user_id, friend_key_id, params.since, params.until)
    if filters is not None:
        conditions += filters.conditions()
    log = RequestLog
    refused = and_(not_(log.is_success), refused_by_gateway())
    sums = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(log.input_tokens), 0),
                func.coalesce(func.sum(log.output_tokens), 0),
                func.coalesce(func.sum(log.cache_write_tokens), 0),
                func.coalesce(func.sum(log.cache_hit_tokens), 0),
                func.coalesce(func.sum(log.credits_cost_nanos), 0),
                func.count().filter(refused),
            ).where(*conditions)
        )
    ).one()
    totals = HistoryTotals(*(int(value or 0) for value in sums))
    total = totals.requests
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
    return LogPage(rows=rows, total=total, page=params.page, limit=params.limit, totals=totals)


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
    errorMessage: str | None
    isRefused: bool
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
            errorMessage=row.error_message,
            isRefused=is_refusal(row),
            createdAt=row.created_at,
        )


class TotalsView(BaseModel):
    """The totals of the filtered rows (all pages)."""

    requests: int
    refused: int
    inputTokens: int
    outputTokens: int
    cacheWriteTokens: int
    cacheHitTokens: int
    creditsCost: float
    creditsCostDisplay: str

    @classmethod
    def of(cls, totals: HistoryTotals) -> TotalsView:
        """The view of the totals."""
        cost = Money(totals.cost_nanos)
        return cls(
            requests=totals.requests,
            refused=totals.refused,
            inputTokens=totals.input_tokens,
            outputTokens=totals.output_tokens,
            cacheWriteTokens=totals.cache_write_tokens,
            cacheHitTokens=totals.cache_hit_tokens,
            creditsCost=cost.to_json(),
            creditsCostDisplay=cost.format_spend(),
        )


class RequestLogPageView(BaseModel):
    """A page of request logs: `{requests, total, page, limit, totalPages, totals}`."""

    requests: list[RequestLogView]
    total: int
    page: int
    limit: int
    totalPages: int
    totals: TotalsView

    @classmethod
    def of(cls, page: LogPage, owner_username: str) -> RequestLogPageView:
        """The view of a page of one owner's logs."""
        return cls(
            requests=[RequestLogView.of(row, owner_username) for row in page.rows],
            total=page.total,
            page=page.page,
            limit=page.limit,
            totalPages=page.total_pages,
            totals=TotalsView.of(page.totals or HistoryTotals()),
        )
