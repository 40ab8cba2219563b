"""proxies remember their last error

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

A request refused by the outbound proxy itself (bad credentials, unreachable proxy) is the proxy's fault,
not the factory key's: the pool records it on the proxy row, where the admin proxies API shows it, and
clears it when a request passes through the proxy again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import trollllm.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("proxies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_error", sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column("last_error_at", trollllm.db.UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("proxies", schema=None) as batch_op:
        batch_op.drop_column("last_error_at")
        batch_op.drop_column("last_error")
