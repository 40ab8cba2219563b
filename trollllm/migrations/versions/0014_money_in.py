"""money in: redemption codes, Stripe payments and events, plan prices, invite codes, referrals

Revision ID: 0014
Revises: 0010
Create Date: 2026-12-07

SPEC §10. New tables only; nothing existing changes. A code is stored as its SHA-256 (unique), a payment
by its Checkout Session id (unique: granted once), a Stripe event by its id (primary key: handled once).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from trollllm.db import UtcDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stripe_events",
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_stripe_events")),
    )
    op.create_table(
        "plan_prices",
        sa.Column("plan", sa.String(length=64), nullable=False),
        sa.Column("price_nanos", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("price_nanos > 0", name=op.f("ck_plan_prices_price_positive")),
        sa.ForeignKeyConstraint(
            ["plan"],
            ["plans.name"],
            name=op.f("fk_plan_prices_plan_plans"),
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("plan", name=op.f("pk_plan_prices")),
    )
    op.create_table(
        "redemption_batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("amount_nanos", sa.BigInteger(), nullable=False),
        sa.Column("balance", sa.String(length=16), nullable=False),
        sa.Column("plan", sa.String(length=64), nullable=True),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "balance IN ('credits', 'refCredits')", name=op.f("ck_redemption_batches_balance_known")
        ),
        sa.CheckConstraint("amount_nanos >= 0", name=op.f("ck_redemption_batches_amount_not_negative")),
        sa.ForeignKeyConstraint(
            ["plan"],
            ["plans.name"],
            name=op.f("fk_redemption_batches_plan_plans"),
            onupdate="CASCADE",
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redemption_batches")),
    )
    op.create_table(
        "invite_codes",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_invite_codes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_invite_codes")),
        sa.UniqueConstraint("user_id", name=op.f("uq_invite_codes_user_id")),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("plan", sa.String(length=64), nullable=True),
        sa.Column("amount_nanos", sa.BigInteger(), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("granted_nanos", sa.BigInteger(), nullable=False),
        sa.Column("session_id", sa.String(length=255), nullable=False),
        sa.Column("payment_intent", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("refund_due_nanos", sa.BigInteger(), nullable=False),
        sa.Column("refunded_nanos", sa.BigInteger(), nullable=False),
        sa.Column("referrer_id", sa.Integer(), nullable=True),
        sa.Column("rebate_nanos", sa.BigInteger(), nullable=False),
        sa.Column("rebate_reversal_due_nanos", sa.BigInteger(), nullable=False),
        sa.Column("rebate_reversed_nanos", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("paid_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint("kind IN ('topup', 'plan')", name=op.f("ck_payments_kind_known")),
        sa.CheckConstraint("status IN ('open', 'paid', 'refunded')", name=op.f("ck_payments_status_known")),
        sa.ForeignKeyConstraint(
            ["referrer_id"], ["users.id"], name=op.f("fk_payments_referrer_id_users"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_payments_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("payment_intent", name=op.f("uq_payments_payment_intent")),
        sa.UniqueConstraint("session_id", name=op.f("uq_payments_session_id")),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index("ix_payments_user_time", ["user_id", "created_at"], unique=False)

    op.create_table(
        "redemption_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("code_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.Column("used_by", sa.Integer(), nullable=True),
        sa.Column("voided_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["redemption_batches.id"],
            name=op.f("fk_redemption_codes_batch_id_redemption_batches"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["used_by"], ["users.id"], name=op.f("fk_redemption_codes_used_by_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redemption_codes")),
        sa.UniqueConstraint("code_digest", name=op.f("uq_redemption_codes_code_digest")),
    )
    with op.batch_alter_table("redemption_codes", schema=None) as batch_op:
        batch_op.create_index("ix_redemption_codes_batch", ["batch_id"], unique=False)

    op.create_table(
        "referrals",
        sa.Column("referee_id", sa.Integer(), nullable=False),
        sa.Column("referrer_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("referee_id <> referrer_id", name=op.f("ck_referrals_not_oneself")),
        sa.ForeignKeyConstraint(
            ["referee_id"], ["users.id"], name=op.f("fk_referrals_referee_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["referrer_id"], ["users.id"], name=op.f("fk_referrals_referrer_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("referee_id", name=op.f("pk_referrals")),
    )
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.create_index("ix_referrals_referrer", ["referrer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_index("ix_referrals_referrer")

    op.drop_table("referrals")
    with op.batch_alter_table("redemption_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_redemption_codes_batch")

    op.drop_table("redemption_codes")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_user_time")

    op.drop_table("payments")
    op.drop_table("invite_codes")
    op.drop_table("redemption_batches")
    op.drop_table("plan_prices")
    op.drop_table("stripe_events")
