"""Bodies of the Friend Key endpoints: the limits a user submits (checked row by row) and the views.

`PUT /api/user/friend-key/limits` is parsed here by hand rather than by a pydantic body model, so each
refusal is a 400 naming its row the way a person reads it (`modelLimits[2].limitUsd`), and no value
slips through a lenient coercion (`"5"`, `true`, `NaN`, `1e308` are all refused).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field, StrictBool

from trollllm.accounts.tables import User
from trollllm.crypto import mask_key
from trollllm.errors import InvalidRequest
from trollllm.friendkeys.resets import RESET_PERIODS, next_reset_after
from trollllm.friendkeys.tables import FriendKey, FriendKeyModelLimit
from trollllm.money import Money, MoneyParseError

# More rows than this cannot all be distinct enabled models on any sane catalog; refused before any work.
MAX_LIMIT_ROWS = 1000
_HUNDREDTH = Decimal("0.01")

LIMITS_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["modelLimits"],
    "properties": {
        "modelLimits": {
            "type": "array",
            "maxItems": MAX_LIMIT_ROWS,
            "description": "every limit of the key; models left out lose their limit",
            "items": {
                "type": "object",
                "required": ["modelId", "limitUsd"],
                "properties": {
                    "modelId": {"type": "string", "description": "an enabled model, at most once"},
                    "limitUsd": {"type": "number", "minimum": 0, "description": "USD, ≤ the ceiling"},
                    "enabled": {"type": "boolean", "default": True},
                    "resetPeriod": {
                        "type": "string",
                        "enum": list(RESET_PERIODS),
                        "default": "none",
                        "description": "usedUsd returns to 0 at 00:00 in the owner's time zone",
                    },
                },
            },
        }
    },
}


@dataclass(frozen=True, slots=True)
class LimitInput:
    """One validated row of a limits update."""

    model_id: str
    limit: Money
    enabled: bool
    reset_period: str = "none"


def parse_limits(payload: object, enabled_models: Collection[str], ceiling: Money) -> list[LimitInput]:
    """Validate a limits body against the enabled models and the ceiling; 400 naming the first bad row."""
    if not isinstance(payload, dict):
        raise InvalidRequest('The body must be a JSON object: {"modelLimits": [...]}', field="modelLimits")
    rows = payload.get("modelLimits")
    if not isinstance(rows, list):
        raise InvalidRequest(
            "modelLimits must be a list of {modelId, limitUsd, enabled}", field="modelLimits"
        )
    if len(rows) > MAX_LIMIT_ROWS:
        raise InvalidRequest(f"modelLimits has more than {MAX_LIMIT_ROWS} rows", field="modelLimits")
    parsed: list[LimitInput] = []
    first_row_of: dict[str, int] = {}
    for index, row in enumerate(rows):
        path = f"modelLimits[{index}]"
        if not isinstance(row, dict):
            raise InvalidRequest(f"{path} must be an object {{modelId, limitUsd, enabled}}", field=path)
        model_id = row.get("modelId")
        if not isinstance(model_id, str):
            raise InvalidRequest(f"{path}.modelId must be a string", field=f"{path}.modelId")
        if model_id not in enabled_models:
            raise InvalidRequest(
                f"{path}.modelId: `{model_id[:128]}` is not an enabled model", field=f"{path}.modelId"
            )
        if model_id in first_row_of:
            raise InvalidRequest(
                f"{path}.modelId: `{model_id}` is already limited by modelLimits[{first_row_of[model_id]}]",
                field=f"{path}.modelId",
            )
        first_row_of[model_id] = index
        enabled = row.get("enabled", True)
        if not isinstance(enabled, bool):
            raise InvalidRequest(f"{path}.enabled must be true or false", field=f"{path}.enabled")
        period = row.get("resetPeriod", "none")
        if period not in RESET_PERIODS:
            raise InvalidRequest(
                f"{path}.resetPeriod must be one of {', '.join(RESET_PERIODS)}", field=f"{path}.resetPeriod"
            )
        limit = _parse_limit(row.get("limitUsd"), f"{path}.limitUsd", ceiling)
        parsed.append(LimitInput(model_id, limit, enabled, period))
    return parsed


def _parse_limit(value: object, path: str, ceiling: Money) -> Money:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{path} must be a number of USD", field=path)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequest(f"{path} must be a finite number", field=path)
    if value < 0:
        raise InvalidRequest(f"{path} must be ≥ 0", field=path)
    if value > ceiling.to_decimal():
        raise InvalidRequest(f"{path} must be at most {ceiling.format_balance()}", field=path)
    try:
        return Money.from_usd(value)
    except MoneyParseError as exc:
        raise InvalidRequest(f"{path}: {exc}", field=path) from exc


def percentage(used: Money, limit: Money) -> float:
    """`used` as a percentage of `limit`, to 2 decimals (100 when a zero limit has any use)."""
    if limit.nanos <= 0:
        return 100.0 if used.nanos > 0 else 0.0
    share = Decimal(used.nanos) * 100 / Decimal(limit.nanos)
    return float(share.quantize(_HUNDREDTH, rounding=ROUND_HALF_UP))


class FriendKeyUpdate(BaseModel):
    """`PATCH /api/user/friend-key`: pause or resume the key without losing its limits, and set or clear
    its expiry (fields left out are kept)."""

    isActive: StrictBool | None = None
    expiresAt: AwareDatetime | None = Field(default=None, description="null: never expires")


class ModelLimitView(BaseModel):
    """One model of the key: its cap, what was spent on it, and whether it is on."""

    modelId: str
    limitUsd: float
    usedUsd: float
    enabled: bool
    resetPeriod: str
    nextResetAt: datetime | None = Field(description="the next 00:00 (owner's time zone) usedUsd resets")
    # The exact figures behind the two USD numbers, for the pages (never serialized: the API shows USD).
    limit_nanos: int = Field(exclude=True)
    used_nanos: int = Field(exclude=True)

    @classmethod
    def of(cls, row: FriendKeyModelLimit, now: datetime, time_zone: str) -> ModelLimitView:
        """The view of one cap row at `now` (a reset that is due shows as done)."""
        used, next_reset = row.used_nanos, row.next_reset_at
        if next_reset is not None and next_reset <= now:
            used, next_reset = 0, next_reset_after(row.reset_period, now, time_zone)
        return cls(
            modelId=row.model_id,
            limitUsd=Money(row.limit_nanos).to_json(),
            usedUsd=Money(used).to_json(),
            enabled=row.enabled,
            resetPeriod=row.reset_period,
            nextResetAt=next_reset,
            limit_nanos=row.limit_nanos,
            used_nanos=used,
        )


class FriendKeyView(BaseModel):
    """A Friend Key with every field of SPEC §3; `friendKey` is masked except in the creation answer."""

    id: int
    friendKey: str
    ownerId: str
    isActive: bool
    expiresAt: datetime | None
    modelLimits: list[ModelLimitView]
    totalUsedUsd: float
    requestsCount: int
    lastUsedAt: datetime | None
    createdAt: datetime

    @classmethod
    def of(
        cls,
        key: FriendKey,
        owner: User,
        limits: Sequence[FriendKeyModelLimit],
        now: datetime,
        full_key: str | None = None,
    ) -> FriendKeyView:
        """The view of a key, its owner's username and its caps (`full_key` only right after creation)."""
        return cls(
            id=key.id,
            friendKey=full_key or mask_key(key.last4),
            ownerId=owner.username,
            isActive=key.is_active,
            expiresAt=key.expires_at,
            modelLimits=[ModelLimitView.of(row, now, owner.time_zone) for row in limits],
            totalUsedUsd=Money(key.total_used_nanos).to_json(),
            requestsCount=key.requests_count,
            lastUsedAt=key.last_used_at,
            createdAt=key.created_at,
        )


