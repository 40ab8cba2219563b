"""The model table: what clients may call and what it costs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from trollllm.db import Base, Nanos, UtcDateTime, utcnow

MODEL_KINDS = ("chat", "embedding")
"""What a model serves: `chat` (chat completions, messages, responses) or `embedding` (`/v1/embeddings`)."""
DEFAULT_URL_MEDIA_TOKENS = 1600
"""Input tokens held per image or document sent by URL: a full-size image on either provider."""


class LlmModel(Base):
    """A model row of SPEC §4; prices are nano-dollars per million tokens."""

    __tablename__ = "llm_models"
    __table_args__ = (
        CheckConstraint(
            "input_price_nanos >= 0 AND output_price_nanos >= 0 AND cache_write_price_nanos >= 0 "
            "AND cache_hit_price_nanos >= 0",
            name="prices_not_negative",
        ),
        CheckConstraint("max_output_tokens > 0", name="max_output_positive"),
        CheckConstraint("kind IN ('chat', 'embedding')", name="kind_known"),
        CheckConstraint(
            "(long_context_threshold_tokens IS NULL) = (long_context_input_price_nanos IS NULL) "
            "AND (long_context_threshold_tokens IS NULL) = (long_context_output_price_nanos IS NULL) "
            "AND (long_context_threshold_tokens IS NULL) = (long_context_cache_write_price_nanos IS NULL) "
            "AND (long_context_threshold_tokens IS NULL) = (long_context_cache_hit_price_nanos IS NULL)",
            name="long_context_whole",
        ),
        CheckConstraint(
            "COALESCE(long_context_input_price_nanos, 0) >= 0 "
            "AND COALESCE(long_context_output_price_nanos, 0) >= 0 "
            "AND COALESCE(long_context_cache_write_price_nanos, 0) >= 0 "
            "AND COALESCE(long_context_cache_hit_price_nanos, 0) >= 0 "
            "AND COALESCE(web_search_price_nanos, 0) >= 0 "
            "AND COALESCE(long_context_threshold_tokens, 1) > 0",
            name="extra_prices_not_negative",
        ),
    )

    model_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # Any row of `providers` (migration 0010 replaced the openai/anthropic CHECK with this foreign key).
    provider: Mapped[str] = mapped_column(String(32), ForeignKey("providers.name", ondelete="RESTRICT"))
    upstream_model: Mapped[str] = mapped_column(String(128))
    input_price_nanos: Mapped[int] = mapped_column(Nanos)
    output_price_nanos: Mapped[int] = mapped_column(Nanos)
    cache_write_price_nanos: Mapped[int] = mapped_column(Nanos, default=0)
    cache_hit_price_nanos: Mapped[int] = mapped_column(Nanos, default=0)
    max_output_tokens: Mapped[int] = mapped_column(Integer)
    # Held per media item sent by URL (its tokens are not in the request's bytes); 0 refuses them.
    url_media_tokens: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_URL_MEDIA_TOKENS, server_default=text(str(DEFAULT_URL_MEDIA_TOKENS))
    )
    kind: Mapped[str] = mapped_column(String(16), default="chat", server_default="chat")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Shown by Anthropic's model list (`display_name`); null: derived from the id.
    display_name: Mapped[str | None] = mapped_column(String(128), default=None)
    # The long-context tier (migration 0012): a request whose input passes the threshold is billed entirely
    # at these prices. All five null: no tier (and the `context-1m-…` beta is refused for the model).
    long_context_threshold_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    long_context_input_price_nanos: Mapped[int | None] = mapped_column(Nanos, default=None)
    long_context_output_price_nanos: Mapped[int | None] = mapped_column(Nanos, default=None)
    long_context_cache_write_price_nanos: Mapped[int | None] = mapped_column(Nanos, default=None)
    long_context_cache_hit_price_nanos: Mapped[int | None] = mapped_column(Nanos, default=None)
    # Nano-USD per 1,000 web searches; null: web search is refused for the model.
    web_search_price_nanos: Mapped[int | None] = mapped_column(Nanos, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
