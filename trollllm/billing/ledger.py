"""The ledger: the one place that moves money between balances outside of proxy charging.

Every movement is a conditional UPDATE of the user's balances plus one append-only `LedgerEntry`, in the
caller's transaction, so for every user Σ ledger deltas = balance at every committed moment. `reconcile`
checks that invariant (and that `held_nanos` equals the sum of open holds) with one aggregate query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.accounts.tables import User
from trollllm.billing.tables import CreditLease, Hold, LedgerEntry
from trollllm.errors import BalanceLimitExceeded, InsufficientBalance, NotFound
from trollllm.money import MAX_USD, NANOS_PER_USD, Money, usd_text

# Ledger kinds. The proxy adds `charge`; the expiry job writes `plan_reset`; money in (SPEC §10, the
# `payments` package) writes `redeem`, `topup`, `referral` and `refund`.
PLAN_GRANT = "plan_grant"
ADMIN_ADJUSTMENT = "admin_adjustment"
PLAN_RESET = "plan_reset"
CHARGE = "charge"
REDEEM = "redeem"
TOPUP = "topup"
REFERRAL = "referral"
REFUND = "refund"
LEDGER_KINDS = frozenset({PLAN_GRANT, ADMIN_ADJUSTMENT, PLAN_RESET, CHARGE, REDEEM, TOPUP, REFERRAL, REFUND})

# No balance may grow past $1B: keeps every sum of two balances far inside int64 on both databases
# (SQLite silently turns an overflowing integer sum into a float).
MAX_BALANCE_NANOS = int(MAX_USD) * NANOS_PER_USD
AMOUNT_FIELD = "amountUsd"


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """A user whose balances disagree with the ledger (or whose held amount disagrees with open holds)."""

    user_id: int
    username: str
    credits: Money
    ledger_credits: Money
    ref_credits: Money
    ledger_ref_credits: Money
    held: Money
    open_holds: Money

    def describe(self) -> str:
        """One human-readable line naming every differing balance, in exact USD."""
        parts = []
        for name, balance, expected in (
            ("credits", self.credits, self.ledger_credits),
            ("refCredits", self.ref_credits, self.ledger_ref_credits),
            ("held", self.held, self.open_holds),
        ):
            if balance != expected:
                source = "open holds" if name == "held" else "ledger"
                parts.append(
                    f"{name} ${usd_text(balance)} != {source} ${usd_text(expected)} "
                    f"(difference ${usd_text(balance - expected)})"
                )
        return f"user {self.username!r} (id {self.user_id}): " + "; ".join(parts)


async def apply_adjustment(
    session: AsyncSession,
    *,
    user_id: int,
    credits_delta: Money,
    ref_credits_delta: Money,
    kind: str,
    reason: str,
    actor: str,
    when: datetime,
    request_id: str | None = None,
) -> LedgerEntry:
    """Move money into (positive) or out of (negative) a user's balances and record it in the ledger.

    One conditional UPDATE refuses, atomically and under any concurrency, a result below zero, below the
    user's open holds, or above `MAX_BALANCE_NANOS`; nothing is written then. Runs in the caller's
    transaction; a `User` of this session is refreshed with the new balances.

    Raises `InsufficientBalance` or `BalanceLimitExceeded` (400, field `amountUsd`), or `NotFound`.
    """
    if kind not in LEDGER_KINDS:
        raise ValueError(f"unknown ledger kind {kind!r}")
    dc, dr = credits_delta.nanos, ref_credits_delta.nanos
    new_credits = User.credits_nanos + dc
    new_ref = User.ref_credits_nanos + dr
    statement = (
        update(User)
        .where(
            User.id == user_id,
            new_credits >= 0,
            new_ref >= 0,
            new_credits + new_ref >= User.held_nanos,
            new_credits <= MAX_BALANCE_NANOS,
            new_ref <= MAX_BALANCE_NANOS,
        )
        .values(credits_nanos=new_credits, ref_credits_nanos=new_ref)
        .returning(User)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    updated = (await session.scalars(statement)).one_or_none()
    if updated is None:
        await _raise_refusal(session, user_id, dc, dr)
    entry = LedgerEntry(
        user_id=user_id,
        kind=kind,
        credits_delta_nanos=dc,
        ref_credits_delta_nanos=dr,
        reason=reason[:500],
        actor=actor[:64],
        request_id=request_id,
        created_at=when,
    )
    session.add(entry)
    await session.flush()
    return entry


async def _raise_refusal(session: AsyncSession, user_id: int, dc: int, dr: int) -> None:
    row = (
        await session.execute(
            select(User.credits_nanos, User.ref_credits_nanos, User.held_nanos).where(User.id == user_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFound("No such user")
    credits, ref_credits, held = row
    if credits + dc > MAX_BALANCE_NANOS or ref_credits + dr > MAX_BALANCE_NANOS:
        raise BalanceLimitExceeded(field=AMOUNT_FIELD)
    if credits + dc >= 0 and ref_credits + dr >= 0:
        raise InsufficientBalance(
            f"Open holds reserve ${usd_text(Money(held))} of this balance", field=AMOUNT_FIELD
        )
    raise InsufficientBalance(
        "The balance does not cover this deduction (balances never go below zero)", field=AMOUNT_FIELD
    )


async def reconcile(session: AsyncSession) -> list[Discrepancy]:
    """Every user whose balances differ from Σ of their ledger deltas, or whose held amount differs
    from Σ of their open holds and credit leases; empty when the books balance.

    One statement (two grouped sub-queries joined to users), so it reads one consistent snapshot.
    """
    ledger = (
        select(
            LedgerEntry.user_id.label("user_id"),
            func.sum(LedgerEntry.credits_delta_nanos).label("credits"),
            func.sum(LedgerEntry.ref_credits_delta_nanos).label("ref_credits"),
        )
        .group_by(LedgerEntry.user_id)
        .subquery()
    )
    # Open holds and credit leases (`trollllm.billing.leases`): both are in `held_nanos`.
    reserved = union_all(
        select(Hold.user_id.label("user_id"), Hold.amount_nanos.label("amount")),
        select(CreditLease.user_id.label("user_id"), CreditLease.amount_nanos.label("amount")),
    ).subquery()
    holds = (
        select(reserved.c.user_id.label("user_id"), func.sum(reserved.c.amount).label("held"))
        .group_by(reserved.c.user_id)
        .subquery()
    )
    ledger_credits = func.coalesce(ledger.c.credits, 0)
    ledger_ref = func.coalesce(ledger.c.ref_credits, 0)
    open_holds = func.coalesce(holds.c.held, 0)
    statement = (
        select(
            User.id,
            User.username,
            User.credits_nanos,
            ledger_credits,
            User.ref_credits_nanos,
            ledger_ref,
            User.held_nanos,
            open_holds,
        )
        .outerjoin(ledger, ledger.c.user_id == User.id)
        .outerjoin(holds, holds.c.user_id == User.id)
        .where(
            (User.credits_nanos != ledger_credits)
            | (User.ref_credits_nanos != ledger_ref)
            | (User.held_nanos != open_holds)
        )
        .order_by(User.id)
    )
    return [
        Discrepancy(
            user_id=row[0],
            username=row[1],
            credits=Money(int(row[2])),
            ledger_credits=Money(int(row[3])),
            ref_credits=Money(int(row[4])),
            ledger_ref_credits=Money(int(row[5])),
            held=Money(int(row[6])),
            open_holds=Money(int(row[7])),
        )
        for row in (await session.execute(statement)).all()
    ]


async def count_users(session: AsyncSession) -> int:
    """How many users the reconciliation covered."""
    return int(await session.scalar(select(func.count()).select_from(User)) or 0)
