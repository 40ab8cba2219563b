"""the Responses API: provider `responses_api`, model `kind`, stored responses

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08

`providers.responses_api` (true for the seeded `openai` row): its models get `/v1/responses` as is, the
others are translated. `llm_models.kind` (`chat` by default, or `embedding`): which endpoint serves the
model. `stored_responses`: the responses a caller stored (`store`, the API's default), with their input
and output items, kept 30 days (purged with the request logs).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import trollllm.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (no batch rebuild): SQLite cannot drop `providers` while rows reference it.
    op.add_column(
        "providers", sa.Column("responses_api", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.execute("UPDATE providers SET responses_api = TRUE WHERE name = 'openai'")
    with op.batch_alter_table("llm_models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="chat", nullable=False))
        batch_op.create_check_constraint(op.f("ck_llm_models_kind_known"), "kind IN ('chat', 'embedding')")
    op.create_table(
        "stored_responses",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("friend_key_id", sa.Integer(), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("input_items", sa.Text(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("factory_key_id", sa.Integer(), nullable=True),
        sa.Column("created_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_stored_responses_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_responses")),
    )
    op.create_index("ix_stored_responses_user_time", "stored_responses", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_stored_responses_user_time", table_name="stored_responses")
    op.drop_table("stored_responses")
    with op.batch_alter_table("llm_models", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_llm_models_kind_known"), type_="check")
        batch_op.drop_column("kind")
    # Not a batch rebuild: SQLite cannot drop `providers` while model rows and keys reference it.
    op.execute("ALTER TABLE providers DROP COLUMN responses_api")
