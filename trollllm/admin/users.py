"""Admin endpoints of users, their credits and the ledger (SPEC §7).

- `GET /api/admin/users?page=&limit=&search=&sort=`
- `PATCH /api/admin/users/{username}` `{plan?, role?, isActive?}`
- `POST /api/admin/users/{username}/credits` `{amountUsd, balance, reason}`
- `GET /api/admin/ledger?username=&page=&limit=`

Mounted by `trollllm.admin.router` behind the admin check; each write is one transaction with its audit.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from trollllm.accounts.sessions import CurrentAdmin
from trollllm.admin import user_service
from trollllm.admin.user_schemas import (
    AdminUserView,
    CreditsAdjustment,
    CreditsResult,
    LedgerEntryView,
    LedgerPage,
    UserPage,
    UserSort,
    UserUpdate,
)
from trollllm.db import transaction
from trollllm.fields import DEFAULT_PAGE_SIZE, PageNumber, PageSize, page_info
from trollllm.money import Money
from trollllm.state import get_state

router = APIRouter()


@router.get("/users", response_model=UserPage)
async def list_users(
    request: Request,
    page: PageNumber = 1,
    limit: PageSize = DEFAULT_PAGE_SIZE,
    search: Annotated[str | None, Query(max_length=64, description="username substring")] = None,
    sort: Annotated[UserSort, Query(description="a column, `-` for descending")] = "-createdAt",
) -> UserPage:
    """Users with plan, role, balances, token counters and plan dates; newest first by default."""
    async with get_state(request).sessions() as session:
        users, total = await user_service.list_users(
            session, page=page, limit=limit, search=search, sort=sort
        )
    return UserPage(
        users=[AdminUserView.of(user) for user in users], **page_info(total, page, limit).model_dump()
    )


@router.patch("/users/{username}", response_model=AdminUserView)
async def update_user(
    username: str, body: UserUpdate, request: Request, admin: CurrentAdmin
) -> AdminUserView:
    """Change a user's plan (granting credits and setting dates, SPEC §5), role and/or activity."""
    state = get_state(request)
    async with transaction(state.sessions) as session:
        user = await user_service.update_user(session, state, username, body, actor=admin.username)
    return AdminUserView.of(user)


@router.post("/users/{username}/credits", response_model=CreditsResult)
async def adjust_credits(
    username: str, body: CreditsAdjustment, request: Request, admin: CurrentAdmin
) -> CreditsResult:
    """Grant (positive) or deduct (negative) `credits` or `refCredits`; one ledger entry; never below 0."""
    user, entry = await user_service.adjust_credits(get_state(request), username, body, actor=admin.username)
    return CreditsResult(
        username=user.username,
        credits=Money(user.credits_nanos).to_json(),
        refCredits=Money(user.ref_credits_nanos).to_json(),
        entry=LedgerEntryView.of(entry, user.username),
    )


@router.get("/ledger", response_model=LedgerPage)
async def list_ledger(
    request: Request,
    username: Annotated[str | None, Query(max_length=64)] = None,
    page: PageNumber = 1,
    limit: PageSize = DEFAULT_PAGE_SIZE,
) -> LedgerPage:
    """Ledger entries, newest first, of one user or of everyone (for reconciliation)."""
    async with get_state(request).sessions() as session:
        rows, total = await user_service.list_ledger(session, username=username, page=page, limit=limit)
    return LedgerPage(
        entries=[LedgerEntryView.of(entry, name) for entry, name in rows],
        **page_info(total, page, limit).model_dump(),
    )
