"""model rows and factory keys name any provider row

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

`llm_models.provider` and `factory_keys.provider` lose their `provider IN ('openai', 'anthropic')` CHECK
and become foreign keys to `providers.name` (widened to its 32 characters), so a model or a factory key
of Groq, Gemini or a provider an admin adds (DeepSeek, Mistral) is a row, not a code change. Every row
that passed the old CHECK names a seeded provider, so the new constraint holds for existing data.
SQLite rebuilds both tables (batch mode); PostgreSQL alters them in place.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("llm_models", "factory_keys")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f"ck_{table}_provider_known"), type_="check")
            batch_op.alter_column(
                "provider",
                existing_type=sa.String(length=16),
                type_=sa.String(length=32),
                existing_nullable=False,
            )
            batch_op.create_foreign_key(
                op.f(f"fk_{table}_provider_providers"),
                "providers",
                ["provider"],
                ["name"],
                ondelete="RESTRICT",
            )


def downgrade() -> None:
    # Refuses (the CHECK fails) while a model or factory key names a provider other than openai/anthropic.
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f"fk_{table}_provider_providers"), type_="foreignkey")
            batch_op.alter_column(
                "provider",
                existing_type=sa.String(length=32),
                type_=sa.String(length=16),
                existing_nullable=False,
            )
            batch_op.create_check_constraint(
                op.f(f"ck_{table}_provider_known"), "provider IN ('openai', 'anthropic')"
            )
