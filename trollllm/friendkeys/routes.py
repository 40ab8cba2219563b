"""The Friend Key endpoints of SPEC §7 (JWT; each user manages only their own key)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from trollllm.accounts.sessions import CurrentUser
from trollllm.errors import InvalidRequest, RateLimited
from trollllm.friendkeys.schemas import (
    LIMITS_BODY_SCHEMA,
    FriendKeyUpdate,
    FriendKeyUsageView,
    FriendKeyView,
    RevealedFriendKey,
    RotatedFriendKey,
    parse_limits,
)
from trollllm.friendkeys.service import (
    KEEP,
    create_friend_key,
    delete_friend_key,
    enabled_model_ids,
    load_friend_key,
    reveal_friend_key,
    rotate_friend_key,
    set_limits,
    update_friend_key,
)
from trollllm.money import Money
from trollllm.state import get_state
from trollllm.usage.history import RequestLogPageView, page_request_logs, parse_page_params
from trollllm.usage.routes import FromQuery, LimitQuery, PageQuery, ToQuery

router = APIRouter(prefix="/api/user/friend-key", tags=["friend key"])
_HOUR_S = 3600


@router.post("", status_code=201, response_model=FriendKeyView)
async def create(user: CurrentUser, request: Request) -> FriendKeyView:
    """Create the caller's Friend Key; the full key is in this answer only (409 if one exists).

    It starts with no model limits, so it can call nothing until limits are set.
    """
    state = get_state(request)
    issued = await create_friend_key(state, user.id)
    return FriendKeyView.of(issued.key, user, [], state.clock.now(), full_key=issued.full_key)


@router.get("", response_model=FriendKeyView)
async def show(user: CurrentUser, request: Request) -> FriendKeyView:
    """The caller's Friend Key, masked, with its limits and counters (404 if none)."""
    state = get_state(request)
    async with state.sessions() as session:
        found = await load_friend_key(session, user.id)
    return FriendKeyView.of(found.key, user, found.limits, state.clock.now())


@router.patch("", response_model=FriendKeyView)
async def update(body: FriendKeyUpdate, user: CurrentUser, request: Request) -> FriendKeyView:
    """Pause (`isActive: false`) or resume the Friend Key, keeping its limits, and set its expiry
    (`expiresAt`, null: never). A paused or expired key is refused as an invalid key saying which."""
    state = get_state(request)
    expires = body.expiresAt if "expiresAt" in body.model_fields_set else KEEP
    await update_friend_key(state, user.id, body.isActive, expires)
    async with state.sessions() as session:
        found = await load_friend_key(session, user.id)
    return FriendKeyView.of(found.key, user, found.limits, state.clock.now())


@router.get("/reveal", response_model=RevealedFriendKey)
async def reveal(user: CurrentUser, request: Request) -> RevealedFriendKey:
    """The full Friend Key (for Show and Copy); counted with the API key's reveals against the configured
    number per hour (429 after); 409 for a key made before copies were kept (rotate it to get one)."""
    state = get_state(request)
    decision = await state.limits.hit(f"reveal:{user.id}", state.settings.key_reveals_per_hour, _HOUR_S)
    if not decision.allowed:
        raise RateLimited(
            "Too many key reveals; try again later", retry_after_s=int(decision.retry_after_s) + 1
        )
    return RevealedFriendKey(friendKey=await reveal_friend_key(state, user.id))


@router.post("/rotate", response_model=RotatedFriendKey)
async def rotate(user: CurrentUser, request: Request) -> RotatedFriendKey:
    """A new secret for the key (limits and counters kept); the old one is refused from the next request."""
    return RotatedFriendKey(newFriendKey=await rotate_friend_key(get_state(request), user.id))


@router.delete("", status_code=204)
async def remove(user: CurrentUser, request: Request) -> Response:
    """Delete the Friend Key and its limits (its past requests stay in the owner's history)."""
    await delete_friend_key(get_state(request), user.id)
    return Response(status_code=204)


@router.put(
    "/limits",
    response_model=FriendKeyView,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": LIMITS_BODY_SCHEMA}}}
    },
)
async def put_limits(user: CurrentUser, request: Request) -> FriendKeyView:
    """Set every model limit at once: `{modelLimits: [{modelId, limitUsd, enabled}]}`.

    Each `modelId` is an enabled model, at most once; `limitUsd` is a number from 0 to the configured
    ceiling. A bad row is a 400 naming it (e.g. `modelLimits[2].limitUsd`) and changes nothing. Models
    kept keep their `usedUsd`; models left out lose their limit.
    """
    state = get_state(request)
    try:
        payload = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}", field="modelLimits") from exc
    ceiling = Money.from_usd(state.settings.friend_key_max_limit_usd)
    rows = parse_limits(payload, await enabled_model_ids(state), ceiling)
    await set_limits(state, user.id, rows)
    async with state.sessions() as session:
        found = await load_friend_key(session, user.id)
    return FriendKeyView.of(found.key, user, found.limits, state.clock.now())


@router.get("/usage", response_model=FriendKeyUsageView)
async def usage(user: CurrentUser, request: Request) -> FriendKeyUsageView:
    """Per model: limit, used and percentage; totals over those models; the key's lifetime counters."""
    async with get_state(request).sessions() as session:
        found = await load_friend_key(session, user.id)
    return FriendKeyUsageView.of(found.key, found.limits)


@router.get("/activity", response_model=RequestLogPageView)
async def activity(
    user: CurrentUser,
    request: Request,
    page: PageQuery = None,
    limit: LimitQuery = None,
    since: FromQuery = None,
    to: ToQuery = None,
) -> RequestLogPageView:
    """The Friend Key's requests, newest first, paged and filtered exactly like the request history."""
    params = parse_page_params(page, limit, since, to)
    async with get_state(request).sessions() as session:
        found = await load_friend_key(session, user.id)
        result = await page_request_logs(session, params, user_id=user.id, friend_key_id=found.key.id)
    return RequestLogPageView.of(result, user.username)
