"""Holds and settlement: the prepaid money path of every proxied request.

1. `place_hold` reserves a request's maximum cost with one conditional UPDATE (available = credits +
   refCredits − held ≥ hold), so concurrent requests can never reserve more than the balance.
2. `settle` releases the hold and charges the real cost (never more than the hold), taking credits first,
   then refCredits, with its ledger entry and request log in the same transaction.

Both open their transaction with a write, so SQLite takes its write lock first (no stale-snapshot upgrade)
and PostgreSQL locks the user row before reading balances.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from trollllm.accounts.tables import User
from trollllm.billing.ledger import CHARGE
from trollllm.billing.tables import Hold, LedgerEntry
from trollllm.money import Money, TokenUsage, split_charge
from trollllm.usage.tables import RequestLog

logger = logging.getLogger("trollllm.billing")

# A hold outlives any request (timeouts bound a request well below this); the sweeper frees it after.
HOLD_TTL = timedelta(minutes=30)

_users = cast(Table, User.__table__)
_holds = cast(Table, Hold.__table__)
_ledger = cast(Table, LedgerEntry.__table__)
_logs = cast(Table, RequestLog.__table__)


@dataclass(frozen=True, slots=True)
class HeldRequest:
    """A request whose maximum cost is reserved."""

    request_id: str
    user_id: int
    amount: Money
    model_id: str
    friend_key_id: int | None = None


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What the request log keeps of one request, besides usage and cost."""

    model_id: str
    status_code: int
    latency_ms: int
    is_success: bool
    is_stream: bool
    user_key_id: int | None = None
    friend_key_id: int | None = None
    factory_key_id: int | None = None
    is_byok: bool = False
    error_type: str | None = None


@dataclass(frozen=True, slots=True)
class Charged:
    """The outcome of settlement: what was taken from each balance, and what is left."""

    cost: Money
    from_credits: Money
    from_ref_credits: Money
    credits_after: Money
    ref_credits_after: Money


async def place_hold(connection: AsyncConnection, held: HeldRequest, now: datetime) -> bool:
    """Reserve `held.amount` on the user's balance; False (and nothing written) when it is not covered."""
    amount = held.amount.nanos
    result = await connection.execute(
        update(_users)
        .where(
            _users.c.id == held.user_id,
            _users.c.is_active.is_(True),
            _users.c.credits_nanos + _users.c.ref_credits_nanos - _users.c.held_nanos >= amount,
        )
        .values(held_nanos=_users.c.held_nanos + amount)
    )
    if result.rowcount != 1:
        return False
    await connection.execute(
        insert(_holds).values(
            request_id=held.request_id,
            user_id=held.user_id,
            amount_nanos=amount,
            friend_key_id=held.friend_key_id,
            model_id=held.model_id,
            created_at=now,
            expires_at=now + HOLD_TTL,
        )
    )
    return True


async def available_balance(connection: AsyncConnection, user_id: int) -> Money:
    """credits + refCredits − open holds, read now (for the 402 body; never for a decision)."""
    row = (
        await connection.execute(
            select(_users.c.credits_nanos + _users.c.ref_credits_nanos - _users.c.held_nanos).where(
                _users.c.id == user_id
            )
        )
    ).scalar_one()
    return Money(int(row))


async def settle(
    connection: AsyncConnection,
    held: HeldRequest,
    cost: Money,
    usage: TokenUsage,
    record: RequestRecord,
    now: datetime,
) -> Charged:
    """Release the hold, charge `cost` (capped at the hold), write the ledger entry and the request log."""
    released = (
        await connection.execute(
            delete(_holds).where(_holds.c.request_id == held.request_id).returning(_holds.c.amount_nanos)
        )
    ).scalar_one_or_none()
    balances = (
        await connection.execute(
            update(_users)
            .where(_users.c.id == held.user_id)
            .values(held_nanos=_users.c.held_nanos - (released or 0))
            .returning(_users.c.credits_nanos, _users.c.ref_credits_nanos, _users.c.held_nanos)
        )
    ).one()
    credits, ref_credits = Money(balances[0]), Money(balances[1])
    charge = min(cost, held.amount)
    if released is None:
        # The sweeper already freed this hold (the request outlived HOLD_TTL): charge only what is free.
        free = Money(balances[0] + balances[1] - balances[2])
        logger.error("settling a request whose hold had expired", extra={"request_id": held.request_id})
        charge = max(min(charge, free), Money.ZERO)
    split = split_charge(charge, credits, ref_credits)
    await connection.execute(
        update(_users)
        .where(_users.c.id == held.user_id)
        .values(
            credits_nanos=_users.c.credits_nanos - split.from_credits.nanos,
            ref_credits_nanos=_users.c.ref_credits_nanos - split.from_ref_credits.nanos,
            tokens_used=_users.c.tokens_used + usage.total,
            monthly_tokens_used=_users.c.monthly_tokens_used + usage.total,
            total_input_tokens=_users.c.total_input_tokens + usage.input_tokens,
            total_output_tokens=_users.c.total_output_tokens + usage.output_tokens,
            total_cache_write_tokens=_users.c.total_cache_write_tokens + usage.cache_write_tokens,
            total_cache_hit_tokens=_users.c.total_cache_hit_tokens + usage.cache_hit_tokens,
        )
    )
    if charge.nanos:
        await connection.execute(
            insert(_ledger).values(
                user_id=held.user_id,
                kind=CHARGE,
                credits_delta_nanos=-split.from_credits.nanos,
                ref_credits_delta_nanos=-split.from_ref_credits.nanos,
                reason=f"request to {record.model_id}",
                actor="proxy",
                request_id=held.request_id,
                created_at=now,
            )
        )
    await connection.execute(
        insert(_logs).values(
            request_id=held.request_id,
            user_id=held.user_id,
            user_key_id=record.user_key_id,
            friend_key_id=record.friend_key_id,
            is_friend_key_request=record.friend_key_id is not None,
            factory_key_id=record.factory_key_id,
            model=record.model_id,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cache_hit_tokens=usage.cache_hit_tokens,
            credits_cost_nanos=charge.nanos,
            status_code=record.status_code,
            latency_ms=record.latency_ms,
            is_success=record.is_success,
            is_byok=record.is_byok,
            is_stream=record.is_stream,
            error_type=record.error_type,
            created_at=now,
        )
    )
    return Charged(
        cost=charge,
        from_credits=split.from_credits,
        from_ref_credits=split.from_ref_credits,
        credits_after=credits - split.from_credits,
        ref_credits_after=ref_credits - split.from_ref_credits,
    )
