"""`/users`: every user with plan, balances and token counters (1.5M / 250K), searchable, sortable, paged.

Each username links to `/users/{username}` (`user_manage.py`), where the plan, credits and activity change.
"""

from __future__ import annotations

from typing import get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from trollllm.admin.user_schemas import UserSort
from trollllm.admin.user_service import list_users
from trollllm.fields import DEFAULT_PAGE_SIZE
from trollllm.state import get_state
from trollllm.web.admin.access import admin_page, admin_view, page_number
from trollllm.web.history import page_numbers

router = APIRouter(include_in_schema=False)

SORTS = frozenset(get_args(UserSort))
DEFAULT_SORT: UserSort = "-createdAt"
MAX_SEARCH = 64
# (sort key, header) of the sortable columns, in table order.
COLUMNS = (
    ("username", "Username"),
    ("plan", "Plan"),
    ("credits", "Credits"),
    ("tokensUsed", "Tokens Used"),
    ("totalInputTokens", "Input Tokens"),
    ("totalOutputTokens", "Output Tokens"),
    ("createdAt", "Created"),
)


def sort_link(column: str, current: str) -> str:
    """The sort a column header links to: ascending first, descending when it is already ascending."""
    return f"-{column}" if current == column else column


@router.get("/users")
async def users_page(request: Request) -> Response:
    """Users, 20 a page; `search` is a username substring, `sort` a column (`-` for descending)."""
    user = await admin_page(request)
    if isinstance(user, Response):
        return user
    query = request.query_params
    search = query.get("search", "").strip()
    error = None
    if len(search) > MAX_SEARCH:
        error, search = f"Search for at most {MAX_SEARCH} characters", ""
    requested = query.get("sort", DEFAULT_SORT)
    sort: UserSort = requested if requested in SORTS else DEFAULT_SORT  # type: ignore[assignment]
    number = page_number(request)
    async with get_state(request).sessions() as session:
        users, total = await list_users(
            session, page=number, limit=DEFAULT_PAGE_SIZE, search=search or None, sort=sort
        )
    total_pages = -(-total // DEFAULT_PAGE_SIZE)
    return admin_view(
        request,
        "admin/users.html",
        user,
        "users",
        users=users,
        total=total,
        page_number=number,
        total_pages=total_pages,
        page_numbers=page_numbers(number, total_pages),
        search=search,
        sort=sort,
        columns=[(key, label, sort_link(key, sort)) for key, label in COLUMNS],
        keep="&" + urlencode({"search": search, "sort": sort}),
        error=error,
    )
