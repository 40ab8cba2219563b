"""credit leases: slices of a balance reserved by one gateway instance

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07

`credit_leases`: one row per slice of a user's balance that a gateway instance (`instance_id`, random per
process start) reserved in `users.held_nanos` and serves holds from in memory (`trollllm.billing.leases`).
`expires_at` is renewed while the instance lives; the sweeper returns an expired lease to the balance.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import trollllm.db

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credit_leases",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("amount_nanos", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.CheckConstraint("amount_nanos >= 0", name=op.f("ck_credit_leases_amount_not_negative")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_credit_leases_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_leases")),
    )


def downgrade() -> None:
    op.drop_table("credit_leases")
