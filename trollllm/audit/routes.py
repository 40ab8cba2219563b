"""`GET /api/admin/audit?page=&limit=&actor=&action=`: the audit log of admin writes, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.audit.tables import AuditEntry
from trollllm.fields import DEFAULT_PAGE_SIZE, PageInfo, PageNumber, PageSize, page_info, page_offset
from trollllm.state import get_state

router = APIRouter()


class AuditEntryView(BaseModel):
    """One admin write: who did what to which thing, with snapshots before and after."""

    id: int
    actor: str
    action: str
    target: str
    before: Any
    after: Any
    createdAt: datetime

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryView:
        """The view of an audit row; its JSON snapshots parsed."""
        return cls(
            id=entry.id,
            actor=entry.actor,
            action=entry.action,
            target=entry.target,
            before=orjson.loads(entry.before_json) if entry.before_json is not None else None,
            after=orjson.loads(entry.after_json) if entry.after_json is not None else None,
            createdAt=entry.created_at,
        )


class AuditPage(PageInfo):
    """`GET /api/admin/audit`."""

    entries: list[AuditEntryView]


async def page_audit(
    session: AsyncSession, *, page: int, limit: int, actor: str | None = None, action: str | None = None
) -> tuple[list[AuditEntryView], int]:
    """One page of admin writes, newest first (of one actor and/or one action when given), and the total."""
    query = select(AuditEntry)
    count = select(func.count()).select_from(AuditEntry)
    if actor is not None:
        query, count = query.where(AuditEntry.actor == actor), count.where(AuditEntry.actor == actor)
    if action is not None:
        query, count = query.where(AuditEntry.action == action), count.where(AuditEntry.action == action)
    total = int(await session.scalar(count) or 0)
    entries = await session.scalars(
        query.order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
        .offset(page_offset(page, limit))
        .limit(limit)
    )
    return [AuditEntryView.of(entry) for entry in entries], total


@router.get("/audit", response_model=AuditPage)
async def list_audit(
    request: Request,
    page: PageNumber = 1,
    limit: PageSize = DEFAULT_PAGE_SIZE,
    actor: Annotated[str | None, Query(max_length=64, description="exact admin username")] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="exact action, e.g. `user.update`")
    ] = None,
) -> AuditPage:
    """Admin writes, newest first, optionally of one actor and/or one action."""
    async with get_state(request).sessions() as session:
        views, total = await page_audit(session, page=page, limit=limit, actor=actor, action=action)
    return AuditPage(entries=views, **page_info(total, page, limit).model_dump())
