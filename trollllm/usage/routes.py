"""The user's own request history (SPEC §7) and one request's log row (SPEC §6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from trollllm.accounts.sessions import CurrentUser
from trollllm.errors import NotFound
from trollllm.state import get_state
from trollllm.usage.history import (
    RequestLogPageView,
    RequestLogView,
    find_request_log,
    page_request_logs,
    parse_history_filter,
    parse_page_params,
)

router = APIRouter(tags=["usage"])

# Query values arrive as text and are validated by `parse_page_params`, so a bad value is a 400 naming
# its field (SPEC §7), like every other invalid request, rather than a schema-validation 422.
PageQuery = Annotated[str | None, Query(description="1-based page number (default 1)")]
LimitQuery = Annotated[str | None, Query(description="rows per page, 1 to 100 (default 20)")]
FromQuery = Annotated[
    str | None,
    Query(
        alias="from",
        description="ISO 8601, inclusive; `Z` or an offset, else UTC; a date alone starts at 00:00 UTC",
    ),
]
ToQuery = Annotated[
    str | None,
    Query(description="ISO 8601, inclusive; a date alone includes that whole day (UTC)"),
]


ModelQuery = Annotated[str | None, Query(description="only this model id")]
StatusQuery = Annotated[
    str | None,
    Query(description="`success`, `refused` (by the gateway, charged nothing), `failed`, or a status code"),
]
KeyQuery = Annotated[
    str | None,
    Query(description="the key used: `api` (your API key), `friend` or `byok` (own provider keys)"),
]


@router.get("/api/user/request-history", response_model=RequestLogPageView)
async def request_history(
    user: CurrentUser,
    request: Request,
    page: PageQuery = None,
    limit: LimitQuery = None,
    since: FromQuery = None,
    to: ToQuery = None,
    model: ModelQuery = None,
    status: StatusQuery = None,
    key: KeyQuery = None,
) -> RequestLogPageView:
    """The caller's requests, newest first, friend-key and refused requests included; optionally within
    `from`..`to` and filtered by model, status and key; `totals` sums every matching row."""
    params = parse_page_params(page, limit, since, to)
    filters = parse_history_filter(model, status, key)
    async with get_state(request).sessions() as session:
        result = await page_request_logs(session, params, user_id=user.id, filters=filters)
    return RequestLogPageView.of(result, user.username)


@router.get("/api/user/requests/{request_id}", response_model=RequestLogView)
async def request_log(user: CurrentUser, request: Request, request_id: str) -> RequestLogView:
    """One of the caller's requests by its `x-request-id` (404 for an unknown id or anyone else's)."""
    async with get_state(request).sessions() as session:
        row = await find_request_log(session, request_id, user_id=user.id)
    if row is None:
        raise NotFound("No such request")
    return RequestLogView.of(row, user.username)
