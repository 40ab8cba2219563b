"""Tables of accounts: users and their API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from trollllm.db import Base, Nanos, UtcDateTime, utcnow


class User(Base):
    """A gateway user. Balances are nano-dollars; `held_nanos` is the sum of this user's open holds."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("credits_nanos >= 0", name="credits_not_negative"),
        CheckConstraint("ref_credits_nanos >= 0", name="ref_credits_not_negative"),
        CheckConstraint("held_nanos >= 0", name="held_not_negative"),
        CheckConstraint("held_nanos <= credits_nanos + ref_credits_nanos", name="held_covered"),
        CheckConstraint("role IN ('user', 'admin')", name="role_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    plan: Mapped[str] = mapped_column(String(64), ForeignKey("plans.name", onupdate="CASCADE"))
    credits_nanos: Mapped[int] = mapped_column(Nanos, default=0)
    ref_credits_nanos: Mapped[int] = mapped_column(Nanos, default=0)
    held_nanos: Mapped[int] = mapped_column(Nanos, default=0)
    plan_start_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    plan_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    total_tokens: Mapped[int | None] = mapped_column(BigInteger, default=0)
    tokens_used: Mapped[int] = mapped_column(BigInteger, default=0)
    total_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    total_output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    total_cache_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    total_cache_hit_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    monthly_tokens_used: Mapped[int] = mapped_column(BigInteger, default=0)
    monthly_reset_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ApiKey(Base):
    """A user's gateway key: a SHA-256 digest for lookup and an AES-GCM copy for reveal.

    Rotated and revoked keys keep their row (with `revoked_at`) so history stays attributable; at most one
    live key per user.
    """

    __tablename__ = "api_keys"
    __table_args__ = (
        Index(
            "uq_api_keys_live_per_user",
            "user_id",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    last4: Mapped[str] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
