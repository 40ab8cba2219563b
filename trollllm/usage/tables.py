"""The request log table (kept 30 days)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from trollllm.db import Base, Nanos, UtcDateTime, utcnow


class RequestLog(Base):
    """One proxied request with its usage and cost; `user_id` is the owner for friend-key requests."""

    __tablename__ = "request_logs"
    # Few indexes: each is a B-tree write on every proxied request. The purge goes user by user through
    # `ix_request_logs_user_time`; own-key rows stay out of the friend key index, successful rows out of
    # the failed-requests index.
    __table_args__ = (
        Index("ix_request_logs_user_time", "user_id", "created_at"),
        Index(
            "ix_request_logs_friend_key_time",
            "friend_key_id",
            "created_at",
            sqlite_where=text("friend_key_id IS NOT NULL"),
            postgresql_where=text("friend_key_id IS NOT NULL"),
        ),
        # Failed and refused rows only (the admin's errors by type), its condition spelled as queries are.
        Index(
            "ix_request_logs_failed_time",
            "created_at",
            sqlite_where=text("is_success = 0"),
            postgresql_where=text("NOT is_success"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    user_key_id: Mapped[int | None] = mapped_column(Integer)
    friend_key_id: Mapped[int | None] = mapped_column(Integer)
    is_friend_key_request: Mapped[bool] = mapped_column(Boolean, default=False)
    factory_key_id: Mapped[int | None] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(128))
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_hit_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_cost_nanos: Mapped[int] = mapped_column(Nanos, default=0)
    status_code: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    is_success: Mapped[bool] = mapped_column(Boolean, default=False)
    is_byok: Mapped[bool] = mapped_column(Boolean, default=False)
    is_stream: Mapped[bool] = mapped_column(Boolean, default=False)
    error_type: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(300))  # what a refused/failed request was told
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
