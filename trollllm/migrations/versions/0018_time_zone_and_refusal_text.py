"""users choose a time zone; request logs keep a refusal's message

Revision ID: 0018
Revises: 0010
Create Date: 2026-12-08

`users.time_zone` (an IANA name, default UTC) is the zone every page, the history filter, the charts and
the CSV use (SPEC §7 `/api/user/settings`). `request_logs.error_message` keeps the message a refused or
failed request was answered with, for the request's detail view (keys masked, at most 300 characters).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("time_zone", sa.String(length=64), nullable=False, server_default="UTC")
        )
    with op.batch_alter_table("request_logs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_message", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("request_logs", schema=None) as batch_op:
        batch_op.drop_column("error_message")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("time_zone")
