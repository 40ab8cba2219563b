"""long-context tier, web search price and display name on model rows; refused anthropic-beta values

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-08

Every way Claude Code can spend is priced on the model row (issue 24): `long_context_*` (a threshold in
input tokens and the four prices a request past it is billed at entirely; all null = no tier, and the
`context-1m-…` beta is refused for the model), `web_search_price_nanos` (nano-USD per 1,000 searches;
null = web search refused), and `display_name` (Anthropic's model list). `anthropic_beta_refusals` holds
the `anthropic-beta` values an admin refuses (exact, or a prefix ending in `*`); every other value is
forwarded.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import trollllm.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LONG_CONTEXT_PRICES = (
    "long_context_input_price_nanos",
    "long_context_output_price_nanos",
    "long_context_cache_write_price_nanos",
    "long_context_cache_hit_price_nanos",
)


def upgrade() -> None:
    with op.batch_alter_table("llm_models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("display_name", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("long_context_threshold_tokens", sa.Integer(), nullable=True))
        for column in _LONG_CONTEXT_PRICES:
            batch_op.add_column(sa.Column(column, sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("web_search_price_nanos", sa.BigInteger(), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_llm_models_long_context_whole"),
            "(long_context_threshold_tokens IS NULL) = (long_context_input_price_nanos IS NULL) "
            "AND (long_context_threshold_tokens IS NULL) = (long_context_output_price_nanos IS NULL) "
            "AND (long_context_threshold_tokens IS NULL) = (long_context_cache_write_price_nanos IS NULL) "
            "AND (long_context_threshold_tokens IS NULL) = (long_context_cache_hit_price_nanos IS NULL)",
        )
        batch_op.create_check_constraint(
            op.f("ck_llm_models_extra_prices_not_negative"),
            "COALESCE(long_context_input_price_nanos, 0) >= 0 "
            "AND COALESCE(long_context_output_price_nanos, 0) >= 0 "
            "AND COALESCE(long_context_cache_write_price_nanos, 0) >= 0 "
            "AND COALESCE(long_context_cache_hit_price_nanos, 0) >= 0 "
            "AND COALESCE(web_search_price_nanos, 0) >= 0 "
            "AND COALESCE(long_context_threshold_tokens, 1) > 0",
        )
    op.create_table(
        "anthropic_beta_refusals",
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("created_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("value", name=op.f("pk_anthropic_beta_refusals")),
    )


def downgrade() -> None:
    op.drop_table("anthropic_beta_refusals")
    with op.batch_alter_table("llm_models", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_llm_models_extra_prices_not_negative"), type_="check")
        batch_op.drop_constraint(op.f("ck_llm_models_long_context_whole"), type_="check")
        for column in ("web_search_price_nanos", *reversed(_LONG_CONTEXT_PRICES)):
            batch_op.drop_column(column)
        batch_op.drop_column("long_context_threshold_tokens")
        batch_op.drop_column("display_name")
