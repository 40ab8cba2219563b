"""models bound media sent by URL

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

An image or document sent by URL (OpenAI `image_url` with an http(s) URL, Anthropic `image`/`document`
with a `url` or `file` source) is not in the request's bytes, so the byte bound of the hold cannot cover
it. Each model holds `url_media_tokens` input tokens per such item (0: the model refuses media by URL).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("llm_models", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("url_media_tokens", sa.Integer(), nullable=False, server_default=sa.text("1600"))
        )


def downgrade() -> None:
    with op.batch_alter_table("llm_models", schema=None) as batch_op:
        batch_op.drop_column("url_media_tokens")
