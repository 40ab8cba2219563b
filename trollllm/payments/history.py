"""The user's money-in history: ledger entries that put money in (or took a refund out), newest first."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.billing.ledger import ADMIN_ADJUSTMENT, PLAN_GRANT, REDEEM, REFERRAL, REFUND, TOPUP
from trollllm.billing.tables import LedgerEntry
from trollllm.fields import page_offset

MONEY_IN_KINDS = (TOPUP, REDEEM, PLAN_GRANT, ADMIN_ADJUSTMENT, REFERRAL, REFUND)


async def money_in(
    session: AsyncSession, user_id: int, *, page: int, limit: int
) -> tuple[list[LedgerEntry], int]:
    """One page of the user's top-ups, codes, grants, rebates and refunds, and how many there are."""
    condition = (LedgerEntry.user_id == user_id) & LedgerEntry.kind.in_(MONEY_IN_KINDS)
    total = int(await session.scalar(select(func.count()).select_from(LedgerEntry).where(condition)) or 0)
    entries = await session.scalars(
        select(LedgerEntry)
        .where(condition)
        .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
        .offset(page_offset(page, limit))
        .limit(limit)
    )
    return list(entries), total