class RotatedFriendKey(BaseModel):
    """The new key after rotation (shown once); the old one is refused from the next request on."""

    newFriendKey: str


class RevealedFriendKey(BaseModel):
    """The full Friend Key, for the owner's Show and Copy."""

    friendKey: str


class ModelUsageView(BaseModel):
    """Spending on one model against its cap."""

    modelId: str
    limitUsd: float
    usedUsd: float
    percentage: float
    enabled: bool


class UsageTotals(BaseModel):
    """The caps and spending of every model currently limited, summed."""

    limitUsd: float
    usedUsd: float
    percentage: float


class FriendKeyUsageView(BaseModel):
    """`GET /api/user/friend-key/usage`: per model, totals, and the key's lifetime counters."""

    models: list[ModelUsageView]
    totals: UsageTotals
    totalUsedUsd: float
    requestsCount: int
    lastUsedAt: datetime | None

    @classmethod
    def of(cls, key: FriendKey, limits: Sequence[FriendKeyModelLimit]) -> FriendKeyUsageView:
        """Usage of a key; `totals` cover the listed models, `totalUsedUsd` every request ever."""
        models = []
        limit_sum = used_sum = Money.ZERO
        for row in limits:
            limit, used = Money(row.limit_nanos), Money(row.used_nanos)
            limit_sum, used_sum = limit_sum + limit, used_sum + used
            models.append(
                ModelUsageView(
                    modelId=row.model_id,
                    limitUsd=limit.to_json(),
                    usedUsd=used.to_json(),
                    percentage=percentage(used, limit),
                    enabled=row.enabled,
                )
            )
        return cls(
            models=models,
            totals=UsageTotals(
                limitUsd=limit_sum.to_json(),
                usedUsd=used_sum.to_json(),
                percentage=percentage(used_sum, limit_sum),
            ),
            totalUsedUsd=Money(key.total_used_nanos).to_json(),
            requestsCount=key.requests_count,
            lastUsedAt=key.last_used_at,
        )
