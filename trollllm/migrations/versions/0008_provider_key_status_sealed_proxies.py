"""provider keys have a status; proxy credentials are encrypted; server keys

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

`provider_keys.status`: `unverified` (saved, not yet known good), `verified` (the provider accepted it) or
`invalid` (the provider answered 401 to it), with when that was last learnt. `proxies.url_encrypted`: the
proxy URL with its credentials, AES-256-GCM under the server secret; `proxies.url` keeps only the masked
form (`http://user:****@host:port`). A migration has no server secret, so existing plaintext URLs are
sealed by the gateway at start-up (and by `trollllm rotate-secret`): a row whose `url_encrypted` is NULL
still holds its URL in plaintext until then. `server_keys`: keys of the gateway's own, encrypted under
the server secret; `key-digest` (written by `trollllm rotate-secret`) is the HMAC key of gateway key
digests, carried across rotations since Friend Keys keep only their digest.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import trollllm.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("provider_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="unverified")
        )
        batch_op.add_column(sa.Column("status_at", trollllm.db.UtcDateTime(), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_provider_keys_status_known"), "status IN ('unverified', 'verified', 'invalid')"
        )
    with op.batch_alter_table("proxies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("url_encrypted", sa.LargeBinary(), nullable=True))
    op.create_table(
        "server_keys",
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("key_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("purpose", name=op.f("pk_server_keys")),
    )


def downgrade() -> None:
    op.drop_table("server_keys")
    with op.batch_alter_table("proxies", schema=None) as batch_op:
        batch_op.drop_column("url_encrypted")
    with op.batch_alter_table("provider_keys", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_provider_keys_status_known"), type_="check")
        batch_op.drop_column("status_at")
        batch_op.drop_column("status")
