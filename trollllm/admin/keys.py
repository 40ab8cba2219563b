"""Admin endpoints of users' gateway API keys (SPEC §7), always masked.

- `GET /api/admin/keys?page=&limit=&search=`: live keys with their owners, ordered by username.
- `POST /api/admin/keys/{username}/revoke`: revoke the user's live key (404 unknown user, 409 when the
  user has no live key). The user gets a new key by rotating it from their dashboard.

Mounted by `trollllm.admin.router` behind the admin check.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.accounts.apikeys import live_api_key, revoke_api_keys
from trollllm.accounts.sessions import CurrentAdmin
from trollllm.accounts.tables import ApiKey, User
from trollllm.audit.service import record_audit
from trollllm.crypto import mask_key
from trollllm.db import transaction
from trollllm.errors import Conflict, NotFound
from trollllm.fields import DEFAULT_PAGE_SIZE, PageInfo, PageNumber, PageSize, page_info, page_offset
from trollllm.state import AppState, get_state

router = APIRouter(tags=["admin: keys"])


class UserKeyView(BaseModel):
    """A user's live API key, masked, with its owner."""

    username: str
    isActive: bool
    apiKey: str
    last4: str
    createdAt: datetime


class UserKeyPage(PageInfo):
    """One page of live user keys."""

    keys: list[UserKeyView]


class RevokedKey(BaseModel):
    """The answer to a revocation: whose key, which key (masked), when."""

    username: str
    revokedKey: str
    revokedAt: datetime


async def list_live_keys(
    session: AsyncSession, *, page: int, limit: int, search: str | None
) -> tuple[list[UserKeyView], int]:
    """A page of live keys (by username; `search` is a case-insensitive username substring) and the total."""
    query = select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.revoked_at.is_(None))
    if search:
        query = query.where(func.lower(User.username).contains(search.lower(), autoescape=True))
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.execute(query.order_by(User.username).offset(page_offset(page, limit)).limit(limit))
    views = [
        UserKeyView(
            username=user.username,
            isActive=user.is_active,
            apiKey=mask_key(key.last4),
            last4=key.last4,
            createdAt=key.created_at,
        )
        for key, user in rows
    ]
    return views, total


async def revoke_user_key(session: AsyncSession, state: AppState, actor: str, username: str) -> RevokedKey:
    """Revoke `username`'s live key in the caller's transaction, audited (404 / 409 as documented above)."""
    user = await session.scalar(select(User).where(User.username == username).with_for_update())
    if user is None:
        raise NotFound("No such user", field="username")
    key = await live_api_key(session, user.id)
    if key is None:
        raise Conflict("The user has no live API key", field="username")
    now = state.clock.now()
    await revoke_api_keys(session, user.id, now)
    masked = mask_key(key.last4)
    await record_audit(
        session,
        state,
        actor=actor,
        action="api_key.revoke",
        target=f"user:{user.username}",
        before={"apiKey": masked, "createdAt": key.created_at},
        after={"apiKey": None, "revokedAt": now},
    )
    return RevokedKey(username=user.username, revokedKey=masked, revokedAt=now)


@router.get("/keys", response_model=UserKeyPage)
async def list_keys(
    request: Request,
    page: PageNumber = 1,
    limit: PageSize = DEFAULT_PAGE_SIZE,
    search: Annotated[str | None, Query(max_length=64, description="username substring")] = None,
) -> UserKeyPage:
    """Users' live API keys, masked (`sk-trollllm-****...****` + last 4), with their owners."""
    async with get_state(request).sessions() as session:
        keys, total = await list_live_keys(session, page=page, limit=limit, search=search)
    return UserKeyPage(keys=keys, **page_info(total, page, limit).model_dump())


@router.post("/keys/{username}/revoke", response_model=RevokedKey)
async def revoke_key(username: str, admin: CurrentAdmin, request: Request) -> RevokedKey:
    """Revoke a user's live API key: it is rejected from the next request on."""
    state = get_state(request)
    async with transaction(state.sessions) as session:
        revoked = await revoke_user_key(session, state, admin.username, username)
    # Proxy key cache: when the proxy caches key → user (SPEC §6, 60 s TTL), invalidate `revoked` here, after
    # the commit, in every instance — the same call rotation will make.
    return revoked
