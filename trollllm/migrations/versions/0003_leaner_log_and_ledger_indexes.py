"""leaner request log and ledger indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Every proxied request inserts one request log row and, when charged, one ledger entry; each index on
those tables is one more B-tree write (and one more page in the commit) on the hot path:
- `ix_request_logs_time` goes: the purge finds old rows user by user through `ix_request_logs_user_time`.
- `ix_request_logs_friend_key_time` becomes partial (`friend_key_id IS NOT NULL`): rows of a user's own
  key no longer enter it, and a friend key's history still uses it.
- `ix_ledger_entries_request_id` goes: nothing looks the ledger up by request (the request log, which has
  its own unique index on `request_id`, carries each request's cost).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FRIEND_ROWS = sa.text("friend_key_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_request_logs_time", table_name="request_logs")
    op.drop_index("ix_request_logs_friend_key_time", table_name="request_logs")
    op.create_index(
        "ix_request_logs_friend_key_time",
        "request_logs",
        ["friend_key_id", "created_at"],
        sqlite_where=_FRIEND_ROWS,
        postgresql_where=_FRIEND_ROWS,
    )
    op.drop_index("ix_ledger_entries_request_id", table_name="ledger_entries")


def downgrade() -> None:
    op.create_index("ix_ledger_entries_request_id", "ledger_entries", ["request_id"])
    op.drop_index("ix_request_logs_friend_key_time", table_name="request_logs")
    op.create_index("ix_request_logs_friend_key_time", "request_logs", ["friend_key_id", "created_at"])
    op.create_index("ix_request_logs_time", "request_logs", ["created_at"])
