"""The gate: the one place that decides whether a request may go upstream.

In the SPEC §6 order: key → plan expiry → owner active → plan access → (body) → RPM → monthly tokens →
model → hold. A request that passes leaves with an `Admission`: its model, its output bound, its RPM
decision and a hold on the owner's balance (and, for a Friend Key, on the key's cap for that model).
A request for a model whose provider has the caller's own key (BYOK, `trollllm.byok.routing`) leaves with
that key instead of a hold: plan access, the monthly limit and the hold do not apply, the BYOK RPM does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trollllm.billing.holds import FriendKeyCapRefused, HeldRequest, available_balance, place_hold
from trollllm.byok.routing import OwnKey, own_key_for
from trollllm.crypto import FRIEND_KEY_PATTERN, FRIEND_KEY_PREFIX, USER_KEY_PATTERN
from trollllm.errors import (
    FreeTierRestricted,
    GatewayError,
    InsufficientCredits,
    InvalidApiKey,
    InvalidRequest,
    ModelNotFound,
    OwnerInactive,
)
from trollllm.friendkeys.caps import hold_refusal
from trollllm.money import Money, ceil_div
from trollllm.plans.enforcement import PlanStatus, enforce_plan_limits
from trollllm.plans.expiry import expire_plan_if_due
from trollllm.pricing.catalog import CatalogModel
from trollllm.proxy.requests import ProxyRequest
from trollllm.ratelimit.fallback import RateLimitStatus
from trollllm.state import AppState
from trollllm.storage.sqlprogram import Program, Query, as_utc
from trollllm.wire import WireFormat

_MAX_KEY_HEADER = 256
_UPGRADE = "Your plan does not include API access. Upgrade your plan to use the API."


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the key's owner and the key itself.

    For a Friend Key, `user_id`/`username` are its owner's (plan, credits and RPM budget are the owner's),
    `friend_key_id` is set and `api_key_id` is None.
    """

    user_id: int
    username: str
    api_key_id: int | None
    plan: PlanStatus
    friend_key_id: int | None = None
    api_access: bool = True  # False: only requests on the user's own provider keys may pass
    has_provider_keys: bool = False  # the user saved provider keys (never for a Friend Key)


@dataclass(frozen=True, slots=True)
class Admission:
    """A request allowed upstream, with its reservation."""

    caller: Caller
    model: CatalogModel
    max_tokens: int
    hold: HeldRequest
    hold_id: int  # the hold's row, released by settlement
    rate_limit: RateLimitStatus  # the RPM decision; its headers go on every response to this request
    own_key: OwnKey | None = None  # BYOK: sent with the caller's own provider key, not charged (no hold)


@dataclass(frozen=True, slots=True)
class _KeyRow:
    key_id: int
    user_id: int
    username: str
    is_active: bool
    api_access: bool
    plan_expires_at: datetime | None
    plan: PlanStatus
    has_provider_keys: bool


_LOOKUP_COLUMNS = (
    "SELECT k.id, u.id, u.username, u.is_active, p.api_access, u.plan_expires_at, u.monthly_tokens_used, "
    "u.monthly_reset_date, p.rpm, p.monthly_token_limit, p.byok_rpm, "
)
# Whether the user saved provider keys rides on the same query (the unique index on provider_keys), so a
# request of a user without any costs nothing more; a Friend Key never uses its owner's provider keys.
_HAS_PROVIDER_KEYS = "EXISTS (SELECT 1 FROM provider_keys b WHERE b.user_id = u.id) "
_LOOKUP_USER_KEY = (
    _LOOKUP_COLUMNS
    + _HAS_PROVIDER_KEYS
    + "FROM api_keys k JOIN users u ON u.id = k.user_id JOIN plans p ON p.name = u.plan "
    "WHERE k.key_digest = :digest AND k.revoked_at IS NULL"
)
_LOOKUP_FRIEND_KEY = (
    _LOOKUP_COLUMNS
    + "FALSE FROM friend_keys k JOIN users u ON u.id = k.owner_id JOIN plans p ON p.name = u.plan "
    "WHERE k.key_digest = :digest AND k.is_active"
)


def _lookup_key(digest: bytes, *, friend: bool) -> Program[_KeyRow | None]:
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
        byok,
    ) = rows[0]
    plan = PlanStatus(
        rpm=int(rpm),
        monthly_token_limit=None if limit is None else int(limit),
        monthly_tokens_used=int(used),
        monthly_reset_date=as_utc(reset_date),
        byok_rpm=int(byok_rpm),
    )
    return _KeyRow(
        key_id, user_id, username, bool(is_active), bool(api_access), as_utc(expires), plan, bool(byok)
    )


