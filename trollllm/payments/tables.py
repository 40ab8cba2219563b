"""Tables of money in (SPEC §10): redemption codes, Stripe payments and their events, plan prices,
invite codes and referrals."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from trollllm.db import Base, Nanos, UtcDateTime, utcnow


class RedemptionBatch(Base):
    """Codes an admin created at once: each grants `amount_nanos` into `balance`, or the plan `plan`."""

    __tablename__ = "redemption_batches"
    __table_args__ = (
        CheckConstraint("amount_nanos >= 0", name="amount_not_negative"),
        CheckConstraint("balance IN ('credits', 'refCredits')", name="balance_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    count: Mapped[int] = mapped_column(Integer)
    amount_nanos: Mapped[int] = mapped_column(Nanos)
    balance: Mapped[str] = mapped_column(String(16))
    plan: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("plans.name", onupdate="CASCADE", ondelete="RESTRICT")
    )
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class RedemptionCode(Base):
    """One code, stored as the SHA-256 of its text (the text is shown once, at creation).

    Used exactly once: `redeem` is one conditional UPDATE … WHERE used_at IS NULL AND voided_at IS NULL.
    """

    __tablename__ = "redemption_codes"
    __table_args__ = (Index("ix_redemption_codes_batch", "batch_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("redemption_batches.id", ondelete="RESTRICT"))
    code_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    last4: Mapped[str] = mapped_column(String(4))
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    used_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    voided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class PlanPrice(Base):
    """What a plan costs by card (USD); a plan without a row is not for sale."""

    __tablename__ = "plan_prices"
    __table_args__ = (CheckConstraint("price_nanos > 0", name="price_positive"),)

    plan: Mapped[str] = mapped_column(
        String(64), ForeignKey("plans.name", onupdate="CASCADE", ondelete="CASCADE"), primary_key=True
    )
    price_nanos: Mapped[int] = mapped_column(Nanos)


class Payment(Base):
    """One Stripe Checkout Session: a top-up (`amount_nanos` into credits) or a plan purchase.

    `status` goes `open` → `paid` once (a conditional UPDATE on the session id); a refund or a lost dispute
    raises `refund_due_nanos` (cumulative, what should be taken back), of which `refunded_nanos` could be
    taken; the difference is the shortfall the admin sees. The referrer's rebate moves the same way.
    """

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("kind IN ('topup', 'plan')", name="kind_known"),
        CheckConstraint("status IN ('open', 'paid', 'refunded')", name="status_known"),
        Index("ix_payments_user_time", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(8))
    plan: Mapped[str | None] = mapped_column(String(64))
    amount_nanos: Mapped[int] = mapped_column(Nanos)  # what the card pays
    amount_cents: Mapped[int] = mapped_column(Integer)
    granted_nanos: Mapped[int] = mapped_column(Nanos, default=0)  # credits it put in the balance
    session_id: Mapped[str] = mapped_column(String(255), unique=True)
    payment_intent: Mapped[str | None] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    refund_due_nanos: Mapped[int] = mapped_column(Nanos, default=0)
    refunded_nanos: Mapped[int] = mapped_column(Nanos, default=0)
    referrer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    rebate_nanos: Mapped[int] = mapped_column(Nanos, default=0)
    rebate_reversal_due_nanos: Mapped[int] = mapped_column(Nanos, default=0)
    rebate_reversed_nanos: Mapped[int] = mapped_column(Nanos, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class StripeEvent(Base):
    """A Stripe event handled once: its id is the primary key, so a retry or a second instance's copy
    of the same delivery fails to insert and changes nothing."""

    __tablename__ = "stripe_events"

    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class InviteCode(Base):
    """A user's invite code (`/register?ref=<code>`), made the first time it is asked for."""

    __tablename__ = "invite_codes"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)


class Referral(Base):
    """Who invited whom: one row per referee, written once at registration, never changed."""

    __tablename__ = "referrals"
    __table_args__ = (
        CheckConstraint("referee_id <> referrer_id", name="not_oneself"),
        Index("ix_referrals_referrer", "referrer_id"),
    )

    referee_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
