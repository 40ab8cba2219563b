"""A period's failed and refused requests counted by error type: what the admin error rate is made of.

Read from the request logs through their partial index of failed rows (`ix_request_logs_failed_time`), so
successful requests are never read. The logs are kept 30 days: for the `all` period these are the errors
of the logs still kept, while the error rate itself counts every request ever (the rollups).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, literal, not_, select
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.usage.history import refused_by_gateway
from trollllm.usage.tables import RequestLog

ERROR_TYPE_ROWS = 20
"""The most frequent error types shown; the rest are summed into one `other` row."""
OTHER = "other"


@dataclass(frozen=True, slots=True)
class ErrorTypeCount:
    """Requests that ended with one error type and status: refused by the gateway or failed upstream."""

    error_type: str
    status_code: int | None
    refused: bool
    requests: int


async def read_error_types(
    session: AsyncSession, since: datetime | None, until: datetime
) -> list[ErrorTypeCount]:
    """The failed requests logged in [`since`, `until`] by error type and status, most first (then by
    type); beyond `ERROR_TYPE_ROWS` kinds, the rest as one `other` row (no status)."""
    log = RequestLog
    error_type = func.coalesce(log.error_type, literal("upstream_error"))
    refused = case((refused_by_gateway(), 1), else_=0)
    statement = (
        select(error_type, log.status_code, refused, func.count())
        .where(not_(log.is_success), log.created_at <= until)
        .group_by(error_type, log.status_code, refused)
    )
    if since is not None:
        statement = statement.where(log.created_at >= since)
    rows = [
        ErrorTypeCount(str(kind), int(status), bool(was_refused), int(count))
        for kind, status, was_refused, count in await session.execute(statement)
    ]
    rows.sort(key=lambda row: (-row.requests, row.error_type, row.status_code or 0))
    if len(rows) <= ERROR_TYPE_ROWS:
        return rows
    rest = sum(row.requests for row in rows[ERROR_TYPE_ROWS - 1 :])
    return [*rows[: ERROR_TYPE_ROWS - 1], ErrorTypeCount(OTHER, None, False, rest)]
