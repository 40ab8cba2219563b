"""Tables of Friend Keys and their per-model caps."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from trollllm.db import Base, Nanos, UtcDateTime, utcnow


class FriendKey(Base):
    """At most one per owner: a digest for lookup, the last 4 characters, and an encrypted copy so the owner
    can show and copy it again (null for keys made before the copy was kept)."""

    __tablename__ = "friend_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    key_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    last4: Mapped[str] = mapped_column(String(4))
    key_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    total_used_nanos: Mapped[int] = mapped_column(Nanos, default=0)
    requests_count: Mapped[int] = mapped_column(Integer, default=0)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # None: never
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class FriendKeyModelLimit(Base):
    """A per-model USD cap; `held_nanos` is the sum of open holds against it."""

    __tablename__ = "friend_key_model_limits"
    __table_args__ = (
        CheckConstraint("limit_nanos >= 0", name="limit_not_negative"),
        CheckConstraint("used_nanos >= 0", name="used_not_negative"),
        CheckConstraint("held_nanos >= 0", name="held_not_negative"),
    )

    friend_key_id: Mapped[int] = mapped_column(
        ForeignKey("friend_keys.id", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    limit_nanos: Mapped[int] = mapped_column(Nanos)
    used_nanos: Mapped[int] = mapped_column(Nanos, default=0)
    held_nanos: Mapped[int] = mapped_column(Nanos, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    reset_period: Mapped[str] = mapped_column(String(8), default="none", server_default="none")
    next_reset_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # None: never resets
