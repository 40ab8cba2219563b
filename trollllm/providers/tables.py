"""The providers table: an upstream API is a row, so adding one (DeepSeek, Mistral) is data, not code."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String, false
from sqlalchemy.orm import Mapped, mapped_column

from trollllm.db import Base, UtcDateTime, utcnow

WIRE_FORMATS = ("openai", "anthropic")
"""The wire formats a provider may speak (`trollllm.wire.WireFormat` values)."""


class Provider(Base):
    """An upstream provider: its wire format and API root. Model rows, factory keys and users' own keys
    name it by `name`."""

    __tablename__ = "providers"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(64))
    wire_format: Mapped[str] = mapped_column(String(16))  # `openai` or `anthropic` (trollllm.wire)
    base_url: Mapped[str] = mapped_column(String(300))
    # Its API serves `/v1/responses` (OpenAI's own): Responses requests go as they are, not translated.
    responses_api: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
