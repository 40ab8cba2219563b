"""Holds and settlement: the prepaid money path of every proxied request.

1. `place_hold` reserves a request's maximum cost with one conditional UPDATE (available = credits +
   refCredits − held ≥ hold), so concurrent requests can never reserve more than the balance. A Friend Key
   request also reserves it on the key's cap for that model (used + held + hold ≤ limit) in the same
   transaction: both reservations are made, or neither.
2. `settle` releases the hold and charges the real cost (never more than the hold), taking credits first,
   then refCredits, with its ledger entry and request log in the same transaction; for a Friend Key it
   also moves the cap's `used_nanos` and the key's counters there.

Both open their transaction with a write, so SQLite takes its write lock first (no stale-snapshot upgrade)
and PostgreSQL locks the user row before reading balances. Rows are locked in one order everywhere (hold,
user, friend key model limit, friend key), so settlements, sweeps and Friend Key edits cannot deadlock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, SQLColumnExpression, Table, case, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from trollllm.accounts.tables import User
from trollllm.billing.ledger import CHARGE
from trollllm.billing.tables import Hold, LedgerEntry
from trollllm.friendkeys.tables import FriendKey, FriendKeyModelLimit
from trollllm.money import Money, TokenUsage, split_charge
from trollllm.usage.tables import RequestLog

logger = logging.getLogger("trollllm.billing")

# A hold outlives any request (timeouts bound a request well below this); the sweeper frees it after.
HOLD_TTL = timedelta(minutes=30)

_users = cast(Table, User.__table__)
_holds = cast(Table, Hold.__table__)
_ledger = cast(Table, LedgerEntry.__table__)
_logs = cast(Table, RequestLog.__table__)
_friend_keys = cast(Table, FriendKey.__table__)
_friend_limits = cast(Table, FriendKeyModelLimit.__table__)


class FriendKeyCapRefused(Exception):
    """The Friend Key's cap on the model cannot take the hold (raised so its transaction rolls back)."""


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
    """Reserve `held.amount` on the user's balance; False (and nothing written) when it is not covered.

    With `held.friend_key_id`, the amount is also reserved on that key's cap for `held.model_id` (enabled,
    limit > 0, used + held + amount ≤ limit); when the cap refuses, `FriendKeyCapRefused` is raised after
    the balance was reserved, so the caller's transaction rolls both back.
    """
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
    if held.friend_key_id is not None:
        limits = _friend_limits.c
        capped = await connection.execute(
            update(_friend_limits)
            .where(
                _friend_limit_row(held),
                limits.enabled.is_(True),
                limits.limit_nanos > 0,
                limits.used_nanos + limits.held_nanos + amount <= limits.limit_nanos,
            )
            .values(held_nanos=limits.held_nanos + amount)
        )
        if capped.rowcount != 1:
            raise FriendKeyCapRefused()
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
    cap_room: Money | None = None
    if held.friend_key_id is not None:
        limits = _friend_limits.c
        cap = (
            await connection.execute(
                update(_friend_limits)
                .where(_friend_limit_row(held))
                .values(held_nanos=minus_at_most(limits.held_nanos, released or 0))
                .returning(limits.limit_nanos - limits.used_nanos - limits.held_nanos)
            )
        ).scalar_one_or_none()
        cap_room = None if cap is None else Money(cap)  # None: the model was removed from the key's limits
    charge = min(cost, held.amount)
    if released is None:
        # The sweeper already freed this hold (the request outlived HOLD_TTL): charge only what is free.
        free = Money(balances[0] + balances[1] - balances[2])
        logger.error("settling a request whose hold had expired", extra={"request_id": held.request_id})
        charge = max(min(charge, free, cap_room if cap_room is not None else charge), Money.ZERO)
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
    if held.friend_key_id is not None:
        await _count_friend_key_use(connection, held, charge, record, now, cap_room is not None)
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


def _friend_limit_row(held: HeldRequest) -> ColumnElement[bool]:
    return (_friend_limits.c.friend_key_id == held.friend_key_id) & (
        _friend_limits.c.model_id == held.model_id
    )


def minus_at_most(column: SQLColumnExpression[int], amount: int) -> ColumnElement[int]:
    """`column - amount`, floored at 0.

    A cap row removed and re-added by the owner while a request was in flight starts again at 0 held, so
    releasing that request's hold must not drive it negative.
    """
    return case((column >= amount, column - amount), else_=0)


async def _count_friend_key_use(
    connection: AsyncConnection,
    held: HeldRequest,
    charge: Money,
    record: RequestRecord,
    now: datetime,
    has_cap_row: bool,
) -> None:
    """Add the charge to the cap's `used_nanos` and the key's totals; count the request if it was served."""
    if charge.nanos and has_cap_row:
        await connection.execute(
            update(_friend_limits)
            .where(_friend_limit_row(held))
            .values(used_nanos=_friend_limits.c.used_nanos + charge.nanos)
        )
    served = record.is_success or charge.nanos > 0
    if not served:
        return
    await connection.execute(
        update(_friend_keys)
        .where(_friend_keys.c.id == held.friend_key_id)
        .values(
            total_used_nanos=_friend_keys.c.total_used_nanos + charge.nanos,
            requests_count=_friend_keys.c.requests_count + 1,
            last_used_at=now,
        )
    )
