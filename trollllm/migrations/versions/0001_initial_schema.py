"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Every table of SPEC sections 3 to 6, the default plans of §5, and triggers that make the ledger append-only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import trollllm.db

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("before_json", sa.Text(), nullable=True),
        sa.Column("after_json", sa.Text(), nullable=True),
        sa.Column("created_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index("ix_audit_entries_time", ["created_at"], unique=False)

    op.create_table(
        "llm_models",
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("upstream_model", sa.String(length=128), nullable=False),
        sa.Column("input_price_nanos", sa.BigInteger(), nullable=False),
        sa.Column("output_price_nanos", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_price_nanos", sa.BigInteger(), nullable=False),
        sa.Column("cache_hit_price_nanos", sa.BigInteger(), nullable=False),
        sa.Column("max_output_tokens", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.Column("updated_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.CheckConstraint("provider IN ('openai', 'anthropic')", name=op.f("ck_llm_models_provider_known")),
        sa.CheckConstraint(
            "input_price_nanos >= 0 AND output_price_nanos >= 0 AND cache_write_price_nanos >= 0 AND cache_hit_price_nanos >= 0",
            name=op.f("ck_llm_models_prices_not_negative"),
        ),
        sa.CheckConstraint("max_output_tokens > 0", name=op.f("ck_llm_models_max_output_positive")),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_llm_models")),
    )
    op.create_table(
        "plans",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("api_access", sa.Boolean(), nullable=False),
        sa.Column("rpm", sa.Integer(), nullable=False),
        sa.Column("credit_grant_nanos", sa.BigInteger(), nullable=False),
        sa.Column("monthly_token_limit", sa.BigInteger(), nullable=True),
        sa.Column("byok_rpm", sa.Integer(), nullable=False),
        sa.Column("created_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.CheckConstraint("byok_rpm >= 0", name=op.f("ck_plans_byok_rpm_not_negative")),
        sa.CheckConstraint("credit_grant_nanos >= 0", name=op.f("ck_plans_grant_not_negative")),
        sa.CheckConstraint(
            "monthly_token_limit IS NULL OR monthly_token_limit >= 0",
            name=op.f("ck_plans_limit_not_negative"),
        ),
        sa.CheckConstraint("rpm >= 0", name=op.f("ck_plans_rpm_not_negative")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_plans")),
    )
    op.create_table(
        "proxies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("created_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proxies")),
        sa.UniqueConstraint("name", name=op.f("uq_proxies_name")),
    )
    op.create_table(
        "factory_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("base_url", sa.String(length=2048), nullable=False),
        sa.Column("key_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("proxy_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("cooldown_until", trollllm.db.UtcDateTime(), nullable=True),
        sa.Column("requests_count", sa.Integer(), nullable=False),
        sa.Column("spend_nanos", sa.BigInteger(), nullable=False),
        sa.Column("created_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "provider IN ('openai', 'anthropic')", name=op.f("ck_factory_keys_provider_known")
        ),
        sa.CheckConstraint(
            "status IN ('healthy', 'cooling_down', 'disabled')", name=op.f("ck_factory_keys_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["proxy_id"], ["proxies.id"], name=op.f("fk_factory_keys_proxy_id_proxies"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_factory_keys")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("plan", sa.String(length=64), nullable=False),
        sa.Column("credits_nanos", sa.BigInteger(), nullable=False),
        sa.Column("ref_credits_nanos", sa.BigInteger(), nullable=False),
        sa.Column("held_nanos", sa.BigInteger(), nullable=False),
        sa.Column("plan_start_date", trollllm.db.UtcDateTime(), nullable=True),
        sa.Column("plan_expires_at", trollllm.db.UtcDateTime(), nullable=True),
        sa.Column("total_tokens", sa.BigInteger(), nullable=True),
        sa.Column("tokens_used", sa.BigInteger(), nullable=False),
        sa.Column("total_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_cache_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_cache_hit_tokens", sa.BigInteger(), nullable=False),
        sa.Column("monthly_tokens_used", sa.BigInteger(), nullable=False),
        sa.Column("monthly_reset_date", trollllm.db.UtcDateTime(), nullable=True),
        sa.Column("created_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.CheckConstraint("role IN ('user', 'admin')", name=op.f("ck_users_role_known")),
        sa.CheckConstraint("credits_nanos >= 0", name=op.f("ck_users_credits_not_negative")),
        sa.CheckConstraint(
            "held_nanos <= credits_nanos + ref_credits_nanos", name=op.f("ck_users_held_covered")
        ),
        sa.CheckConstraint("held_nanos >= 0", name=op.f("ck_users_held_not_negative")),
        sa.CheckConstraint("ref_credits_nanos >= 0", name=op.f("ck_users_ref_credits_not_negative")),
        sa.ForeignKeyConstraint(
            ["plan"], ["plans.name"], name=op.f("fk_users_plan_plans"), onupdate="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("key_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("created_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.Column("revoked_at", trollllm.db.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_digest", name=op.f("uq_api_keys_key_digest")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            "uq_api_keys_live_per_user",
            ["user_id"],
            unique=True,
            sqlite_where=sa.text("revoked_at IS NULL"),
            postgresql_where=sa.text("revoked_at IS NULL"),
        )

    op.create_table(
        "friend_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("key_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("total_used_nanos", sa.BigInteger(), nullable=False),
        sa.Column("requests_count", sa.Integer(), nullable=False),
        sa.Column("last_used_at", trollllm.db.UtcDateTime(), nullable=True),
        sa.Column("created_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_friend_keys_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_friend_keys")),
        sa.UniqueConstraint("key_digest", name=op.f("uq_friend_keys_key_digest")),
        sa.UniqueConstraint("owner_id", name=op.f("uq_friend_keys_owner_id")),
    )
    op.create_table(
        "holds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("amount_nanos", sa.BigInteger(), nullable=False),
        sa.Column("friend_key_id", sa.Integer(), nullable=True),
        sa.Column("model_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.Column("expires_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.CheckConstraint("amount_nanos >= 0", name=op.f("ck_holds_amount_not_negative")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_holds_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holds")),
        sa.UniqueConstraint("request_id", name=op.f("uq_holds_request_id")),
    )
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_holds_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_holds_user_id"), ["user_id"], unique=False)

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("credits_delta_nanos", sa.BigInteger(), nullable=False),
        sa.Column("ref_credits_delta_nanos", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_ledger_entries_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_entries_request_id"), ["request_id"], unique=False)
        batch_op.create_index("ix_ledger_entries_user_time", ["user_id", "created_at"], unique=False)

    op.create_table(
        "provider_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("key_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("added_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_provider_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_keys")),
        sa.UniqueConstraint("user_id", "provider", name=op.f("uq_provider_keys_user_id")),
    )
    op.create_table(
        "request_logs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("user_key_id", sa.Integer(), nullable=True),
        sa.Column("friend_key_id", sa.Integer(), nullable=True),
        sa.Column("is_friend_key_request", sa.Boolean(), nullable=False),
        sa.Column("factory_key_id", sa.Integer(), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_hit_tokens", sa.BigInteger(), nullable=False),
        sa.Column("credits_cost_nanos", sa.BigInteger(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("is_success", sa.Boolean(), nullable=False),
        sa.Column("is_byok", sa.Boolean(), nullable=False),
        sa.Column("is_stream", sa.Boolean(), nullable=False),
        sa.Column("error_type", sa.String(length=64), nullable=True),
        sa.Column("created_at", trollllm.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_request_logs_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_logs")),
        sa.UniqueConstraint("request_id", name=op.f("uq_request_logs_request_id")),
    )
    with op.batch_alter_table("request_logs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_request_logs_friend_key_time", ["friend_key_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_request_logs_time", ["created_at"], unique=False)
        batch_op.create_index("ix_request_logs_user_time", ["user_id", "created_at"], unique=False)

    op.create_table(
        "friend_key_model_limits",
        sa.Column("friend_key_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("limit_nanos", sa.BigInteger(), nullable=False),
        sa.Column("used_nanos", sa.BigInteger(), nullable=False),
        sa.Column("held_nanos", sa.BigInteger(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.CheckConstraint("held_nanos >= 0", name=op.f("ck_friend_key_model_limits_held_not_negative")),
        sa.CheckConstraint("limit_nanos >= 0", name=op.f("ck_friend_key_model_limits_limit_not_negative")),
        sa.CheckConstraint("used_nanos >= 0", name=op.f("ck_friend_key_model_limits_used_not_negative")),
        sa.ForeignKeyConstraint(
            ["friend_key_id"],
            ["friend_keys.id"],
            name=op.f("fk_friend_key_model_limits_friend_key_id_friend_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("friend_key_id", "model_id", name=op.f("pk_friend_key_model_limits")),
    )

    plans = sa.table(
        "plans",
        sa.column("name", sa.String),
        sa.column("api_access", sa.Boolean),
        sa.column("rpm", sa.Integer),
        sa.column("credit_grant_nanos", sa.BigInteger),
        sa.column("monthly_token_limit", sa.BigInteger),
        sa.column("byok_rpm", sa.Integer),
        sa.column("created_at", trollllm.db.UtcDateTime),
    )
    # SPEC section 5 defaults (grants in nano-dollars; NULL monthly limit = unlimited). BYOK RPM is not in
    # the SPEC table: it equals the plan's RPM, and 60 on free so BYOK works there without flooding.
    now = trollllm.db.utcnow()
    op.bulk_insert(
        plans,
        [
            {
                "name": "free",
                "api_access": False,
                "rpm": 0,
                "credit_grant_nanos": 0,
                "monthly_token_limit": 0,
                "byok_rpm": 60,
                "created_at": now,
            },
            {
                "name": "dev",
                "api_access": True,
                "rpm": 300,
                "credit_grant_nanos": 225_000_000_000,
                "monthly_token_limit": 15_000_000,
                "byok_rpm": 300,
                "created_at": now,
            },
            {
                "name": "pro",
                "api_access": True,
                "rpm": 1000,
                "credit_grant_nanos": 500_000_000_000,
                "monthly_token_limit": 40_000_000,
                "byok_rpm": 1000,
                "created_at": now,
            },
            {
                "name": "pro-troll",
                "api_access": True,
                "rpm": 600,
                "credit_grant_nanos": 0,
                "monthly_token_limit": None,
                "byok_rpm": 600,
                "created_at": now,
            },
        ],
    )
    _make_ledger_append_only()


def _make_ledger_append_only() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER ledger_entries_no_{verb.lower()} BEFORE {verb} ON ledger_entries "
                "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END"
            )
        return
    op.execute(
        "CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'ledger_entries is append-only'; END $$"
    )
    op.execute(
        "CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries "
        "FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER ledger_entries_append_only ON ledger_entries")
        op.execute("DROP FUNCTION ledger_entries_append_only()")
    op.drop_table("friend_key_model_limits")
    with op.batch_alter_table("request_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_request_logs_user_time")
        batch_op.drop_index("ix_request_logs_time")
        batch_op.drop_index("ix_request_logs_friend_key_time")

    op.drop_table("request_logs")
    op.drop_table("provider_keys")
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_entries_user_time")
        batch_op.drop_index(batch_op.f("ix_ledger_entries_request_id"))

    op.drop_table("ledger_entries")
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_holds_user_id"))
        batch_op.drop_index(batch_op.f("ix_holds_expires_at"))

    op.drop_table("holds")
    op.drop_table("friend_keys")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_api_keys_live_per_user",
            sqlite_where=sa.text("revoked_at IS NULL"),
            postgresql_where=sa.text("revoked_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_api_keys_user_id"))

    op.drop_table("api_keys")
    op.drop_table("users")
    op.drop_table("factory_keys")
    op.drop_table("proxies")
    op.drop_table("plans")
    op.drop_table("llm_models")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entries_time")

    op.drop_table("audit_entries")
