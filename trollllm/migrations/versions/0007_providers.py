"""providers are rows

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

The providers a user may bring their own key for, each with its wire format and API root, so adding one
(DeepSeek, Mistral, …) is an INSERT, not a code change. Seeded with OpenAI, Anthropic, Groq and Gemini
(Gemini and Groq through their OpenAI-compatible endpoints).
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import trollllm.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEEDED = [
    ("openai", "OpenAI", "openai", "https://api.openai.com/v1"),
    ("anthropic", "Anthropic", "anthropic", "https://api.anthropic.com"),
    ("groq", "Groq", "openai", "https://api.groq.com/openai/v1"),
    ("gemini", "Google Gemini", "openai", "https://generativelanguage.googleapis.com/v1beta/openai"),
]


def upgrade() -> None:
    providers = op.create_table(
        "providers",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("display_name", sa.String(length=64), nullable=False),
        sa.Column("wire_format", sa.String(length=16), nullable=False),
        sa.Column("base_url", sa.String(length=300), nullable=False),
        sa.Column("created_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_providers")),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        providers,
        [
            {"name": name, "display_name": display, "wire_format": wire, "base_url": url, "created_at": now}
            for name, display, wire, url in SEEDED
        ],
    )


def downgrade() -> None:
    op.drop_table("providers")
