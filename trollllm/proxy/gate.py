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
from typing import Any

from trollllm.billing.holds import FriendKeyCapRefused, HeldRequest, available_balance, place_hold
from trollllm.billing.leases import LEASED_HOLD_ID
from trollllm.billing.windows import WindowFull, span_flags
from trollllm.byok.routing import OwnKey, own_key_for
from trollllm.crypto import FRIEND_KEY_PATTERN, FRIEND_KEY_PREFIX, USER_KEY_PATTERN
from trollllm.errors import (
    FreeTierRestricted,
    FriendKeyModelNotAllowed,
    GatewayError,
    InsufficientCredits,
    InvalidApiKey,
    InvalidRequest,
    ModelNotFound,
    ModelNotInPlan,
    OwnerInactive,
)
from trollllm.friendkeys.caps import allowed_model_ids, hold_refusal
from trollllm.money import Money, hold_bound
from trollllm.plans.enforcement import PlanStatus, enforce_plan_limits, monthly_limit_error
from trollllm.plans.expiry import expire_plan_if_due
from trollllm.plans.windows import window_refusal
from trollllm.pricing.catalog import CatalogModel
from trollllm.pricing.features import refuse_unpriced
from trollllm.proxy.key_lookup import lookup_key
from trollllm.proxy.requests import ProxyRequest
from trollllm.ratelimit.fallback import RateLimitStatus
from trollllm.state import AppState
from trollllm.storage.sqlprogram import Program, Query
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
    time_zone: str = "UTC"  # the owner's; set for a Friend Key, whose caps reset at 00:00 there


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
    lookup = lookup_key(state.keybox.digest(key), friend=friend)
    row = await state.db.read(lookup)
    if row is not None and await expire_plan_if_due(state, row.user_id, row.plan_expires_at):
        # SPEC §5: reset to free, then decided as free.
        row = await state.db.read(lookup_key(state.keybox.digest(key), friend=friend))
    if row is None:
        raise InvalidApiKey()
    if not row.key_active:
        raise InvalidApiKey("Invalid API key: this Friend Key is paused by its owner")
    if row.key_expires_at is not None and row.key_expires_at <= state.clock.now():
        raise InvalidApiKey(f"Invalid API key: this Friend Key expired at {row.key_expires_at.isoformat()}")
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
        return Caller(
            user_id=user_id,
            username=username,
            api_key_id=None,
            plan=plan,
            friend_key_id=key_id,
            time_zone=row.time_zone,
        )
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
    model, own_key, rate_limit = await _model_and_rate_limit(state, caller, request.model_id)
    try:
        return await _admit(state, caller, request, request_id, rate_limit, model, own_key)
    except GatewayError as error:
        error.headers.update(rate_limit.headers)
        raise


@dataclass(frozen=True, slots=True)
class CountAdmission:
    """A token count allowed upstream: not held, not charged, not logged."""

    model: CatalogModel
    rate_limit: RateLimitStatus
    own_key: OwnKey | None


async def admit_count(
    state: AppState, caller: Caller, model_id: str, betas: tuple[str, ...]
) -> CountAdmission:
    """`/v1/messages/count_tokens`: the checks of `admit` but the hold (plan access, RPM, monthly limit,
    model, a Friend Key's enabled models, the anthropic-beta policy); 400 naming `model` for a model of the
    OpenAI format (its provider counts no tokens this way)."""
    model, own_key, rate_limit = await _model_and_rate_limit(state, caller, model_id)
    try:
        if model is None or not model.enabled:
            raise ModelNotFound(f"The model `{model_id}` does not exist or is not available", field="model")
        if model.wire is not WireFormat.ANTHROPIC:
            raise InvalidRequest(
                f"`{model_id}` is a model of the OpenAI format: /v1/messages/count_tokens counts tokens for "
                "models of the Anthropic format only",
                field="model",
            )
        if caller.friend_key_id is not None:
            async with state.engine.connect() as connection:
                if model.model_id not in await allowed_model_ids(connection, caller.friend_key_id):
                    raise FriendKeyModelNotAllowed()
        if own_key is None:
            await state.betas.check(betas, model)
    except GatewayError as error:
        error.headers.update(rate_limit.headers)
        raise
    return CountAdmission(model, rate_limit, own_key)


