"""Tables of billing: the append-only ledger, open holds and credit leases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from trollllm.db import Base, Nanos, UtcDateTime, utcnow


class LedgerEntry(Base):
    """One movement of money. Append-only: the database refuses UPDATE and DELETE on this table.

    For every user, Σ credits_delta = credits and Σ ref_credits_delta = refCredits (`trollllm reconcile`).
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_entries_user_time", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(32))
    credits_delta_nanos: Mapped[int] = mapped_column(Nanos, default=0)
    ref_credits_delta_nanos: Mapped[int] = mapped_column(Nanos, default=0)
    reason: Mapped[str] = mapped_column(String(500), default="")
    actor: Mapped[str] = mapped_column(String(64), default="system")
    # Not indexed: nothing looks the ledger up by request, and every index costs the proxy's hot path.
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Hold(Base):
    """Money reserved for one in-flight request; deleted when the request settles or the hold expires."""

    __tablename__ = "holds"
    __table_args__ = (CheckConstraint("amount_nanos >= 0", name="amount_not_negative"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Not indexed: a hold is released by its `id` (which `place_hold` returns) and checked against this.
    request_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    amount_nanos: Mapped[int] = mapped_column(Nanos)
    friend_key_id: Mapped[int | None] = mapped_column(Integer)
    model_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # No secondary index: the table holds only in-flight requests, and each index costs the hot path.
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # its token maximum
    # Which usage-window buckets it holds in (`trollllm.billing.windows` span flags; 0: none).
    window_spans: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class CreditLease(Base):
    """A slice of a user's balance reserved (in `users.held_nanos`) by one gateway instance, which serves
    holds from it in memory (`trollllm.billing.leases`); returned when idle, swept once expired."""

    __tablename__ = "credit_leases"
    __table_args__ = (CheckConstraint("amount_nanos >= 0", name="amount_not_negative"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    amount_nanos: Mapped[int] = mapped_column(Nanos)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class UsageWindowBucket(Base):
    """A user's settled and held spend and tokens in one hour (or one day) of admissions.

    A rolling window is the sum of a few of these rows (`trollllm.billing.windows`).
    """

    __tablename__ = "usage_window_buckets"

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    span_s: Mapped[int] = mapped_column(Integer, primary_key=True)
    start_s: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    used_nanos: Mapped[int] = mapped_column(Nanos)
    used_tokens: Mapped[int] = mapped_column(BigInteger)
    held_nanos: Mapped[int] = mapped_column(Nanos)
    held_tokens: Mapped[int] = mapped_column(BigInteger)
