"""Releasing holds and credit leases that outlived their request or instance (left by a process that crashed
or was killed).

A hold is released by whoever deletes its row: the settling request or this sweeper. A hold released
here is written to the request log as `unsettled` (status 0, nothing charged), so an operator sees it.
Each release here is one short transaction that first runs
`DELETE … WHERE id = ? AND expires_at < now RETURNING …` and only when that deleted the row subtracts
its amount from `users.held_nanos` (and from the friend key's per-model `held_nanos`). Two sweepers,
on any number of instances, can therefore never release one hold twice, and a hold that is settled
meanwhile is left to the settlement.

Lock order is hold row, then user row (then friend key limit row), the same order a settlement must
use, so a sweep and a settlement cannot deadlock.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy import ColumnElement, SQLColumnExpression, case, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm.accounts.tables import User
from trollllm.billing.records import UNSETTLED
from trollllm.billing.tables import CreditLease, Hold, UsageWindowBucket
from trollllm.billing.windows import bucket_start, spans_of
from trollllm.db import transaction
from trollllm.friendkeys.tables import FriendKeyModelLimit
from trollllm.money import Money
from trollllm.usage.tables import RequestLog

logger = logging.getLogger("trollllm.billing.sweeper")

SWEEP_BATCH_SIZE = 500


async def release_expired_holds(
    sessions: async_sessionmaker[AsyncSession],
    now: datetime,
    *,
    batch_size: int = SWEEP_BATCH_SIZE,
    stop: asyncio.Event | None = None,
) -> int:
    """Release every hold with `expires_at < now`; returns how many this call released.

    Safe to run concurrently with itself and with settlements (each hold is released exactly once).
    A hold whose release would break a `held_nanos >= 0` constraint (books already inconsistent) is
    logged at error level and skipped, so it never blocks the others; `trollllm reconcile` reports it.
    Once `stop` is set, returns after the current hold's transaction (the rest wait for the next run).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    released = 0
    after_id = 0
    while stop is None or not stop.is_set():
        async with sessions() as session:
            candidates = (
                await session.scalars(
                    select(Hold.id)
                    .where(Hold.expires_at < now, Hold.id > after_id)
                    .order_by(Hold.id)
                    .limit(batch_size)
                )
            ).all()
        for hold_id in candidates:
            if stop is not None and stop.is_set():
                break
            released += await _release_hold(sessions, hold_id, now)
        if len(candidates) < batch_size:
            break
        after_id = candidates[-1]
    if released:
        logger.warning("released expired holds", extra={"holds_released": released})
    return released


async def _release_hold(sessions: async_sessionmaker[AsyncSession], hold_id: int, now: datetime) -> int:
    """Release one hold if it is still open and expired: 1 when this call released it, else 0."""
    try:
        async with transaction(sessions) as session:
            deleted = (
                await session.execute(
                    delete(Hold)
                    .where(Hold.id == hold_id, Hold.expires_at < now)
                    .returning(
                        Hold.request_id,
                        Hold.user_id,
                        Hold.amount_nanos,
                        Hold.friend_key_id,
                        Hold.model_id,
                        Hold.tokens,
                        Hold.window_spans,
                        Hold.created_at,
                    )
                    .execution_options(synchronize_session=False)
                )
            ).one_or_none()
            if deleted is None:
                return 0  # settled, or released by another sweeper, since it was listed
            request_id, user_id, amount, friend_key_id, model_id, tokens, spans, created_at = deleted
            await session.execute(
                update(User)
                .where(User.id == user_id)
                .values(
                    held_nanos=User.held_nanos - amount, monthly_tokens_held=User.monthly_tokens_held - tokens
                )
                .execution_options(synchronize_session=False)
            )
            if friend_key_id is not None and model_id is not None:
                await session.execute(
                    update(FriendKeyModelLimit)
                    .where(
                        FriendKeyModelLimit.friend_key_id == friend_key_id,
                        FriendKeyModelLimit.model_id == model_id,
                    )
                    .values(held_nanos=minus_at_most(FriendKeyModelLimit.held_nanos, amount))
                    .execution_options(synchronize_session=False)
                )
            admitted_s = int(created_at.timestamp())
            for span_s in spans_of(spans):
                await session.execute(
                    update(UsageWindowBucket)
                    .where(
                        UsageWindowBucket.user_id == user_id,
                        UsageWindowBucket.span_s == span_s,
                        UsageWindowBucket.start_s == bucket_start(admitted_s, span_s),
                    )
                    .values(
                        held_nanos=UsageWindowBucket.held_nanos - amount,
                        held_tokens=UsageWindowBucket.held_tokens - tokens,
                    )
                    .execution_options(synchronize_session=False)
                )
            # So an operator sees it: a request that never settled, charged nothing (an outbox replay
            # that comes later replaces this row and charges what is free then).
            await session.execute(
                insert(RequestLog).values(
                    request_id=request_id,
                    user_id=user_id,
                    friend_key_id=friend_key_id,
                    is_friend_key_request=friend_key_id is not None,
                    model=model_id or "",
                    status_code=0,
                    is_success=False,
                    error_type=UNSETTLED,
                    created_at=now,
                )
            )
    except IntegrityError:
        logger.error(
            "cannot release an expired hold: held_nanos is smaller than the hold (run `trollllm reconcile`)",
            exc_info=True,
            extra={"hold_id": hold_id},
        )
        return 0
    logger.info(
        "released an expired hold",
        extra={"request_id": request_id, "user_id": user_id, "amount": Money(amount).format_cost()},
    )
    return 1


def minus_at_most(column: SQLColumnExpression[int], amount: int) -> ColumnElement[int]:
    """`column - amount`, floored at 0.

    A cap row removed and re-added by the owner while a request was in flight starts again at 0 held, so
    releasing that request's hold must not drive it negative (settlement floors it the same way).
    """
    return case((column >= amount, column - amount), else_=0)


async def release_expired_leases(sessions: async_sessionmaker[AsyncSession], now: datetime) -> int:
    """Return every lease with `expires_at < now` (its instance died, or lost the database for longer than
    `LEASE_TTL`) to its user's balance, each in one short transaction; how many this call returned.

    Safe beside itself and the leases' owners: the delete decides, so a lease is returned once.
    """
    async with sessions() as session:
        expired = (
            await session.scalars(
                select(CreditLease.id).where(CreditLease.expires_at < now).order_by(CreditLease.id)
            )
        ).all()
    returned = 0
    for lease_id in expired:
        async with transaction(sessions) as session:
            row = (
                await session.execute(
                    delete(CreditLease)
                    .where(CreditLease.id == lease_id, CreditLease.expires_at < now)
                    .returning(CreditLease.user_id, CreditLease.amount_nanos, CreditLease.instance_id)
                    .execution_options(synchronize_session=False)
                )
            ).one_or_none()
            if row is None:
                continue
            user_id, amount, instance_id = row
            await session.execute(
                update(User)
                .where(User.id == user_id)
                .values(held_nanos=User.held_nanos - amount)
                .execution_options(synchronize_session=False)
            )
        returned += 1
        logger.warning(
            "returned the credit lease of an instance that stopped renewing it",
            extra={"user_id": user_id, "amount": Money(amount).format_cost(), "instance_id": instance_id},
        )
    return returned
