"""The gate: the one place that decides whether a request may go upstream.

In the SPEC §6 order: key → owner active → plan access → (body) → model → hold. A request that passes
leaves with an `Admission`: its model, its output bound and a hold on the owner's balance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select
from starlette.datastructures import Headers

from trollllm.accounts.tables import ApiKey, User
from trollllm.billing.holds import HeldRequest, available_balance, place_hold
from trollllm.crypto import USER_KEY_PATTERN
from trollllm.db import write_connection
from trollllm.errors import (
    FreeTierRestricted,
    InsufficientCredits,
    InvalidApiKey,
    InvalidRequest,
    ModelNotFound,
    OwnerInactive,
)
from trollllm.money import Money, ceil_div
from trollllm.plans.tables import Plan
from trollllm.proxy.catalog import CatalogModel
from trollllm.proxy.requests import ProxyRequest, WireFormat
from trollllm.state import AppState

_keys = cast(Table, ApiKey.__table__)
_users = cast(Table, User.__table__)
_plans = cast(Table, Plan.__table__)
_MAX_KEY_HEADER = 256
_ENDPOINT_OF = {"openai": "POST /v1/chat/completions", "anthropic": "POST /v1/messages"}
_WIRE_OF_PROVIDER = {"openai": WireFormat.OPENAI, "anthropic": WireFormat.ANTHROPIC}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the key's owner and the key itself."""

    user_id: int
    username: str
    api_key_id: int


@dataclass(frozen=True, slots=True)
class Admission:
    """A request allowed upstream, with its reservation."""

    caller: Caller
    model: CatalogModel
    max_tokens: int
    hold: HeldRequest


def presented_key(headers: Headers, wire: WireFormat) -> str | None:
    """The key from `Authorization: Bearer`, or for Anthropic also `x-api-key`."""
    if wire is WireFormat.ANTHROPIC:
        key = headers.get("x-api-key")
        if key:
            return key.strip()
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return None


async def authenticate(state: AppState, key: str | None) -> Caller:
    """The caller behind a key: 401 `invalid_api_key`, 401 `owner_inactive`, 403 `free_tier_restricted`.

    One indexed query by the key's HMAC digest; a rotated key has no live row, so it fails at once on every
    instance without any cache to invalidate.
    """
    if not key or len(key) > _MAX_KEY_HEADER or not USER_KEY_PATTERN.fullmatch(key):
        raise InvalidApiKey()
    query = (
        select(_keys.c.id, _users.c.id, _users.c.username, _users.c.is_active, _plans.c.api_access)
        .select_from(
            _keys.join(_users, _users.c.id == _keys.c.user_id).join(_plans, _plans.c.name == _users.c.plan)
        )
        .where(_keys.c.key_digest == state.keybox.digest(key), _keys.c.revoked_at.is_(None))
    )
    async with state.engine.connect() as connection:
        row = (await connection.execute(query)).first()
    if row is None:
        raise InvalidApiKey()
    key_id, user_id, username, is_active, api_access = row
    if not is_active:
        raise OwnerInactive()
    if not api_access:
        raise FreeTierRestricted("Your plan does not include API access. Upgrade your plan to use the API.")
    return Caller(user_id=user_id, username=username, api_key_id=key_id)


async def admit(state: AppState, caller: Caller, request: ProxyRequest, request_id: str) -> Admission:
    """Resolve the model, bound the cost and hold it: 404 `model_not_found`, 400, or 402."""
    model = await state.catalog.get(request.model_id)
    if model is None or not model.enabled:
        raise ModelNotFound(
            f"The model `{request.model_id}` does not exist or is not available", field="model"
        )
    if _WIRE_OF_PROVIDER[model.provider] is not request.wire:
        raise InvalidRequest(
            f"`{model.model_id}` is served by {_ENDPOINT_OF[model.provider]}; call that endpoint",
            field="model",
        )
    requested = request.requested_max_tokens
    if requested is not None and requested > model.max_output_tokens:
        raise InvalidRequest(
            f"`{request.max_tokens_field}` must be at most {model.max_output_tokens} for this model",
            field=request.max_tokens_field,
        )
    max_tokens = requested or model.max_output_tokens
    input_cost = request.input_bound_tokens * model.worst_input_price
    required = Money(ceil_div(input_cost + max_tokens * model.prices.output_per_mtok, 1_000_000))
    hold = HeldRequest(
        request_id=request_id, user_id=caller.user_id, amount=required, model_id=model.model_id
    )
    async with write_connection(state.sessions) as connection:
        placed = await place_hold(connection, hold, state.clock.now())
    if not placed:
        async with state.engine.connect() as connection:
            balance = await available_balance(connection, caller.user_id)
        raise _insufficient(balance, required, input_cost, model)
    return Admission(caller=caller, model=model, max_tokens=max_tokens, hold=hold)


def _insufficient(
    balance: Money, required: Money, input_cost: int, model: CatalogModel
) -> InsufficientCredits:
    extra: dict[str, Any] = {
        "balanceUsd": max(balance, Money.ZERO).to_json(),
        "requiredUsd": required.to_json(),
    }
    output_price = model.prices.output_per_mtok
    if output_price > 0:
        affordable = (balance.nanos * 1_000_000 - input_cost) // output_price
        if affordable >= 1:
            extra["affordableMaxTokens"] = int(affordable)
    return InsufficientCredits(
        f"Insufficient credits: this request may cost up to ${required.to_decimal():f}; "
        f"your available balance is ${max(balance, Money.ZERO).to_decimal():f}",
        **extra,
    )