async def _model_and_rate_limit(
    state: AppState, caller: Caller, model_id: str
) -> tuple[CatalogModel | None, OwnKey | None, RateLimitStatus]:
    """The opening of every admission: the model (None if unknown), the caller's own key for its provider
    (BYOK) if any, then plan access (403) and the plan's limits (429), on the BYOK RPM for an own key."""
    model = await state.catalog.get(model_id)
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
    return model, own_key, rate_limit


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
    allowed = caller.plan.models
    if own_key is None and allowed is not None and model.model_id not in allowed:
        raise ModelNotInPlan(
            f"The model `{model.model_id}` is not included in the plan `{caller.plan.name}`",
            field="model",
            plan=caller.plan.name,
        )
    if model.kind != request.model_kind:
        endpoint = "/v1/embeddings" if model.kind == "embedding" else "a chat endpoint"
        raise InvalidRequest(
            f"`{model.model_id}` is a model of kind `{model.kind}`: call it with {endpoint}", field="model"
        )
    upstream_wire = model.wire  # the provider row's wire format (loaded with the catalog)
    # A model of the other format: translated both ways (a Responses request has its route already).
    if request.translation is None and upstream_wire is not request.wire:
        request.translate_to(upstream_wire)
    requested = request.requested_max_tokens
    if requested is not None and requested > model.max_output_tokens:
        raise InvalidRequest(
            f"`{request.max_tokens_field}` must be at most {model.max_output_tokens} for this model",
            field=request.max_tokens_field,
        )
    max_tokens = requested or model.max_output_tokens
    if own_key is not None:  # not charged: nothing to hold (hold id 0 is no row); their provider bills them
        unheld = HeldRequest(
            request_id=request_id, user_id=caller.user_id, amount=Money.ZERO, model_id=model.model_id
        )
        return Admission(caller, model, max_tokens, unheld, 0, rate_limit, own_key)
    # What the provider bills beyond tokens must be priced by the model row (400 naming it otherwise).
    refuse_unpriced(request.priced, model)
    await state.betas.check(request.betas, model)
    input_tokens = request.input_bound_tokens
    if request.url_media_items:
        if not model.url_media_tokens:
            raise InvalidRequest(
                f"{model.model_id} does not take images or documents by URL here; send them inline (base64)",
                field="messages",
            )
        input_tokens += request.url_media_items * model.url_media_tokens
    # At the long-context tier's prices when the input bound can pass its threshold.
    prices = model.hold_prices(input_tokens)
    input_cost = input_tokens * prices.worst_input
    output_bound = request.choices * max_tokens
    searches = request.priced.web_searches_bound * (model.prices.web_search_per_kcalls or 0) * 1000
    required = hold_bound(model.prices, input_tokens, output_bound, request.priced.web_searches_bound)
    now = state.clock.now()
    windows = caller.plan.windows
    hold = HeldRequest(
        request_id=request_id,
        user_id=caller.user_id,
        amount=required,
        model_id=model.model_id,
        friend_key_id=caller.friend_key_id,
        tokens=input_tokens + output_bound,
        window_spans=span_flags(windows),
        admitted_s=int(now.timestamp()),
    )
    leases = state.leases  # a hold of money alone may come from this instance's lease of the balance
    money_alone = caller.friend_key_id is None and not windows and caller.plan.monthly_token_limit is None
    if leases is not None and money_alone and await leases.hold(hold):
        state.outbox.replay_soon(state.db)
        return Admission(caller, model, max_tokens, hold, LEASED_HOLD_ID, rate_limit)
    hold_id: int | None = None
    cap_refused = False
    # Once more after this instance's lease of the balance gave back what it has free, if it had any.
    while hold_id is None and not cap_refused:
        try:
            program = place_hold(
                hold,
                now,
                token_limit=caller.plan.monthly_token_limit,
                windows=windows,
                time_zone=caller.time_zone,
                one_statement=state.db.data_modifying_ctes,
            )
            hold_id = await state.db.write(program)
        except FriendKeyCapRefused:
            cap_refused = True
        except WindowFull as full:
            raise await window_refusal(
                state.db,
                caller.user_id,
                windows,
                full.span_s,
                required.nanos,
                hold.tokens,
                now,
                for_friend_key=caller.friend_key_id is not None,
            ) from None
        if hold_id is None and (leases is None or not await leases.give_back(caller.user_id)):
            break
    if hold_id is None and caller.plan.monthly_token_limit is not None:
        used, in_flight = await state.db.read(_monthly_tokens(caller.user_id))
        if used + in_flight >= caller.plan.monthly_token_limit:
            raise monthly_limit_error(
                caller.plan, used, now, for_friend_key=caller.friend_key_id is not None, in_flight=in_flight
            )
    if hold_id is not None:
        state.outbox.replay_soon(state.db)  # the database takes writes: settle what waits in the outbox
    if hold_id is None and caller.friend_key_id is not None:
        async with state.engine.connect() as connection:
            raise await hold_refusal(
                connection, caller.friend_key_id, model.model_id, required, cap_refused=cap_refused
            )
    if hold_id is None:
        balance = await state.db.read(available_balance(caller.user_id))
        raise _insufficient(balance, required, input_cost + searches, prices.output_per_mtok, request.choices)
    return Admission(caller, model, max_tokens, hold, hold_id, rate_limit)


def _monthly_tokens(user_id: int) -> Program[tuple[int, int]]:
    """This month's tokens used, and the token maximum of the requests in flight (for the 429)."""
    rows = yield Query(_MONTHLY_TOKENS, {"user_id": user_id})
    return int(rows[0][0]), int(rows[0][1])


_MONTHLY_TOKENS = "SELECT monthly_tokens_used, monthly_tokens_held FROM users WHERE id = :user_id"


def _insufficient(
    balance: Money, required: Money, input_cost: int, output_per_mtok: int, choices: int
) -> InsufficientCredits:
    extra: dict[str, Any] = {
        "balanceUsd": max(balance, Money.ZERO).to_json(),
        "requiredUsd": required.to_json(),
    }
    output_price = output_per_mtok * choices
    if output_price > 0:
        affordable = (balance.nanos * 1_000_000 - input_cost) // output_price
        if affordable >= 1:
            extra["affordableMaxTokens"] = int(affordable)
    return InsufficientCredits(
        f"Insufficient credits: this request may cost up to ${required.to_decimal():f}; "
        f"your available balance is ${max(balance, Money.ZERO).to_decimal():f}",
        **extra,
    )
