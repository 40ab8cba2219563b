"""The `anthropic-beta` values an admin refuses; every other value is forwarded (migration 0012)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from trollllm.db import Base, UtcDateTime, utcnow


class AnthropicBetaRefusal(Base):
    """One refused value: exact (`files-api-2025-04-14`) or a prefix ending in `*` (`files-api-*`)."""

    __tablename__ = "anthropic_beta_refusals"

    value: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
