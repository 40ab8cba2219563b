"""The plan table and its SPEC §5 defaults."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from trollllm.db import Base, Nanos, UtcDateTime, utcnow

FREE_PLAN = "free"


class Plan(Base):
    """A plan row; `monthly_token_limit` NULL means unlimited."""

    __tablename__ = "plans"
    __table_args__ = (
        CheckConstraint("rpm >= 0", name="rpm_not_negative"),
        CheckConstraint("byok_rpm >= 0", name="byok_rpm_not_negative"),
        CheckConstraint("credit_grant_nanos >= 0", name="grant_not_negative"),
        CheckConstraint("monthly_token_limit IS NULL OR monthly_token_limit >= 0", name="limit_not_negative"),
    )

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_access: Mapped[bool] = mapped_column(Boolean)
    rpm: Mapped[int] = mapped_column(Integer)
    credit_grant_nanos: Mapped[int] = mapped_column(Nanos)
    monthly_token_limit: Mapped[int | None] = mapped_column(BigInteger)
    byok_rpm: Mapped[int] = mapped_column(Integer)
    # JSON: `[{"window": "5h", "usdLimit": …, "tokenLimit": …}]` (null: none) and model ids (null: all).
    windows: Mapped[str | None] = mapped_column(Text)
    models: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
