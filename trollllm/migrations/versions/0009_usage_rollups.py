"""hourly usage rollups for the admin metrics

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

Sums of the request logs per hour and model, per hour and user, per 6 hours and user, per user ever, and a latency histogram
per hour, kept after the logs' 30-day purge; `usage_rollup_state` holds the highest log id summed (0: none
yet, the maintenance pass rolls up the existing logs in batches). No index or trigger on `request_logs`:
a proxied request writes nothing more.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sums() -> list[sa.Column[int]]:
    return [
        sa.Column(name, sa.BigInteger(), nullable=False)
        for name in (
            "requests",
            "errors",
            "input_tokens",
            "output_tokens",
            "cache_write_tokens",
            "cache_hit_tokens",
            "cost_nanos",
        )
    ]


def upgrade() -> None:
    op.create_table(
        "usage_hourly_models",
        sa.Column("epoch_hour", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("first_log_id", sa.BigInteger(), nullable=False),
        *_sums(),
        sa.PrimaryKeyConstraint("epoch_hour", "model", name=op.f("pk_usage_hourly_models")),
    )
    op.create_table(
        "usage_hourly_users",
        sa.Column("epoch_hour", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        *_sums(),
        sa.PrimaryKeyConstraint("epoch_hour", "user_id", name=op.f("pk_usage_hourly_users")),
    )
    op.create_table(
        "usage_six_hourly_users",
        sa.Column("epoch_hour", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        *_sums(),
        sa.PrimaryKeyConstraint("epoch_hour", "user_id", name=op.f("pk_usage_six_hourly_users")),
    )
    op.create_table(
        "usage_user_totals",
        sa.Column("user_id", sa.Integer(), nullable=False),
        *_sums(),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_usage_user_totals")),
    )
    op.create_table(
        "usage_hourly_latency",
        sa.Column("epoch_hour", sa.BigInteger(), nullable=False),
        sa.Column("under_ms", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("epoch_hour", "under_ms", name=op.f("pk_usage_hourly_latency")),
    )
    state = op.create_table(
        "usage_rollup_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_log_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_rollup_state")),
    )
    op.bulk_insert(state, [{"id": 1, "last_log_id": 0}])
    op.create_table(
        "usage_rollup_unsettled",
        sa.Column("log_id", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("latency_ms", sa.BigInteger(), nullable=False),
        *_sums(),
        sa.PrimaryKeyConstraint("log_id", name=op.f("pk_usage_rollup_unsettled")),
    )


def downgrade() -> None:
    for table in (
        "usage_rollup_unsettled",
        "usage_rollup_state",
        "usage_hourly_latency",
        "usage_user_totals",
        "usage_six_hourly_users",
        "usage_hourly_users",
        "usage_hourly_models",
    ):
        op.drop_table(table)
