"""The key lookup behind `trollllm.proxy.gate.authenticate`: a presented key's live row, its owner and the
owner's plan, in one indexed query by the key's HMAC digest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from trollllm.plans.enforcement import PlanStatus
from trollllm.plans.windows import parse_models, parse_windows
from trollllm.storage.sqlprogram import Program, Query, as_utc


@dataclass(frozen=True, slots=True)
class KeyRow:
    """A live key (API key or Friend Key) with its owner's state and plan."""

    key_id: int
    user_id: int
    username: str
    is_active: bool
    api_access: bool
    plan_expires_at: datetime | None
    plan: PlanStatus
    has_provider_keys: bool
    key_active: bool  # a Friend Key's pause switch (always true for an API key)
    key_expires_at: datetime | None  # a Friend Key's expiry
    time_zone: str  # the owner's (Friend Key caps reset at 00:00 there)


_LOOKUP_COLUMNS = (
    "SELECT k.id, u.id, u.username, u.is_active, p.api_access, u.plan_expires_at, u.monthly_tokens_used, "
    "u.monthly_reset_date, p.rpm, p.monthly_token_limit, p.byok_rpm, p.name, p.windows, p.models, "
    "u.time_zone, "
)
# Whether the user saved provider keys rides on the same query (the unique index on provider_keys), so a
# request of a user without any costs nothing more; a Friend Key never uses its owner's provider keys.
_HAS_PROVIDER_KEYS = "EXISTS (SELECT 1 FROM provider_keys b WHERE b.user_id = u.id) "
_LOOKUP_USER_KEY = (
    _LOOKUP_COLUMNS
    + _HAS_PROVIDER_KEYS
    + ", TRUE, NULL FROM api_keys k JOIN users u ON u.id = k.user_id JOIN plans p ON p.name = u.plan "
    "WHERE k.key_digest = :digest AND k.revoked_at IS NULL"
)
_LOOKUP_FRIEND_KEY = (
    _LOOKUP_COLUMNS + "FALSE, k.is_active, k.expires_at FROM friend_keys k JOIN users u ON u.id = k.owner_id "
    "JOIN plans p ON p.name = u.plan WHERE k.key_digest = :digest"
)


def lookup_key(digest: bytes, *, friend: bool) -> Program[KeyRow | None]:
    """The live key with this digest, its owner and the owner's plan: one indexed query."""
    rows = yield Query(_LOOKUP_FRIEND_KEY if friend else _LOOKUP_USER_KEY, {"digest": digest})
    if not rows:
        return None
    (
        key_id,
        user_id,
        username,
        is_active,
        api_access,
        expires,
        used,
        reset_date,
        rpm,
        limit,
        byok_rpm,
        plan_name,
        windows,
        models,
        time_zone,
        byok,
        key_active,
        key_expires,
    ) = rows[0]
    plan = PlanStatus(
        rpm=int(rpm),
        monthly_token_limit=None if limit is None else int(limit),
        monthly_tokens_used=int(used),
        monthly_reset_date=as_utc(reset_date),
        byok_rpm=int(byok_rpm),
        name=plan_name,
        windows=parse_windows(windows),
        models=parse_models(models),
    )
    return KeyRow(
        key_id,
        user_id,
        username,
        bool(is_active),
        bool(api_access),
        as_utc(expires),
        plan,
        bool(byok),
        bool(key_active),
        as_utc(key_expires),
        time_zone,
    )
