"""Referrals (SPEC §10): invite codes, who invited whom, and the referrer's rebate on a referee's payments.

A rebate is `TROLLLLM_REFERRAL_PERCENT` of a paid top-up or plan purchase, granted as `refCredits` (ledger
`referral`) in the same transaction that grants the payment, so once per payment; a refund takes back the
same share of it. Admin grants and redemption codes never reach this module, so they earn nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.accounts.tables import User
from trollllm.billing.ledger import REFERRAL, apply_adjustment
from trollllm.db import transaction
from trollllm.money import Money
from trollllm.payments.codes import code_digest, normalize
from trollllm.payments.tables import InviteCode, Payment, RedemptionBatch, RedemptionCode, Referral
from trollllm.state import AppState

INVITE_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
INVITE_LENGTH = 10
MAX_INVITE_LENGTH = 32


@dataclass(frozen=True, slots=True)
class ReferralSummary:
    """What the user's referral card shows."""

    code: str
    referees: int
    earned: Money


async def invite_code_of(state: AppState, user_id: int) -> str:
    """The user's invite code, made (once, whatever the concurrency) the first time it is asked for."""
    async with state.sessions() as session:
        existing = await session.scalar(select(InviteCode.code).where(InviteCode.user_id == user_id))
    if existing is not None:
        return existing
    code = "".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_LENGTH))
    try:
        async with transaction(state.sessions) as session:
            session.add(InviteCode(code=code, user_id=user_id))
    except IntegrityError:  # made concurrently by another request: read the winner's
        pass
    async with state.sessions() as session:
        return (await session.scalars(select(InviteCode.code).where(InviteCode.user_id == user_id))).one()


async def owner_of_invite(session: AsyncSession, code: str) -> int | None:
    """The user whose invite code this is, if any."""
    if not code or len(code) > MAX_INVITE_LENGTH:
        return None
    return await session.scalar(select(InviteCode.user_id).where(InviteCode.code == code.strip().lower()))


async def is_valid_invite(
    session: AsyncSession,
    referral_code: str | None = None,
    redemption_code: str | None = None,
    *,
    now: datetime | None = None,
) -> bool:
    """True when either is good for registration by invite: an existing user's invite code, or a
    redemption code that can still be used (unused, not voided, its batch not expired). Uses nothing up."""
    if referral_code and await owner_of_invite(session, referral_code) is not None:
        return True
    canonical = normalize(redemption_code) if redemption_code else None
    if canonical is None:
        return False
    now = now or datetime.now(UTC)
    found = await session.scalar(
        select(RedemptionCode.id)
        .join(RedemptionBatch, RedemptionBatch.id == RedemptionCode.batch_id)
        .where(
            RedemptionCode.code_digest == code_digest(canonical),
            RedemptionCode.used_at.is_(None),
            RedemptionCode.voided_at.is_(None),
            (RedemptionBatch.expires_at.is_(None)) | (RedemptionBatch.expires_at > now),
        )
    )
    return found is not None


async def record_referral(state: AppState, referee_id: int, code: str | None) -> bool:
    """Make `referee_id` the referee of the invite code's owner: once, never oneself; an unknown code or
    a second attempt changes nothing (False)."""
    if not code:
        return False
    try:
        async with transaction(state.sessions) as session:
            referrer_id = await owner_of_invite(session, code)
            if referrer_id is None or referrer_id == referee_id:
                return False
            session.add(
                Referral(referee_id=referee_id, referrer_id=referrer_id, created_at=state.clock.now())
            )
    except IntegrityError:  # already someone's referee
        return False
    return True


def rebate_of(amount: Money, percent: Decimal) -> Money:
    """The referrer's share of a payment, rounded down to the nano-dollar."""
    share = (Decimal(amount.nanos) * percent / 100).to_integral_value(rounding=ROUND_FLOOR)
    return Money(int(share))


async def grant_rebate(session: AsyncSession, state: AppState, payment: Payment) -> None:
    """Grant the referrer of the payment's user their share (ledger `referral`), if the user has one."""
    referrer_id = await session.scalar(
        select(Referral.referrer_id).where(Referral.referee_id == payment.user_id)
    )
    if referrer_id is None:
        return
    rebate = rebate_of(Money(payment.amount_nanos), state.settings.referral_percent)
    payment.referrer_id = referrer_id
    if not rebate:
        return
    await apply_adjustment(
        session,
        user_id=referrer_id,
        credits_delta=Money.ZERO,
        ref_credits_delta=rebate,
        kind=REFERRAL,
        reason=f"referral rebate on payment {payment.id}",
        actor="stripe",
        when=state.clock.now(),
    )
    payment.rebate_nanos = rebate.nanos


async def summary_of(state: AppState, user_id: int) -> ReferralSummary:
    """The user's invite code, how many referees they have, and the rebates they keep (net of reversals)."""
    code = await invite_code_of(state, user_id)
    async with state.sessions() as session:
        referees = await session.scalar(
            select(func.count()).select_from(Referral).where(Referral.referrer_id == user_id)
        )
        earned = await session.scalar(
            select(func.coalesce(func.sum(Payment.rebate_nanos - Payment.rebate_reversed_nanos), 0)).where(
                Payment.referrer_id == user_id
            )
        )
    return ReferralSummary(code=code, referees=int(referees or 0), earned=Money(int(earned or 0)))


async def list_referrals(session: AsyncSession) -> list[tuple[str, str, Money, datetime]]:
    """Every referral (referrer, referee, rebates kept from the referee's payments, since), newest first."""
    referrer, referee = User.__table__.alias("referrer"), User.__table__.alias("referee")
    kept = (
        select(func.coalesce(func.sum(Payment.rebate_nanos - Payment.rebate_reversed_nanos), 0))
        .where(Payment.user_id == Referral.referee_id, Payment.referrer_id == Referral.referrer_id)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(referrer.c.username, referee.c.username, kept, Referral.created_at)
        .join(referrer, referrer.c.id == Referral.referrer_id)
        .join(referee, referee.c.id == Referral.referee_id)
        .order_by(Referral.created_at.desc())
    )
    return [(a, b, Money(int(c)), d) for a, b, c, d in rows]
