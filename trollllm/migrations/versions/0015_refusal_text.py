"""request logs keep a refusal's message

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

`request_logs.error_message` keeps the message a refused or failed request was answered with, for the
request's detail view (keys masked, at most 300 characters). (`users.time_zone` came with 0013.)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("request_logs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_message", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("request_logs", schema=None) as batch_op:
        batch_op.drop_column("error_message")
