"""Users' own provider keys (the providers themselves are rows of `trollllm.providers`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from trollllm.db import Base, UtcDateTime, utcnow
from trollllm.providers.tables import Provider

__all__ = ["INVALID", "UNVERIFIED", "VERIFIED", "Provider", "ProviderKey"]

UNVERIFIED, VERIFIED, INVALID = "unverified", "verified", "invalid"


class ProviderKey(Base):
    """A user's key for one provider, AES-256-GCM encrypted; only `last4` is ever shown."""

    __tablename__ = "provider_keys"
    __table_args__ = (
        UniqueConstraint("user_id", "provider"),
        CheckConstraint("status IN ('unverified', 'verified', 'invalid')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(16))
    key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    last4: Mapped[str] = mapped_column(String(4))
    added_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=UNVERIFIED, server_default=UNVERIFIED)
    """`unverified` until the provider answers; `verified` once it accepted the key; `invalid` after a 401."""
    status_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """When the status was last learnt from the provider."""