def presented_key(headers: Mapping[str, str], wire: WireFormat) -> str | None:
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
    instance without any cache to invalidate. A `sk-trollllm-friend-` key is looked up among Friend Keys
    (an inactive one is no live row either) and the request then acts as its owner.

    No cache in front of it: the same query must read the owner's live state (active, plan, and the
    plan-period fields the plan rules check), which no cache may decide, and the key → owner hop is a
    join on a unique index inside it, so caching the mapping alone would save no query.
    """
    friend = key is not None and key.startswith(FRIEND_KEY_PREFIX)
    pattern = FRIEND_KEY_PATTERN if friend else USER_KEY_PATTERN
    if not key or len(key) > _MAX_KEY_HEADER or not pattern.fullmatch(key):
        raise InvalidApiKey()
    lookup = _lookup_key(state.keybox.digest(key), friend=friend)
    row = await state.db.read(lookup)
    if row is not None and await expire_plan_if_due(state, row.user_id, row.plan_expires_at):
        # SPEC §5: reset to free, then decided as free.
        row = await state.db.read(_lookup_key(state.keybox.digest(key), friend=friend))
    if row is None:
        raise InvalidApiKey()
    key_id, user_id, username, is_active, api_access, plan = (
        row.key_id,
        row.user_id,
        row.username,
        row.is_active,
        row.api_access,
        row.plan,
    )
    if not is_active:
        raise OwnerInactive()
    if not api_access:
        if friend:
            raise FreeTierRestricted("Friend Key owner must upgrade plan")
        if not row.has_provider_keys:
            raise FreeTierRestricted(_UPGRADE)
        # Decided once the model is known: a request on the user's own provider key may pass (SPEC §6).
    if friend:
        return Caller(user_id=user_id, username=username, api_key_id=None, plan=plan, friend_key_id=key_id)
    return Caller(
        user_id=user_id,
        username=username,
        api_key_id=key_id,
        plan=plan,
        api_access=api_access,
        has_provider_keys=row.has_provider_keys,
    )


async def admit(state: AppState, caller: Caller, request: ProxyRequest, request_id: str) -> Admission:
    """Plan limits (429), then resolve the model, bound the cost and hold it: 404 `model_not_found`, 400, 402.

    Called once the body has parsed, so a malformed request does not use the owner's RPM budget. Every
    refusal after the RPM check carries its `x-ratelimit-*` headers.

    A model whose provider has the caller's own key (BYOK) goes with that key: no plan API access needed,
    the plan's BYOK RPM instead of its RPM, no monthly token limit, no hold.
    """
    model = await state.catalog.get(request.model_id)
    own_key = None
    if caller.has_provider_keys and model is not None and model.enabled:
        own_key = await own_key_for(state, caller.user_id, model.provider)
    if own_key is None and not caller.api_access:
        raise FreeTierRestricted(_UPGRADE)
    rate_limit = await enforce_plan_limits(
        state,
        caller.user_id,
        caller.plan,
        for_friend_key=caller.friend_key_id is not None,
        own_key=own_key is not None,
    )
    try:
        return await _admit(state, caller, request, request_id, rate_limit, model, own_key)
    except GatewayError as error:
        error.headers.update(rate_limit.headers)
        raise


async def _admit(
    state: AppState,
    caller: Caller,
    request: ProxyRequest,
    request_id: str,
    rate_limit: RateLimitStatus,
    model: CatalogModel | None,
    own_key: OwnKey | None,
) -> Admission:
    if model is None or not model.enabled:
        raise ModelNotFound(
            f"The model `{request.model_id}` does not exist or is not available", field="model"
        )
    upstream_wire = model.wire  # the provider row's wire format (loaded with the catalog)
    if upstream_wire is not request.wire:  # a model of the other format: translated both ways
        request.translate_to(upstream_wire)
    requested = request.requested_max_tokens
    if requested is not None and requested > model.max_output_tokens:
        raise InvalidRequest(
            f"`{request.max_tokens_field}` must be at most {model.max_output_tokens} for this model",
            field=request.max_tokens_field,
        )
    max_tokens = requested or model.max_output_tokens
    if own_key is not None:  # not charged: nothing to hold (hold id 0 is no row)
        unheld = HeldRequest(
            request_id=request_id, user_id=caller.user_id, amount=Money.ZERO, model_id=model.model_id
        )
        return Admission(caller, model, max_tokens, unheld, 0, rate_limit, own_key)
    input_tokens = request.input_bound_tokens
    if request.url_media_items:
        if not model.url_media_tokens:
            raise InvalidRequest(
                f"{model.model_id} does not take images or documents by URL here; send them inline (base64)",
                field="messages",
            )
        input_tokens += request.url_media_items * model.url_media_tokens
    input_cost = input_tokens * model.worst_input_price
    output_bound = request.choices * max_tokens
    required = Money(ceil_div(input_cost + output_bound * model.prices.output_per_mtok, 1_000_000))
    hold = HeldRequest(
        request_id=request_id,
        user_id=caller.user_id,
        amount=required,
        model_id=model.model_id,
        friend_key_id=caller.friend_key_id,
    )
    hold_id: int | None = None
    cap_refused = False
    try:
        program = place_hold(hold, state.clock.now(), one_statement=state.db.data_modifying_ctes)
        hold_id = await state.db.write(program)
    except FriendKeyCapRefused:
        cap_refused = True
    if hold_id is not None:
        state.outbox.replay_soon(state.db)  # the database takes writes: settle what waits in the outbox
    if hold_id is None and caller.friend_key_id is not None:
        async with state.engine.connect() as connection:
            raise await hold_refusal(
                connection, caller.friend_key_id, model.model_id, required, cap_refused=cap_refused
            )
    if hold_id is None:
        balance = await state.db.read(available_balance(caller.user_id))
        raise _insufficient(balance, required, input_cost, model, request.choices)
    return Admission(caller, model, max_tokens, hold, hold_id, rate_limit)


def _insufficient(
    balance: Money, required: Money, input_cost: int, model: CatalogModel, choices: int
) -> InsufficientCredits:
    extra: dict[str, Any] = {
        "balanceUsd": max(balance, Money.ZERO).to_json(),
        "requiredUsd": required.to_json(),
    }
    output_price = model.prices.output_per_mtok * choices
    if output_price > 0:
        affordable = (balance.nanos * 1_000_000 - input_cost) // output_price
        if affordable >= 1:
            extra["affordableMaxTokens"] = int(affordable)
    return InsufficientCredits(
        f"Insufficient credits: this request may cost up to ${required.to_decimal():f}; "
        f"your available balance is ${max(balance, Money.ZERO).to_decimal():f}",
        **extra,
    )
