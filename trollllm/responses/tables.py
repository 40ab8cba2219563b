"""The stored responses table: what a caller stored with `store` (the API's default), kept 30 days."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from trollllm.db import Base, UtcDateTime, utcnow


class StoredResponse(Base):
    """One stored response: its caller (the user, and the Friend Key when one made it), the whole input
    the upstream got (previous turns expanded), and the response object as the client got it (JSON)."""

    __tablename__ = "stored_responses"
    __table_args__ = (Index("ix_stored_responses_user_time", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    friend_key_id: Mapped[int | None] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    input_items: Mapped[str] = mapped_column(Text)
    response: Mapped[str] = mapped_column(Text)
    factory_key_id: Mapped[int | None] = mapped_column(Integer)
    """The key that served it: the next turn goes to the same key while it is healthy."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
