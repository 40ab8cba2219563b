"""holds keyed by their id alone

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

A hold is placed and released by the same process, which keeps the id `INSERT … RETURNING id` gave it and
releases it by that id (and its request id: SQLite may reuse the id of a hold the sweeper deleted). The unique index on `request_id` was one more B-tree page written by both of each
proxied request's transactions (its hold and its settlement); request ids are unique by construction.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_constraint("uq_holds_request_id", type_="unique")


def downgrade() -> None:
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_holds_request_id", ["request_id"])
