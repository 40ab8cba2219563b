"""usage windows, models per plan, tokens in flight, Friend Key expiry and reset periods

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-08

- `plans.windows` and `plans.models` (JSON text, null = none / all models);
- `usage_window_buckets`: a user's spend and tokens per hour or per day (settled and held), so a rolling
  window is a sum over a few rows;
- `users.monthly_tokens_held` (the token maximum of the requests in flight, SPEC §5) and `users.time_zone`;
- `holds.tokens` and `holds.window_spans`, so whoever releases a hold releases those too;
- `friend_keys.expires_at`, and `reset_period` / `next_reset_at` on each Friend Key model cap.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import trollllm.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_window_buckets",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("span_s", sa.Integer(), nullable=False),
        sa.Column("start_s", sa.BigInteger(), nullable=False),
        sa.Column("used_nanos", sa.BigInteger(), nullable=False),
        sa.Column("used_tokens", sa.BigInteger(), nullable=False),
        sa.Column("held_nanos", sa.BigInteger(), nullable=False),
        sa.Column("held_tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "span_s", "start_s", name=op.f("pk_usage_window_buckets")),
    )
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("windows", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("models", sa.Text(), nullable=True))
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("monthly_tokens_held", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("time_zone", sa.String(length=64), server_default="UTC", nullable=False)
        )
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tokens", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("window_spans", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("friend_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", trollllm.db.UtcDateTime(), nullable=True))
    with op.batch_alter_table("friend_key_model_limits", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reset_period", sa.String(length=8), server_default="none", nullable=False)
        )
        batch_op.add_column(sa.Column("next_reset_at", trollllm.db.UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("friend_key_model_limits", schema=None) as batch_op:
        batch_op.drop_column("next_reset_at")
        batch_op.drop_column("reset_period")
    with op.batch_alter_table("friend_keys", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_column("window_spans")
        batch_op.drop_column("tokens")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("time_zone")
        batch_op.drop_column("monthly_tokens_held")
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_column("models")
        batch_op.drop_column("windows")
    op.drop_table("usage_window_buckets")
