"""The Test button of a factory key or a proxy: one real call (`upstream.checks`), then the list page again
with the result and latency in the tested row. Nothing changes, so a reload may post it again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from trollllm.accounts.tables import User
from trollllm.errors import GatewayError, NotFound
from trollllm.state import AppState, get_state
from trollllm.upstream.checks import CheckPlan, UpstreamCheck, run_check
from trollllm.upstream.schemas import INT32_MAX
from trollllm.web.admin.access import admin_form, service_error


class ListPage(Protocol):
    """A list page drawn again: with a form error, or with the Test results by row id."""

    async def __call__(
        self,
        request: Request,
        admin: User,
        status_code: int = 200,
        *,
        errors: dict[str, str] | None = None,
        checks: dict[int, UpstreamCheck] | None = None,
    ) -> Response: ...


def row_id_of(text: str) -> int | None:
    """A row id from the path, None unless it is a positive 32-bit number."""
    return int(text) if text.isdigit() and len(text) <= 10 and 0 < int(text) <= INT32_MAX else None


async def test_button(
    request: Request,
    row_id: str,
    what: str,
    plan_check: Callable[[AsyncSession, AppState, int], Awaitable[CheckPlan]],
    render: ListPage,
) -> Response:
    """Check the form, plan the check of row `row_id` (a `what`: "factory key", "proxy"), run it, and draw
    the page with its result; an unknown row is the page with a 404 error."""
    posted = await admin_form(request)
    if isinstance(posted, Response):
        return posted
    admin, _form = posted
    number = row_id_of(row_id)
    state = get_state(request)
    try:
        if number is None:
            raise NotFound(f"No {what} with id {row_id}")
        async with state.sessions() as session:
            plan = await plan_check(session, state, number)
    except GatewayError as error:
        return await render(request, admin, error.status_code, errors=service_error(error))
    return await render(request, admin, checks={number: await run_check(state, plan)})
