"""the failed requests of a period by error type, for the admin error rate

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07

`ix_request_logs_failed_time`: a partial index on `request_logs.created_at` holding only the failed and
refused rows (`NOT is_success`), so `/admin` counts a period's errors by type without reading its
successful rows. A successful request writes no entry in it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_request_logs_failed_time",
        "request_logs",
        ["created_at"],
        sqlite_where=sa.text("is_success = 0"),
        postgresql_where=sa.text("NOT is_success"),
    )


def downgrade() -> None:
    op.drop_index("ix_request_logs_failed_time", table_name="request_logs")
