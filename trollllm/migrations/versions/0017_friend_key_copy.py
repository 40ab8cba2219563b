"""friend keys keep an encrypted copy, so the owner can show and copy the key again

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-09

`friend_keys.key_encrypted`: the key under the server secret (AES-256-GCM, like the user's own API key),
for Show and Copy on the Friend Key page. Null for keys made before: those are shown once, as they were;
a rotation gives them a copy.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (no batch rebuild): SQLite cannot drop `friend_keys` while its caps reference it.
    op.add_column("friend_keys", sa.Column("key_encrypted", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("friend_keys", "key_encrypted")
